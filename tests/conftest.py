"""Shared pytest fixtures. Sub-folders add their own conftest.py next to their tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.jack"]

REPO = Path(__file__).resolve().parents[1]
RIGS = REPO / "rigs"
SHARED = REPO.parent / "shared"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed_torch():
    """torch draws a fresh default seed in every process: seed it so unseeded initial weights in
    a test are the same run to run."""
    import torch

    torch.manual_seed(0)


@pytest.fixture
def office_rig_path() -> Path:
    """The example simulated office rig."""
    return RIGS / "office-sim.toml"


@pytest.fixture
def cli():
    """Invoke the testbed CLI in-process: ``cli(["rig", "check", path])`` -> click Result.

    The process's allocator is set as the ``testbed`` command sets it (:func:`testbed.cli.app.main`),
    so CLI tests run the production allocator.
    """
    from typer.testing import CliRunner

    from testbed.cli.app import app
    from testbed.models.allocator import keep_freed_memory

    keep_freed_memory()

    runner = CliRunner()

    def invoke(args: list[str], **kw):
        return runner.invoke(app, [str(a) for a in args], **kw)

    return invoke


@pytest.fixture(scope="session")
def quick_zoo(tmp_path_factory) -> Path:
    """A models root holding lm-fp32, lm-lowrank, lm-int8 and lm-slr8, trained once per test session
    on the quick synthetic corpus (short training: good enough to beat chance, not the paper)."""
    import torch

    from testbed.models import build_zoo

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("zoo")
    build_zoo(["lm"], ["fp32", "lowrank", "int8", "slr8"], data="synthetic", quick=True, root=root, seed=0,
              steps=80, finetune_steps=20, batch_size=32)
    return root
