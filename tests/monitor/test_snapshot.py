"""The monitor's snapshot, read from the store without the writer's lock: figures, states, replay, pictures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from testbed.analysis.stats import wilson_interval
from testbed.monitor import SessionWatcher, build_snapshot
from testbed.monitor.signals import envelope, spectrogram
from testbed.monitor.snapshot import finite
from testbed.session.store import SessionReader
from tests.monitor.conftest import MICS, MODELS, SR, SyntheticWriter, make_record


def committed(store, n: int, abandon: bool = True) -> SyntheticWriter:
    w = SyntheticWriter(store).start()
    w.release(n)
    if abandon:
        import time

        deadline = time.monotonic() + 60
        while len(w.committed) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        w.abandon()
    return w


def test_error_tables_agree_with_the_evaluations_frame(session_store):
    committed(session_store, 20)
    with SessionReader(session_store.path) as r:
        snap = build_snapshot(r)
        df = r.evaluations_frame()
    dut = df[df["mic"] == "cheap"]
    by_attack = next(t for t in snap["errors"]["tables"] if t["key"] == "attack_eps")
    for row in by_attack["rows"]:
        kind = "none" if row["value"] == "none" else "fgsm"
        for model in MODELS:
            sub = dut[(dut["attack"] == kind) & (dut["model"] == model)]
            wrong = int((sub["prediction"] != sub["label"]).sum())
            c = row["cells"][model]
            assert (c["n"], c["wrong"]) == (len(sub), wrong)
            assert (c["lo"], c["hi"]) == pytest.approx(wilson_interval(wrong, len(sub)))
    by_mic = next(t for t in snap["errors"]["tables"] if t["key"] == "mic")
    assert sorted(r["value"] for r in by_mic["rows"]) == sorted(MICS)
    assert sum(c["n"] for r in by_mic["rows"] for c in r["cells"].values()) == len(df)
    assert snap["errors"]["models"] == list(MODELS)
    assert snap["done"] == 20 and snap["retried"] == len([t for t in range(20) if t % 7 == 3])


def test_levels_limiter_and_clipping_come_from_the_last_trial(session_store):
    committed(session_store, 6)
    with SessionReader(session_store.path) as r:
        snap = build_snapshot(r)
        caps = [c for c in r.captures() if c["trial_id"] == snap["last"]["trial_id"]]
    assert {m["name"] for m in snap["mics"]} == {"ref", "phone", "cheap"}
    for m in snap["mics"]:
        c = next(c for c in caps if c["mic"] == m["name"])
        assert m["peak_dbfs"] == pytest.approx(c["peak_dbfs"]) and m["rms_dbfs"] == pytest.approx(c["rms_dbfs"])
    adv = next(s for s in snap["speakers"] if s["name"] == "adversary")
    # the synthetic writer engages the adversary's limiter on every attacked trial
    attacked = [t for t in session_store.planned()[:6] if t.attack_id != "none"]
    assert 0 < len(attacked) < 6 and adv["limited_trials"] == len(attacked)
    assert adv["limited"] is (snap["last"]["attack_kind"] != "none")
    assert set(snap["pictures"]["mics"]) == set(MICS)


@pytest.mark.parametrize("how, state, words", [
    ("crash", "killed", "crashed"),
    ("stop", "stopped", "stopped"),
    ("never", "created", "never started"),
])
def test_the_page_is_told_plainly_when_the_session_is_not_running(session_store, how, state, words):
    if how != "never":
        committed(session_store, 2)
    if how == "stop":
        session_store.event("stopped", "stopped by the operator")
    with SessionReader(session_store.path) as r:
        snap = build_snapshot(r)
    assert (snap["state"], snap["running"]) == (state, False)
    assert words in snap["state_text"] and "not running" in snap["state_text"]
    assert snap["eta_s"] is None and snap["now"] is None


def test_running_session_shows_the_trial_now_playing(session_store):
    w = committed(session_store, 3, abandon=False)
    import time

    deadline = time.monotonic() + 60
    while len(w.committed) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with SessionReader(session_store.path) as r:
            snap = build_snapshot(r)
        pending = session_store.pending()[0]
        assert snap["state"] == "running" and snap["running"]
        assert snap["now"]["trial_id"] == pending.trial_id and snap["now"]["placement"] == pending.placement
        assert snap["eta_s"] is not None and snap["eta_s"] >= 0
    finally:
        w.abandon()


def test_a_pause_is_shown_until_the_session_resumes(session_store):
    w = committed(session_store, 2, abandon=False)
    import time

    deadline = time.monotonic() + 60
    while len(w.committed) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        session_store.event("paused", "ambient 71 dB SPL at ref above 60 dB SPL")
        with SessionReader(session_store.path) as r:
            snap = build_snapshot(r)
            assert snap["state"] == "paused" and snap["running"]
            assert "paused" in snap["state_text"] and "ambient 71 dB SPL" in snap["state_text"]
            session_store.event("resumed", "ambient level cleared for 10 s")
            assert build_snapshot(r)["state"] == "running"
    finally:
        w.abandon()


def test_replay_shows_the_session_as_it_was_after_k_trials(session_store):
    committed(session_store, 10)
    w = SessionWatcher(session_store.path)
    try:
        for k in (1, 4, 10):
            snap = json.loads(w.replay(k))
            assert (snap["state"], snap["done"], snap["committed"]) == ("replay", k, 10)
            n_dut = sum(c["n"] for c in snap["errors"]["overall"].values())
            assert n_dut == k * len(MODELS)
            assert snap["last"]["trial_id"] == k - 1 and snap["now"]["trial_id"] == k - 1
    finally:
        w.close()


def test_watcher_rebuilds_only_when_the_store_changes(session_store):
    w = SessionWatcher(session_store.path)
    try:
        v1, t1 = w.current()
        v2, _ = w.current()
        assert v2 == v1 and w.builds == 1
        assert w.builds == 1                      # nothing changed: nothing rebuilt
        committed(session_store, 1)
        import time

        deadline = time.monotonic() + 30          # rebuilds are rationed, never held back > 1 s
        while (v3 := w.current()[0]) == v1 and time.monotonic() < deadline:
            time.sleep(0.05)
        t3 = w.current()[1]
        assert v3 > v1 and json.loads(t3)["done"] == 1 and json.loads(t1)["done"] == 0
        committed(session_store, 4)
        deadline = time.monotonic() + 30
        while json.loads(w.current()[1])["done"] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        # the watcher counts errors incrementally: the same tables as counting everything again
        with SessionReader(session_store.path) as r:
            assert json.loads(w.current()[1])["errors"] == json.loads(json.dumps(build_snapshot(r)["errors"]))
    finally:
        w.close()


def test_envelope_and_spectrogram_find_the_tone():
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 2000.0 * t)).astype(np.float32)
    env = envelope(x, 100)
    assert len(env["min"]) == len(env["max"]) == 100
    assert max(env["max"]) == pytest.approx(0.5, abs=1e-3) and min(env["min"]) == pytest.approx(-0.5, abs=1e-3)
    spec = spectrogram(x, SR, n_freqs=64, n_frames=50)
    db = np.array(spec["db"])
    assert db.shape == (64, 50)
    row = int(np.argmax(db.mean(axis=1)))
    assert abs(row * (SR / 2) / 64 - 2000.0) < 2 * (SR / 2) / 64
    assert spec["hi_db"] == pytest.approx(20 * math.log10(0.5), abs=3)   # a 0.5 sine peaks near -6 dBFS


def test_snapshots_are_strict_json():
    assert finite({"a": [float("nan"), float("-inf"), np.float32(1.5)], "b": np.int64(3)}) == \
        {"a": [None, None, 1.5], "b": 3}


def test_levels_in_db_spl_reach_the_page_or_it_says_why_not(session_store):
    """Issue #23: the monitor shows the command's and the perturbation's level in dB SPL where the
    trial has them (facts["levels"], written by session/levels.py), and the reason where it has not."""
    rng = np.random.default_rng(3)
    specs = session_store.planned()[:2]
    rec = make_record(specs[0], 0.0, rng)
    rec.facts["levels"] = {"cheap": {"command_db_spl": 62.5, "command_dba_spl": 60.1,
                                     "perturbation_db_spl": 41.0, "perturbation_dba_spl": 38.2}}
    rec.facts["spl_source"] = "sim"
    with session_store.locked():
        session_store.commit_trial(rec, SR)
    with SessionReader(session_store.path) as r:
        snap = build_snapshot(r)
    cheap = next(m for m in snap["mics"] if m["name"] == "cheap")
    assert cheap["spl"] == {"command_db_spl": 62.5, "command_dba_spl": 60.1,
                            "perturbation_db_spl": 41.0, "perturbation_dba_spl": 38.2}
    assert snap["spl_source"] == "sim"
    assert next(m for m in snap["mics"] if m["name"] == "ref")["spl"] is None
    rec = make_record(specs[1], 0.0, rng)
    rec.facts["spl_absent"] = "no SPL calibration: run testbed calibrate --what spl"
    with session_store.locked():
        session_store.commit_trial(rec, SR)
    with SessionReader(session_store.path) as r:
        snap = build_snapshot(r)
    assert all(m["spl"] is None for m in snap["mics"]) and "calibrate --what spl" in snap["spl_absent"]


def test_incremental_follower_gives_the_full_snapshot(session_store):
    """The watcher reads only what was committed since its last look; its snapshot must equal one read
    over every trial, also after a commit below the largest trial id (out of trial order)."""
    from testbed.monitor.follow import TrialFollower

    rng = np.random.default_rng(5)
    eps = {a.attack_id: a.eps for a in session_store.attacks().values()}
    specs = session_store.planned()
    # in trial order in steps, then two trials skipped earlier arrive late (as from cluster workers)
    steps = [specs[0:1], specs[1:5], specs[7:12], specs[5:6], specs[12:13], specs[6:7], specs[13:20]]
    follower, errors = TrialFollower(), None
    session_store.lock()
    try:
        session_store.event("started", "test")
        with SessionReader(session_store.path) as r:
            for step in steps:
                for spec in step:
                    session_store.commit_trial(make_record(spec, eps[spec.attack_id], rng), SR)
                inc = build_snapshot(r, follower=follower, errors=errors, with_pictures=False)
                full = build_snapshot(r, with_pictures=False)
                for snap in (inc, full):
                    snap.pop("generated_at")
                assert inc == full
            assert inc["done"] == 20 and inc["retried"] > 0 and inc["now"]["trial_id"] == 20
            assert any(e["kind"] == "retry" for e in inc["events"])
    finally:
        session_store.unlock()
    assert follower.recounts == 3      # the first look and the two late commits; the other steps: increments
