"""Shared pytest fixtures. Sub-folders add their own conftest.py next to their tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RIGS = REPO / "rigs"
SHARED = REPO.parent / "shared"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def office_rig_path() -> Path:
    """The example simulated office rig."""
    return RIGS / "office-sim.toml"


@pytest.fixture
def cli():
    """Invoke the testbed CLI in-process: ``cli(["rig", "check", path])`` -> click Result."""
    from typer.testing import CliRunner

    from testbed.cli.app import app

    runner = CliRunner()

    def invoke(args: list[str], **kw):
        return runner.invoke(app, [str(a) for a in args], **kw)

    return invoke
