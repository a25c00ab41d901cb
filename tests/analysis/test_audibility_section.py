"""The report's "How audible was it" section (issue 24): success beside the stored audibility facts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tomli_w

from testbed.analysis import load_sessions
from testbed.analysis.report import build_report
from testbed.analysis.targeted import targeted_table
from testbed.analysis.plots import dut_view
from tests.session.conftest import tiny_zoo, tone_utterances  # noqa: F401  (fixture)

PLAN = {
    "name": "aud-report", "seed": 2,
    "utterances": {"labels": ["yes", "no"], "per_label": 1},
    "attacks": [
        {"kind": "none"},
        {"kind": "fgsm", "eps": [0.01], "source_model": "lm-fp32"},
        {"kind": "fgsm", "eps": [0.02], "source_model": "lm-fp32", "targets": {"yes": "go", "no": "up"}},
    ],
    "sweep": {"delay_ms": [0, 100], "placements": ["P1"], "mics": ["ref", "cheap"]},
    "evaluate": {"models": ["lm-fp32", "lm-int8"]},
    "timing": {"preroll_s": 0.1, "tail_s": 0.1},
}


@pytest.fixture(scope="module")
def session(tmp_path_factory, tiny_zoo):  # noqa: F811
    from testbed.session import Runner, create_session, open_runner_parts
    from testbed.workspace import assets_dir

    tmp = tmp_path_factory.mktemp("audrep")
    path = tmp / "plan.toml"
    path.write_text(tomli_w.dumps(PLAN))
    store = create_session(path, assets_dir() / "rigs" / "office-sim.toml", root=tmp / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, p, models, cal = open_runner_parts(store)
    assert Runner(store, rig, p, models, calibration=cal).run().reason == "finished"
    store.close()
    return store.path, tmp


def _facts(path) -> dict[int, dict]:
    import sqlite3

    with sqlite3.connect(path / "session.sqlite") as db:
        return {tid: json.loads(f) for tid, f in db.execute("SELECT trial_id, facts FROM trials")}


def test_the_section_matches_the_stored_facts_and_counts_targets_as_targeted_does(session):
    path, tmp = session
    sessions = load_sessions([path])
    rep = build_report(sessions, tmp / "out")
    sec = rep.summary["audibility"]
    assert sec["note"] is None
    rows = sec["rows"]
    # one untargeted row (any error) and one row per source -> target pair
    assert sorted((r["attack"], r["label"], r["target"], r["measure"]) for r in rows) == [
        ("fgsm", "*", "untargeted", "error"), ("fgsm", "no", "up", "target"), ("fgsm", "yes", "go", "target")]
    df = sessions.evaluations
    dut = dut_view(df)
    dut_mic = dut["mic"].iloc[0]
    facts = _facts(path)
    t = targeted_table(dut)
    for r in rows:
        sub = dut[dut["attack_id"] == r["attack_id"]]
        if r["measure"] == "target":
            sub = sub[sub["label"] == r["label"]]
            want = t[(t["label"] == r["label"]) & (t["target"] == r["target"])].iloc[0]
            assert (r["k"], r["n"]) == (int(want["hits"]), int(want["n"]))
            assert r["lo"] == pytest.approx(want["success_lo"]) and r["hi"] == pytest.approx(want["success_hi"])
        else:
            assert (r["k"], r["n"]) == (int((sub["prediction"] != sub["label"]).sum()), len(sub))
        tids = sorted(set(sub["trial_id"]))
        assert r["n_trials"] == len(tids) == (2 if r["measure"] == "target" else 4)   # 2 delays x 1 or 2 utterances
        spk = [facts[t_]["audibility"]["speaker"] for t_ in tids]
        mic = [facts[t_]["audibility"]["mics"][dut_mic] for t_ in tids]
        for prefix, entries in (("speaker", spk), ("dut", mic)):
            snr = [e["snr_db"] for e in entries]
            assert r[f"{prefix}_snr_db"] == pytest.approx(np.median(snr))
            assert r[f"{prefix}_snr_q25"] == pytest.approx(np.percentile(snr, 25))
            assert r[f"{prefix}_snr_q75"] == pytest.approx(np.percentile(snr, 75))
            assert r[f"{prefix}_frames_above"] == pytest.approx(np.median([e["frames_above"] for e in entries]))
            assert r[f"{prefix}_margin_db"] == pytest.approx(np.median([e["masking_margin_db"] for e in entries]))
            assert r[f"{prefix}_median_margin_db"] == pytest.approx(
                np.median([e["median_margin_db"] for e in entries]))
            assert r[f"{prefix}_n_aud"] == len(tids)
    html = rep.html_path.read_text()
    assert "How audible was it" in html and "yes -&gt; go" in html
    assert f"{rows[0]['speaker_snr_db']:.1f} [" in html


def test_old_sessions_without_audibility_facts_say_why(session, tmp_path):
    import shutil
    import sqlite3

    path, _ = session
    old = tmp_path / path.name
    shutil.copytree(path, old)
    with sqlite3.connect(old / "session.sqlite") as db:
        db.execute("UPDATE trials SET facts = json_remove(facts, '$.audibility')")
    rep = build_report(load_sessions([old]), tmp_path / "out")
    sec = rep.summary["audibility"]
    assert "recorded no audibility" in sec["note"]
    assert all(r["speaker_snr_db"] is None and r["dut_n_aud"] == 0 for r in sec["rows"])
    assert [r["n"] for r in sec["rows"]] == [r["n"] for r in build_report(load_sessions([path]), tmp_path / "o2")
                                             .summary["audibility"]["rows"]]    # success is still reported
    assert "No audibility figures: these sessions recorded no audibility" in rep.html_path.read_text()
