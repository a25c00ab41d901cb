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


_WORKER_PROBE = _PROBE.replace("state = keep_freed_memory()", """from testbed.scale.worker import setup_torch
before_threads = torch.get_num_threads()
setup_torch()
state = allocator_state()""")


@pytest.mark.skipif(platform.system() != "Linux", reason="the tuning is for glibc; this checks it on Linux only")
def test_a_dask_worker_gets_the_commands_allocator_even_under_a_nanny_trim_threshold():
    """A Dask nanny sets ``MALLOC_TRIM_THRESHOLD_``, which pins glibc's mmap threshold low: the
    worker's setup must end up with the same setting as the ``testbed`` command."""
    import os

    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", _WORKER_PROBE], capture_output=True, text=True, check=True,
                         env=env)
    got = json.loads(out.stdout)
    assert got["before"]["applied"] is False
    assert got["state"]["applied"] is True and "256 MiB" in got["state"]["detail"], got["state"]
    assert "1024 MiB" in got["state"]["detail"]
    assert got["again"] == got["state"]                      # the command's function agrees: already applied
    assert got["untuned"] > 5000
    assert got["tuned"] < 100


def test_the_cli_fixture_runs_the_production_allocator(cli):
    from testbed.models.allocator import allocator_state

    r = cli(["--help"])
    assert r.exit_code == 0
    state = allocator_state()
    assert state["applied"] is (platform.system() == "Linux"), state


def test_the_session_manifest_and_the_bench_output_record_the_allocator(monkeypatch):
    import testbed.bench as bench
    from testbed.models.allocator import allocator_state, keep_freed_memory
    from testbed.session.manifest import build_manifest

    keep_freed_memory()
    manifest = build_manifest(seed=1, model_hashes={}, plan_sha256=None, rig_sha256=None, calibration_sha256=None)
    assert manifest["allocator"] == allocator_state()
    assert set(manifest["allocator"]) == {"applied", "detail"}
    json.dumps(manifest)
    monkeypatch.setattr(bench, "_isolated", lambda run_area, quick: {"figure": 1.0})
    out = bench.run(["sim"], quick=True)
    assert out == {"allocator": allocator_state(), "sim": {"figure": 1.0}}
    assert list(out)[0] == "allocator"
