"""`testbed session run` end to end through the CLI with the real data source (synthetic commands)."""

from __future__ import annotations

import json
from pathlib import Path

from testbed.session import load_evaluations

PLANS = Path(__file__).resolve().parents[2] / "sessions" / "plans"


def test_session_run_quick_sim_plan_from_the_cli(cli, tmp_path, office_rig_path, tiny_zoo):
    sessions = tmp_path / "sessions"
    r = cli(["session", "run", PLANS / "quick-sim.toml", "--rig", office_rig_path, "--id", "demo",
             "--sessions-dir", sessions, "--models-dir", tiny_zoo, "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["id"], out["done"], out["total"], out["failed"], out["reason"]) == ("demo", 8, 8, 0, "finished")
    df = load_evaluations(sessions / "demo")
    assert len(df) == 8 * 2 * 3
    assert sorted(df["utterance_id"].unique()) == sorted(df.groupby("utterance_id")["label"].first().index)
    assert set(df["label"]) == {"yes", "no"}
    # the clean commands the data source gave are stored with the session
    assert len(list((sessions / "demo" / "utterances").glob("*.wav"))) == 2
    r = cli(["session", "run", PLANS / "quick-sim.toml", "--rig", office_rig_path, "--id", "demo",
             "--sessions-dir", sessions, "--models-dir", tiny_zoo])
    assert r.exit_code == 2 and "already exists" in r.output and "Traceback" not in r.output
    r = cli(["session", "resume", "demo", "--sessions-dir", sessions, "--models-dir", tiny_zoo, "--json", "-q"])
    assert r.exit_code == 0 and json.loads(r.stdout)["done"] == 8
