"""Streaming perturbations in a session (issue 24, item 3): one predictor trained when the session
crafts, and every trial's perturbation made from what the DUT mic heard of the command."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from testbed.session import Runner, create_session, open_runner_parts
from tests.session.conftest import tone_utterances

PLAN = """
name = "stream"
seed = 2
[utterances]
labels = ["yes", "no"]
per_label = 1
[[attacks]]
kind = "streaming"
over_the_air = true
eps = [0.02]
steps = 3
source_model = "lm-fp32"
params = { batch_size = 2, n_channels = 2, n_mels = 16, hidden = 8 }
[sweep]
delay_ms = [0, 250]
mics = ["cheap"]
[evaluate]
models = ["lm-fp32"]
[timing]
preroll_s = 0.05
tail_s = 0.05
"""


def test_streaming_trials_respond_to_what_the_dut_mic_heard(tmp_path, office_rig_path, tiny_zoo):
    from testbed.session.streaming import predictor_path

    plan = tmp_path / "stream.toml"
    plan.write_text(PLAN)
    store = create_session(plan, office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, p, models, cal = open_runner_parts(store)
    runner = Runner(store, rig, p, models, calibration=cal)
    assert runner.run().reason == "finished"
    (aid,) = store.attacks()
    assert aid.startswith("ota-streaming-")
    assert (store.path / predictor_path(aid)).is_file()
    respond = runner._streams[aid]
    rows = store.db.execute(
        "SELECT pl.delay_ms, t.realised_delay_ms, t.facts, p.path FROM trials t JOIN planned pl USING(trial_id) "
        "JOIN played p USING(trial_id) WHERE p.speaker = 'adversary'").fetchall()
    assert len(rows) == 2 * 2
    played_by_trial = []
    for delay_ms, realised_ms, facts, path in rows:
        f = json.loads(facts)["streaming"]
        assert f["lead_samples"] == round(delay_ms * 16)
        assert abs(realised_ms + delay_ms) < 1e-6            # it listened delay_ms before the command
        played, _ = sf.read(store.path / path, dtype="float32")
        assert played.shape[0] == f["lead_samples"] + 16000 and np.abs(played).max() <= 0.02 + 1e-4
        played_by_trial.append(played)
        # the first window is decided before anything was heard: the predictor's learned constant
        np.testing.assert_allclose(played[:1600], respond(np.zeros(1600, np.float32))[:1600], atol=1e-4)
    # what is played depends on what was heard: no two trials (commands, leads) play the same
    assert len({p.tobytes() for p in played_by_trial}) == 4
    store.close()
