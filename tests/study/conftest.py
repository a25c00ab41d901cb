"""The quick study on the session's quick zoo, computed once for every test that reads it."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def quick_study(quick_zoo, tmp_path_factory):
    """``(study folder, the --json line)`` of ``study paper --quick`` on the quick zoo; read it, never
    write it (copy it first)."""
    from typer.testing import CliRunner

    from testbed.cli.app import app

    out = tmp_path_factory.mktemp("study") / "study-paper"
    res = CliRunner().invoke(app, ["study", "paper", "--quick", "--root", str(quick_zoo), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)
