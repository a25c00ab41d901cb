"""Benchmarks: performance figures as ratios against a baseline measured in the same run.

Each area has a module here exposing ``run(quick: bool = False) -> dict``; the
``testbed bench`` command runs the ones asked for and prints one JSON object
``{"allocator": {...}, area: {key: value, ...}, ...}`` (``allocator``: whether this process
keeps freed memory, :func:`testbed.models.allocator.allocator_state`, as the ``testbed``
command sets it). Targets are never asserted in tests.
"""

from __future__ import annotations

import importlib

#: area name -> module path; a module that is not present yet is reported as such.
AREAS: dict[str, str] = {
    "sim": "testbed.bench.sim",
    "data": "testbed.bench.data",
    "models": "testbed.bench.models",
    "attacks": "testbed.bench.attacks",
    "ensemble": "testbed.bench.ensemble",
    "session": "testbed.bench.session",
    "scale": "testbed.bench.scale",
    "monitor": "testbed.bench.monitor",
}


def available() -> list[str]:
    """Areas whose benchmark module exists in this build."""
    out = []
    for area, mod in AREAS.items():
        try:
            importlib.util.find_spec(mod)
        except ModuleNotFoundError:
            continue
        if importlib.util.find_spec(mod) is not None:
            out.append(area)
    return out


def run(only: list[str] | None = None, quick: bool = False) -> dict[str, dict]:
    """Run the benchmarks of ``only`` (default: all available) and return their figures, after
    an ``allocator`` entry saying how this process's allocator was set while they ran."""
    from testbed.errors import TestbedError
    from testbed.models.allocator import allocator_state

    areas = only or available()
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        raise TestbedError(f"--only: unknown benchmark area {', '.join(unknown)} (have: {', '.join(AREAS)})")
    missing = [a for a in areas if a not in available()]
    if missing:
        raise TestbedError(f"--only: benchmark {', '.join(missing)} is not in this build yet")
    figures = {a: _isolated(importlib.import_module(AREAS[a]).run, quick) for a in areas}
    return {"allocator": allocator_state(), **figures}


def _isolated(run_area, quick: bool) -> dict:
    """Run one area, then restore torch's thread count (some areas pin one thread, which would
    otherwise carry over into the areas after them)."""
    from testbed.models.threads import torch_threads

    with torch_threads():
        return run_area(quick=quick)
