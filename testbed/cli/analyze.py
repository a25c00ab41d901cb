"""`testbed analyze` (being built; see the issue tracker)."""

from __future__ import annotations

from testbed.errors import TestbedError


def analyze() -> None:
    """Not available yet in this build."""
    raise TestbedError("'testbed analyze' is not available in this build yet")
