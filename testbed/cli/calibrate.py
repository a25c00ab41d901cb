"""`testbed calibrate` (being built; see the issue tracker)."""

from __future__ import annotations

from testbed.errors import TestbedError


def calibrate() -> None:
    """Not available yet in this build."""
    raise TestbedError("'testbed calibrate' is not available in this build yet")
