"""A session on a measured-room rig: its captures are the measured paths, and replay reads them back."""

from __future__ import annotations

import soundfile as sf

from testbed.session import create_session, load_evaluations, open_runner_parts, Runner, replay_session
from tests.acoustics.irs import measured_rig, synthetic_ir
from tests.session.conftest import quick_plan, tiny_zoo, tone_utterances  # noqa: F401  (fixture)


def test_a_session_runs_on_a_measured_rig_and_replays(tmp_path, office_rig_path, tiny_zoo):  # noqa: F811
    def placements(d):
        d["placements"] = {"P1": {"adversary": [4.5, 3.0, 1.0]}, "P2": {"adversary": [3.8, 2.6, 1.0]}}

    rig_path = measured_rig(tmp_path, office_rig_path, edit=placements)
    for p, rt in (("P1", 0.3), ("P2", 0.9)):
        for m in ("ref", "phone", "cheap"):
            sf.write(tmp_path / "irs" / f"adversary__{m}__{p}.wav", synthetic_ir(16000, rt60_s=rt, seed=11),
                     16000, subtype="FLOAT")
    store = create_session(quick_plan(tmp_path), rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, plan, models, cal = open_runner_parts(store)
    assert rig.room.model == "measured"
    res = Runner(store, rig, plan, models, calibration=cal).run()
    assert res.reason == "finished"
    assert store.status()["done"] == store.status()["total"] == 8
    df = load_evaluations(store.path)
    assert set(df["placement"]) == {"P1", "P2"} and (df["snr_db"] > 0).all()
    store.close()
    rep = replay_session(store.path, ["lm-fp32"], models_root=tiny_zoo)
    assert rep.captures == 8 * 2 and rep.evaluations == 8 * 2 and not rep.skipped
    live = df[(df.model == "lm-fp32")].sort_values(["trial_id", "mic"])
    again = load_evaluations(store.path)
    replayed = again[(again.eval_source == "replay")].sort_values(["trial_id", "mic"])
    assert list(replayed["prediction"]) == list(live["prediction"])  # the same measured-room captures
