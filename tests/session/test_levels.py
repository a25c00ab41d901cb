"""Every trial reports the command's, the perturbation's and the ambient level at each mic, in dBFS
and dB SPL (unweighted and A-weighted); without an SPL calibration a physical rig reports no SPL."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics.weighting import a_weighting_db
from testbed.audio.sim_spl import sim_dbfs_at_94
from testbed.calibration import CalibrationProfile
from testbed.rig import parse_rig, read_toml
from testbed.session import Runner, create_session, open_runner_parts
from testbed.session.levels import trial_levels
from testbed.session.store import open_reader
from tests.session.conftest import KWS, quick_plan, tone_utterances


def test_sim_session_reports_spl_from_the_sims_own_calibration(tmp_path, office_rig_path, tiny_zoo):
    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, plan, models, cal = open_runner_parts(store)
    assert Runner(store, rig, plan, models, calibration=cal).run().reason == "finished"
    with open_reader(store.path) as r:
        facts = {tid: f for tid, mic, _, f in r.capture_timing()}
    labels = {t.trial_id: t.label for t in store.planned()}
    ref94 = sim_dbfs_at_94(rig)
    attacked = 0
    for tid, f in facts.items():
        assert f["spl_source"] == "sim" and "spl_absent" not in f
        assert set(f["levels"]) == {"ref", "cheap"}
        for mic, lv in f["levels"].items():
            for k in ("command", "ambient"):
                assert lv[f"{k}_db_spl"] == pytest.approx(lv[f"{k}_dbfs"] - ref94[mic] + 94, abs=0.02)
            # each command is one tone: A-weighting takes off what IEC 61672 gives at its frequency
            f_hz = 250.0 + 90.0 * KWS.index(labels[tid])
            assert lv["command_dba_spl"] - lv["command_db_spl"] == pytest.approx(
                a_weighting_db(np.array([f_hz]), rig.sample_rate)[0], abs=0.3)
            # the office's background is 35 dB SPL (pink): a quiet room, far below the command
            assert 20 < lv["ambient_dba_spl"] < 50 and lv["command_db_spl"] > lv["ambient_db_spl"] + 20
            if "perturbation_dbfs" in lv:
                attacked += 1
                assert lv["perturbation_db_spl"] < lv["command_db_spl"]
    assert attacked == 2 * 4        # 4 fgsm trials x 2 mics

    # the report shows them: medians by mic, attack and eps, SPL beside dBFS
    from testbed.analysis import load_sessions
    from testbed.analysis.report import build_report

    rep = build_report(load_sessions([store.path]), tmp_path / "report")
    spl = rep.summary["spl"]
    assert spl["note"] is None and spl["source"] == ["sim"]
    rows = {(r["mic"], r["attack"]): r for r in spl["rows"]}
    assert set(rows) == {(m, a) for m in ("ref", "cheap") for a in ("none", "fgsm")}
    assert all(r["n"] == 4 for r in rows.values())
    fgsm = rows[("cheap", "fgsm")]
    want = np.median([f["levels"]["cheap"]["perturbation_db_spl"] for f in facts.values()
                      if "perturbation_db_spl" in f["levels"]["cheap"]])
    assert fgsm["perturbation_db_spl"] == pytest.approx(want, abs=0.05)
    assert rows[("ref", "none")]["perturbation_db_spl"] is None
    html = rep.html_path.read_text()
    assert "Levels in dB SPL" in html and f"{fgsm['perturbation_db_spl']:.1f} (" in html
    assert "No levels in dB SPL" not in html
    store.close()


def _physical(office_rig_path):
    data = read_toml(office_rig_path)
    data["backend"] = "sounddevice"
    return parse_rig(data, office_rig_path)


def test_physical_rig_without_spl_calibration_has_no_spl_and_says_why(office_rig_path):
    rig = _physical(office_rig_path)
    sr = rig.sample_rate
    tone = (0.1 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)).astype(np.float32)
    caps = {m: np.concatenate([np.zeros(1600, np.float32), 0.01 * tone]) for m in rig.mics}
    got = trial_levels(rig, None, {"user": tone}, {}, caps, 1600)
    assert "spl_source" not in got and "--what spl" in got["spl_absent"]
    assert all(not any(k.endswith("_spl") for k in lv) for lv in got["levels"].values())
    assert all("command_dbfs" not in lv for lv in got["levels"].values())   # no path gain measured either

    # with a level and an SPL calibration: the path gain and the mic's 94 dB reading give SPL
    prof = CalibrationProfile(rig=rig.name, backend="sounddevice", sample_rate=sr, reference_level_dbfs=-20.0,
                              level_dbfs={f"user->{m}": -40.0 for m in rig.mics},
                              spl_dbfs_at_94={m: -30.0 for m in rig.mics})
    got = trial_levels(rig, prof, {"user": tone}, {}, caps, 1600)
    assert got["spl_source"] == "calibration"
    sent = 20 * np.log10(0.1 / np.sqrt(2))
    for lv in got["levels"].values():
        assert lv["command_dbfs"] == pytest.approx(sent - 20.0, abs=0.02)
        assert lv["command_db_spl"] == pytest.approx(sent - 20.0 + 30.0 + 94.0, abs=0.02)
        assert lv["command_dba_spl"] == pytest.approx(lv["command_db_spl"], abs=0.1)   # 1 kHz: A = 0 dB


def test_physical_session_without_spl_calibration_reports_why(tmp_path, office_rig_path, tiny_zoo):
    import tomli_w

    from testbed.analysis import load_sessions
    from testbed.analysis.report import build_report
    from testbed.audio.sim import SimBackend

    data = read_toml(office_rig_path)
    data["backend"] = "sounddevice"           # a physical rig that was never calibrated
    data.pop("placements", None)
    rig_path = tmp_path / "lab.toml"
    rig_path.write_bytes(tomli_w.dumps(data).encode())
    plan = quick_plan(tmp_path)
    plan.write_text(plan.read_text().replace('placements = ["P1", "P2"]', ""))
    store = create_session(plan, rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes"]))
    rig, plan, models, cal = open_runner_parts(store)
    assert cal is None
    Runner(store, rig, plan, models, backend=SimBackend(parse_rig(data, rig_path), seed=1)).run()
    rep = build_report(load_sessions([store.path]), tmp_path / "report")
    assert "--what spl" in rep.summary["spl"]["note"]
    assert all(not any(k.endswith("_spl") for k in r if r[k] is not None) for r in rep.summary["spl"]["rows"])
    html = rep.html_path.read_text()
    assert "No levels in dB SPL: no SPL calibration for rig" in html
    store.close()


def test_sim_spl_agrees_with_the_rigs_level_model(office_rig_path):
    """A speaker rated ``spl_at_1m_db`` for a full-scale sine, 2 m away on axis in an anechoic
    room, plays a 1 kHz sine at -20 dBFS peak: the trial reads spl_at_1m - 20 - 6 dB SPL at the mic."""
    from testbed.audio import Playback
    from testbed.audio.sim import SimBackend

    data = read_toml(office_rig_path)
    data["room"] = {**data["room"], "rt60_s": 0.0, "noise_dbspl": 0.0}
    data["speakers"]["user"] = {**data["speakers"]["user"], "position_m": [1.0, 2.5, 1.0], "facing_deg": 0.0,
                                "response": "flat", "spl_at_1m_db": 100.0}
    data["mics"] = {"ref": {**data["mics"]["ref"], "position_m": [3.0, 2.5, 1.0]}}
    data["dut"] = {**data["dut"], "mic": "ref"}
    data.pop("placements")
    rig = parse_rig(data, office_rig_path)
    sr = rig.sample_rate
    tone = (0.1 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)).astype(np.float32)
    cap = SimBackend(rig, seed=1).run_trial({"user": Playback(tone, 1600.0)}, 1.4)
    lv = trial_levels(rig, None, {"user": tone}, cap.facts.as_dict(), cap.mics, 1600)["levels"]["ref"]
    want = 100.0 - 20.0 - 20 * np.log10(2.0)
    assert lv["command_db_spl"] == pytest.approx(want, abs=0.5)
    assert lv["command_dba_spl"] == pytest.approx(want, abs=0.5)        # 1 kHz: A-weighting is 0 dB
    # and the capture itself, over the tone's steady middle, reads the same through the sim's calibration
    mid = cap.mics["ref"][1600 + 3000:1600 + sr - 3000]
    assert 94 + 20 * np.log10(np.sqrt(np.mean(mid.astype(float) ** 2))) - sim_dbfs_at_94(rig)["ref"] == \
        pytest.approx(want, abs=0.5)
