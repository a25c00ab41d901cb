"""`testbed demo` (being built; see the issue tracker)."""

from __future__ import annotations

from testbed.errors import TestbedError


def demo() -> None:
    """Not available yet in this build."""
    raise TestbedError("'testbed demo' is not available in this build yet")
