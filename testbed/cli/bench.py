"""`testbed bench` (being built; see the issue tracker)."""

from __future__ import annotations

from testbed.errors import TestbedError


def bench() -> None:
    """Not available yet in this build."""
    raise TestbedError("'testbed bench' is not available in this build yet")
