"""The process allocator tuning of :mod:`testbed.models.allocator` (run in a child process,
so the test process keeps glibc's defaults)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

_PROBE = r"""
import json, resource
import torch
from testbed.models.allocator import allocator_state, keep_freed_memory

def faults_per_round():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        block = torch.empty(48 << 18)                   # 48 MB, above glibc's largest default threshold
        block.fill_(1.0)
        del block
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4

untuned = faults_per_round()
state_before = allocator_state()
state = keep_freed_memory()
for _ in range(3):                                          # the heap grows to its peak
    faults_per_round()
print(json.dumps({"untuned": untuned, "tuned": faults_per_round(), "state": state,
                  "before": state_before, "again": keep_freed_memory()}))
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="the tuning is for glibc; this checks it on Linux only")
def test_kept_memory_stops_the_page_faults_of_large_blocks():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["before"]["applied"] is False                # nothing happens on import
    assert got["state"]["applied"] is True, got["state"]
    assert "glibc" in got["state"]["detail"] and "256 MiB" in got["state"]["detail"]
    assert got["again"] == got["state"]                      # idempotent
    # 48 MB is ~12,000 pages: mapped afresh each time by default, reused once tuned
    assert got["untuned"] > 5000
    assert got["tuned"] < 100
