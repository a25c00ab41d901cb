"""The domain error hierarchy.

Every error a user can cause (bad file, missing device, wrong argument) is a
:class:`TestbedError`. The CLI turns it into one line on stderr and exit status 2;
domain code never prints and never calls ``sys.exit``.
"""

from __future__ import annotations


class TestbedError(Exception):
    """Base of every user-facing error; its message is one line saying what, where, what to do."""

    __test__ = False  # not a pytest test class despite the name


class RigError(TestbedError):
    """A rig file is malformed or names something that does not exist."""


class PlanError(TestbedError):
    """A plan file is malformed or inconsistent with the rig or the model zoo."""


class DeviceError(TestbedError):
    """An audio or serial device is missing, busy or failed during a trial."""


class DataError(TestbedError):
    """A dataset or audio file cannot be read or is empty."""


class ModelError(TestbedError):
    """A model is unknown, or its weights or card are missing or tampered with."""


class AttackError(TestbedError):
    """An attack was given arguments it cannot honour."""


class SessionError(TestbedError):
    """A session store is missing, locked or inconsistent."""


class CalibrationError(TestbedError):
    """A calibration measurement failed its own checks (dropouts, no signal)."""


class SerialProtocolError(DeviceError):
    """A serial device answered something the protocol does not allow."""


class PositionerAlarm(DeviceError):
    """A motorised positioner raised an alarm; the session must halt."""


class AnalysisError(TestbedError):
    """A session has nothing to analyse, or a grouping dimension is unknown."""
