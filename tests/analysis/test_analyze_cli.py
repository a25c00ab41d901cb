"""`testbed analyze` on real (tiny) SQLite session stores written through the store's own API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testbed.rig import load_rig
from testbed.session.store import CaptureRecord, EvalRecord, SessionStore, TrialRecord
from testbed.session.trials import AttackConfig, TrialSpec

SR = 16000


def make_store(root, rig_path, sid="tiny", commit=True):
    """Two utterances x (none, pgd 0.01) x delays (0, 100) ms, mics ref + cheap, one model.

    Known outcomes: clean trials are always right; under PGD the cheap (DUT) mic is always
    wrong and the reference mic only at 0 ms delay.
    """
    rig = load_rig(rig_path)
    attacks = [AttackConfig("none", "none", 0.0, "untargeted", None, False, {}),
               AttackConfig("pgd-0.01", "pgd", 0.01, "untargeted", "lm-fp32", False, {"steps": 5})]
    utts = [("yes-0", "yes", np.zeros(1600, np.float32), {}), ("no-0", "no", np.zeros(1600, np.float32), {})]
    planned, tid = [], 0
    for uid, lab, _, _ in utts:
        for a in attacks:
            for d in (0.0, 100.0):
                tid += 1
                planned.append(TrialSpec(tid, uid, lab, a.attack_id, d, "P1", 0))
    meta = {"session_id": sid, "plan_name": "tiny", "rig_name": rig.name, "rig": rig.model_dump(mode="json"),
            "plan": {"name": "tiny"}, "seed": 5, "sample_rate": SR, "dut_mic": rig.dut.mic,
            "manifest": {"git_revision": "feedbee", "versions": {"testbed": "0.1.0"}}}
    store = SessionStore.create(root / sid, meta=meta, files={}, attacks=attacks, utterances=utts,
                                planned=planned, sample_rate=SR)
    if commit:
        for t in planned:
            evals = []
            for mic in ("ref", "cheap"):
                wrong = t.attack_id != "none" and (mic == "cheap" or t.delay_ms == 0.0)
                pred = ("no" if t.label == "yes" else "yes") if wrong else t.label
                evals.append(EvalRecord(mic, "lm-fp32", "abc", "live", pred, 0.9))
            caps = [CaptureRecord(m, np.zeros(800, np.float32), spr_db=15.0 if m == "cheap" else 25.0,
                                  dist_user_m=1.0, dist_adv_m=0.5 if m == "cheap" else 2.0)
                    for m in ("ref", "cheap")]
            store.commit_trial(TrialRecord(t.trial_id, caps, evals, realised_delay_ms=t.delay_ms,
                                           adv_pos_m=(4.5, 3.0, 1.0)), SR)
    store.close()
    return root / sid


def test_analyze_json_gives_exact_rates(cli, tmp_path, office_rig_path):
    make_store(tmp_path / "sessions", office_rig_path)
    out = tmp_path / "rep"
    r = cli(["analyze", "tiny", "--by", "mic,attack", "--json", "--sessions-dir", tmp_path / "sessions",
             "--out", out])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rows = {(x["mic"], x["attack"]): (x["errors"], x["n"]) for x in data["rows"]}
    assert rows == {("cheap", "none"): (0, 4), ("cheap", "pgd"): (4, 4),
                    ("ref", "none"): (0, 4), ("ref", "pgd"): (2, 4)}
    pgd = next(x for x in data["rows"] if x["mic"] == "ref" and x["attack"] == "pgd")
    assert pgd["error_lo"] == pytest.approx(0.15004, abs=1e-4) and pgd["error_hi"] == pytest.approx(0.84996, abs=1e-4)
    assert (out / "report.html").is_file() and data["report"] == str(out / "report.html")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["tiny"]["git_revision"] == "feedbee"
    texts = " ".join(f["text"] for f in data["findings"])
    assert "the electret-cheap mic 'cheap' is fooled in 100%" in texts


def test_analyze_table_and_default_report_dir(cli, tmp_path, office_rig_path, monkeypatch):
    make_store(tmp_path / "sessions", office_rig_path)
    monkeypatch.chdir(tmp_path)
    r = cli(["analyze", "tiny", "--by", "delay,spr"])
    assert r.exit_code == 0, r.output
    assert "delay_ms" in r.stdout and "spr_bin" in r.stdout and "10-20 dB" in r.stdout
    assert (tmp_path / "analysis" / "tiny" / "report.html").is_file()


def test_analyze_pools_or_compares_sessions(cli, tmp_path, office_rig_path):
    root = tmp_path / "sessions"
    make_store(root, office_rig_path, "a")
    make_store(root, office_rig_path, "b")
    r = cli(["analyze", "a", "b", "--by", "mic", "--json", "--no-report", "--sessions-dir", root])
    assert r.exit_code == 0, r.output
    assert {x["mic"]: x["n"] for x in json.loads(r.stdout)["rows"]} == {"cheap": 16, "ref": 16}
    r = cli(["analyze", "a", "b", "--by", "mic", "--compare", "--json", "--no-report", "--sessions-dir", root])
    rows = json.loads(r.stdout)["rows"]
    assert {(x["session_id"], x["mic"]): x["n"] for x in rows} == {
        ("a", "cheap"): 8, ("a", "ref"): 8, ("b", "cheap"): 8, ("b", "ref"): 8}


def test_analyze_unknown_session_exits_2(cli, tmp_path, office_rig_path):
    make_store(tmp_path / "sessions", office_rig_path, "real-one")
    r = cli(["analyze", "nope", "--sessions-dir", tmp_path / "sessions"])
    assert r.exit_code == 2
    assert "session 'nope'" in r.output and "real-one" in r.output
    assert "Traceback" not in r.output


def test_analyze_empty_session_exits_2(cli, tmp_path, office_rig_path):
    make_store(tmp_path / "sessions", office_rig_path, "empty", commit=False)
    r = cli(["analyze", "empty", "--sessions-dir", tmp_path / "sessions"])
    assert r.exit_code == 2
    assert "session 'empty'" in r.output and "no evaluations" in r.output
    assert "Traceback" not in r.output


def test_analyze_unknown_dimension_exits_2(cli, tmp_path, office_rig_path):
    make_store(tmp_path / "sessions", office_rig_path)
    r = cli(["analyze", "tiny", "--by", "mic,colour", "--sessions-dir", tmp_path / "sessions"])
    assert r.exit_code == 2
    assert "--by: unknown dimension 'colour'" in r.output and "Traceback" not in r.output
