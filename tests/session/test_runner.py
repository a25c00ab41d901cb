"""The runner on the simulated office rig: exactly the planned trials, geometry, delays, stops, prompts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from testbed.audio.sim import SimBackend
from testbed.rig import geometry_table, load_rig, parse_rig, read_toml
from testbed.session import COLUMNS, Runner, create_session, load_evaluations, load_session_meta, open_runner_parts
from tests.session.conftest import quick_plan, tone_utterances


def _run(store, **kw):
    rig, plan, models, cal = open_runner_parts(store)
    return Runner(store, rig, plan, models, calibration=cal, **kw).run()


def test_sim_session_produces_exactly_the_planned_trials(tmp_path, office_rig_path, tiny_zoo):
    plan_path = quick_plan(tmp_path, delays=(0, 100))
    store = create_session(plan_path, office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    events = []
    res = _run(store, on_event=events.append)
    assert res.reason == "finished"
    # 2 utterances x (none, fgsm) x 2 delays x 2 placements
    st = store.status()
    assert (st["done"], st["total"], st["failed"], st["corrupted"]) == (16, 16, 0, [])
    df = load_evaluations(store.path)
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert len(df) == 16 * 2 * 3
    per_trial = Counter(df["trial_id"])
    assert sorted(per_trial) == list(range(16)) and set(per_trial.values()) == {6}
    assert set(df["eval_source"]) == {"live"}
    assert df.loc[df.is_dut_mic, "mic"].unique().tolist() == ["cheap"]
    assert set(df["mic_tier"]) == {"reference", "electret-cheap"}
    # geometry matches the rig at each placement
    rig = load_rig(office_rig_path)
    for (placement, mic), g in df.groupby(["placement", "mic"]):
        table = geometry_table(rig, placement)
        assert np.allclose(g["dist_user_m"], table["user"][mic].distance_m)
        assert np.allclose(g["dist_adv_m"], table["adversary"][mic].distance_m)
        assert np.allclose(g["adv_x_m"], rig.placements[placement]["adversary"][0])
    atk = df[df.attack == "fgsm"]
    assert atk["spr_db"].notna().all() and df[df.attack == "none"]["spr_db"].isna().all()
    assert np.allclose(atk["realised_delay_ms"], atk["delay_ms"], atol=0.01)
    assert (df["snr_db"] > 0).all()
    assert set(df["eps"]) == {0.0, 0.01}
    # every capture reads back and is as long as the recording
    caps = [p for p in sorted(store.path.glob("audio/*/*.flac")) if ".played" not in p.name]
    assert len(caps) == 16 * 2
    for p in caps:
        sig, sr = sf.read(p)
        assert sr == 16000 and len(sig) > 16000
    # the perturbation was crafted once per (utterance, attack), not per trial
    assert len(list(store.path.glob("perturbations/*.wav"))) == 2
    assert len([e for e in events if e.kind == "trial"]) == 16
    meta = load_session_meta(store.path)
    assert meta["seed"] == 1 and meta["stop_reason"] == "finished"
    assert set(meta["model_hashes"]) == {"lm-fp32", "lm-lowrank", "lm-int8"}
    assert meta["versions"]["numpy"] == np.__version__
    for f in ("plan.toml", "rig.toml", "manifest.json"):
        assert (store.path / f).is_file()
    store.close()


def test_arrival_referenced_delay_is_realised_at_the_dut_mic(tmp_path, office_rig_path, tiny_zoo):
    plan_path = quick_plan(tmp_path, delays=(50,), reference="arrival")
    store = create_session(plan_path, office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes"]))
    _run(store)
    df = load_evaluations(store.path)
    atk = df[(df.attack == "fgsm")]
    dut = atk[atk.is_dut_mic]
    # the two signals arrive at the DUT mic 50 ms apart (direct path, clock error of 40 ppm aside)
    assert np.allclose(dut["arrival_delay_ms"], 50.0, atol=0.05)
    assert np.allclose(dut["realised_delay_ms"], 50.0, atol=0.01)
    # at the other mic the geometry makes it different
    ref = atk[~atk.is_dut_mic]
    assert (abs(ref["arrival_delay_ms"] - 50.0) > 0.1).all()
    store.close()


def test_stop_request_ends_cleanly_and_resume_finishes(tmp_path, office_rig_path, tiny_zoo):
    plan_path = quick_plan(tmp_path)
    store = create_session(plan_path, office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    seen = []

    def on_event(e):
        if e.kind == "trial":
            seen.append(e.trial_id)

    res = _run(store, on_event=on_event, should_stop=lambda: len(seen) >= 3)
    assert res.reason == "stopped"
    assert store.done_ids() == {0, 1, 2}
    assert store.status()["state"] == "stopped"
    res = _run(store, on_event=on_event)
    assert res.reason == "finished" and seen == list(range(8))
    assert store.status()["done"] == 8
    store.close()


def test_resumed_session_records_the_same_audio_as_an_uninterrupted_one(tmp_path, office_rig_path, tiny_zoo):
    utts = tone_utterances(["yes", "no"])
    a = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "a", models_root=tiny_zoo,
                       utterances=utts)
    _run(a)
    b = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "b", models_root=tiny_zoo,
                       utterances=utts)
    n = [0]
    _run(b, on_event=lambda e: n.__setitem__(0, n[0] + (e.kind == "trial")), should_stop=lambda: n[0] >= 5)
    _run(b)
    for p in sorted(a.path.glob("audio/*/*.flac")):
        q = b.path / p.relative_to(a.path)
        assert p.read_bytes() == q.read_bytes(), p
    a.close()
    b.close()


def test_physical_rig_prompts_the_operator_per_placement(tmp_path, office_rig_path, tiny_zoo):
    data = read_toml(office_rig_path)
    data["backend"] = "sounddevice"   # a physical rig: placement moves need an operator
    rig_path = tmp_path / "physical.toml"
    import tomli_w

    rig_path.write_bytes(tomli_w.dumps(data).encode())
    store = create_session(quick_plan(tmp_path), rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, plan, models, cal = open_runner_parts(store)
    asked = []

    def prompt(req):
        asked.append(req)
        return "ok" if req.placement == "P1" else "skip"

    # the simulator stands in for the sound card; the runner only sees an AudioBackend
    backend = SimBackend(parse_rig(data, rig_path), seed=1)
    res = Runner(store, rig, plan, models, backend=backend, prompt_move=prompt).run()
    assert [r.placement for r in asked] == ["P1", "P2"]
    assert "Move the adversary to P2 (x=3.8 m, y=2.6 m, z=1 m)" == asked[1].describe()
    assert res.skipped_placements == ["P2"]
    done = store.done_ids()
    assert len(done) == 4
    assert {t.placement for t in store.planned() if t.trial_id in done} == {"P1"}
    df = load_evaluations(store.path)
    assert df.groupby("trial_id")["placement"].first().eq("P1").all()
    # quit on the first prompt: nothing runs, the session stays resumable
    res = Runner(store, rig, plan, models, backend=backend, prompt_move=lambda r: "quit").run()
    assert res.reason == "quit" and len(store.done_ids()) == 4
    store.close()


def test_a_second_runner_on_the_same_session_is_refused(tmp_path, office_rig_path, tiny_zoo):
    from testbed.errors import SessionError
    from testbed.session import SessionStore

    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes"]))
    other = SessionStore(store.path)
    other.lock()
    with pytest.raises(SessionError, match="in use by another testbed process"):
        _run(store)
    other.close()
    store.close()


def test_serial_dut_answers_are_stored_as_serial_evaluations(tmp_path, office_rig_path, tiny_zoo):
    import tomli_w

    from testbed.serial import DutEmulator, PtyPort, load_zoo_classifier

    with PtyPort() as pty:
        data = read_toml(office_rig_path)
        data["dut"] = {**data["dut"], "transport": "serial", "serial": {"port": pty.device, "timeout_s": 10.0}}
        rig_path = tmp_path / "serial-dut.toml"
        rig_path.write_bytes(tomli_w.dumps(data).encode())
        emulator = DutEmulator(pty, load_zoo_classifier("lm-int8", tiny_zoo))
        store = create_session(quick_plan(tmp_path), rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                               utterances=tone_utterances(["yes"]))
        with emulator.running():
            res = _run(store)
    assert res.reason == "finished"
    df = load_evaluations(store.path)
    serial = df[df.eval_source == "serial"]
    assert len(serial) == 4 and set(serial["mic"]) == {"cheap"} and set(serial["model"]) == {"lm-int8"}
    assert serial["prediction"].notna().all() and (serial["score_top"] > 0).all()
    assert emulator.trials_answered == 4
    assert len(df[df.eval_source == "live"]) == 4 * 2 * 3
    store.close()


class _XrunSim(SimBackend):
    """The simulator, reporting an xrun on the first ``bad`` calls (what a loaded sound card does)."""

    def __init__(self, rig, bad: int):
        super().__init__(rig, seed=1)
        self.bad = bad
        self.calls = 0

    def run_trial(self, plays, record_s, placement=None):
        cap = super().run_trial(plays, record_s, placement)
        self.calls += 1
        if self.calls <= self.bad:
            cap.facts.xruns = 1
        return cap


@pytest.mark.parametrize("bad,failed", [(1, False), (10 ** 6, True)])
def test_xruns_are_retried_then_the_trial_is_marked_failed(tmp_path, office_rig_path, tiny_zoo, bad, failed):
    import sqlite3

    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes"]))
    rig, plan, models, cal = open_runner_parts(store)
    backend = _XrunSim(rig, bad)
    Runner(store, rig, plan, models, backend=backend).run()
    st = store.status()
    assert st["done"] == 4
    with sqlite3.connect(store.path / "session.sqlite") as db:
        rows = db.execute("SELECT trial_id, attempts, failed, xruns, error FROM trials ORDER BY trial_id").fetchall()
    if failed:
        assert st["failed"] == 4 and "xrun" in st["last_error"]
        assert all(a == plan.timing.retries + 1 and f == 1 and x == 1 for _, a, f, x, _ in rows)
        assert backend.calls == 4 * (plan.timing.retries + 1)
    else:
        assert st["failed"] == 0 and st["last_error"] is None
        assert [a for _, a, *_ in rows] == [2, 1, 1, 1] and backend.calls == 5
    df = load_evaluations(store.path)
    assert df["failed"].all() == failed and len(df) == 4 * 6
    store.close()


def test_positioner_moves_the_adversary_between_placements(tmp_path, office_rig_path, tiny_zoo):
    import tomli_w

    from testbed.serial import GrblEmulator, PtyPort

    with PtyPort(tmp_path / "ttyGRBL") as port:
        data = read_toml(office_rig_path)
        data["backend"] = "sounddevice"      # physical: placements are real moves
        data["positioner"] = {"port": str(tmp_path / "ttyGRBL"), "speaker": "adversary", "timeout_s": 10.0}
        rig_path = tmp_path / "gantry.toml"
        rig_path.write_bytes(tomli_w.dumps(data).encode())
        store = create_session(quick_plan(tmp_path), rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                               utterances=tone_utterances(["yes"]))
        rig, plan, models, cal = open_runner_parts(store)
        emu = GrblEmulator(port, speed_mm_s=50000.0)

        def no_operator(req):
            raise AssertionError(f"the operator was asked: {req.describe()}")

        with emu.running():
            res = Runner(store, rig, plan, models, backend=SimBackend(parse_rig(data, rig_path), seed=1),
                         prompt_move=no_operator).run()
    assert res.reason == "finished" and len(store.done_ids()) == 4
    assert "$H" in emu.lines
    # one move per placement, to the adversary's P1 then P2 position (mm from the gantry origin)
    assert emu.moves == [(4500.0, 3000.0), (3800.0, 2600.0)]
    moved = [e["message"] for e in store.events() if e["kind"] == "moved"]
    assert moved == ["positioner moved adversary to P1 (x=4.5 m, y=3 m)",
                     "positioner moved adversary to P2 (x=3.8 m, y=2.6 m)"]
    store.close()


def test_utterances_longer_than_the_models_clip_are_attacked_on_the_clip_the_dut_hears(
        tmp_path, office_rig_path, tiny_zoo):
    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"], n=24000))   # 1.5 s commands
    res = _run(store)
    assert res.reason == "finished"
    df = load_evaluations(store.path)
    assert not df["failed"].any() and df["trial_id"].nunique() == 8   # 2 x (none, fgsm) x 2 placements
    # the perturbation covers the model's 1 s window, within the bound
    perts = sorted(store.path.glob("perturbations/*.wav"))
    assert len(perts) == 2
    for p in perts:
        delta, sr = sf.read(p, dtype="float32")
        assert sr == 16000 and len(delta) == 16000 and np.abs(delta).max() <= 0.01 + 1e-6
    store.close()
