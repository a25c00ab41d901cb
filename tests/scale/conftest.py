"""A real Dask scheduler and two workers on 127.0.0.1, started and stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.session.conftest import tiny_zoo  # noqa: F401  (the fixture, re-exported for these tests)

REPO = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).with_name("dask"))


@dataclass
class DaskProcs:
    """The scheduler's address and the pids of the processes this test started."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=5)


def start_dask(tmp: Path, n_workers: int = 2, timeout_s: float = 120.0) -> DaskProcs:
    """``dask scheduler`` plus ``n_workers`` single-threaded ``dask worker`` processes (no nanny,
    so killing a worker's pid really loses that worker)."""
    sched_file = tmp / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    log = open(tmp / "dask.log", "ab")   # noqa: SIM115 (closed with the processes)
    sched = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                              "--scheduler-file", str(sched_file)], stdout=log, stderr=log, env=env, cwd=tmp)
    procs = DaskProcs("", sched)
    t0 = time.monotonic()
    while not sched_file.is_file():
        if sched.poll() is not None or time.monotonic() - t0 > timeout_s:
            procs.stop()
            raise RuntimeError(f"dask scheduler did not start: {(tmp / 'dask.log').read_text()[-2000:]}")
        time.sleep(0.1)
    time.sleep(0.2)
    procs.address = json.loads(sched_file.read_text())["address"]
    for _ in range(n_workers):
        procs.workers.append(subprocess.Popen(
            [DASK, "worker", procs.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
             "--host", "127.0.0.1"], stdout=log, stderr=log, env=env, cwd=tmp))
    from distributed import Client

    with Client(procs.address, timeout=timeout_s) as c:
        c.wait_for_workers(n_workers, timeout=timeout_s)
    return procs


@pytest.fixture(scope="module")
def dask_procs(tmp_path_factory):
    """A scheduler and two workers shared by a test module."""
    procs = start_dask(tmp_path_factory.mktemp("dask"))
    yield procs
    procs.stop()


@pytest.fixture
def client(dask_procs):
    from distributed import Client

    with Client(dask_procs.address, timeout=30) as c:
        yield c
