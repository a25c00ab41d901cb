"""`testbed devices` (being built; see the issue tracker)."""

from __future__ import annotations

from testbed.errors import TestbedError


def devices() -> None:
    """Not available yet in this build."""
    raise TestbedError("'testbed devices' is not available in this build yet")
