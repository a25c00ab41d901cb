"""Delay-free universal perturbations in a session (issue 24, item 3): one signal for every utterance,
played as a loop whose phase is the trial's delay, and delays 0-1000 ms that cover the loop."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from testbed.session import Runner, create_session, open_runner_parts
from tests.session.conftest import tone_utterances

PLAN = """
name = "uni"
seed = 3
[utterances]
labels = ["yes", "no"]
per_label = 2
[[attacks]]
kind = "universal"
over_the_air = true
eps = [0.02]
steps = 2
source_model = "lm-fp32"
params = { batch_size = 2, n_channels = 2 }
[sweep]
delay_ms = [0, 250, 500, 750, 1000]
mics = ["cheap"]
[evaluate]
models = ["lm-fp32"]
[timing]
preroll_s = 0.05
tail_s = 0.05
"""


def test_one_looped_signal_for_every_utterance_at_every_phase(tmp_path, office_rig_path, tiny_zoo):
    plan = tmp_path / "uni.toml"
    plan.write_text(PLAN)
    store = create_session(plan, office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"], per_label=2))
    rig, p, models, cal = open_runner_parts(store)
    assert Runner(store, rig, p, models, calibration=cal).run().reason == "finished"
    (aid,) = store.attacks()
    assert aid.startswith("ota-universal-")
    uids = sorted(store.utterances())
    loops = [store.read_cached(f"perturbations/{u}__{aid}.wav") for u in uids]
    assert len(loops) == 4 and all(np.array_equal(loops[0], d) for d in loops[1:])   # one signal
    loop = loops[0]
    length = loop.shape[0]
    assert length == 16000 and 0 < np.abs(loop).max() <= 0.02 + 1e-6
    rows = store.db.execute(
        "SELECT t.trial_id, pl.delay_ms, t.realised_delay_ms, t.facts, p.path FROM trials t "
        "JOIN planned pl USING(trial_id) JOIN played p USING(trial_id) WHERE p.speaker = 'adversary'").fetchall()
    assert len(rows) == 4 * 5
    phases = set()
    for _, delay_ms, realised_ms, facts, path in rows:
        f = json.loads(facts)["loop"]
        assert f["length_samples"] == length
        assert f["phase_samples"] == (-round(delay_ms * 16)) % length
        phases.add(f["phase_samples"])
        assert realised_ms < 0          # the loop is already playing when the command starts
        played, _ = sf.read(store.path / path, dtype="float32")
        lead = f["lead_samples"]
        m = np.arange(played.shape[0])
        np.testing.assert_allclose(played, loop[np.mod(m - lead - round(delay_ms * 16), length)], atol=1e-4)
        assert played.shape[0] >= lead + 16000           # it sounds through the whole command
    # delays 0-1000 ms cover the 1 s loop: four phases a quarter period apart (1000 ms is 0 again)
    assert sorted(phases) == [0, 4000, 8000, 12000]
    store.close()
