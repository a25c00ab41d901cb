"""A 4-trial session end to end on the JACK loopback rig (real jackd, real PortAudio streams)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testbed.session import Runner, create_session, load_evaluations, open_runner_parts
from tests.session.conftest import tone_utterances

pytestmark = pytest.mark.jack

PLAN = """
name = "jack-4"
seed = 2
[utterances]
labels = ["yes"]
per_label = 1
[[attacks]]
kind = "none"
[[attacks]]
kind = "fgsm"
eps = [0.05]
source_model = "lm-fp32"
[sweep]
delay_ms = [0, 100]
[evaluate]
models = ["lm-fp32", "lm-int8"]
[timing]
preroll_s = 0.05
tail_s = 0.1
"""


def test_four_trial_session_on_the_jack_loopback(jack_loopback, tmp_path, tiny_zoo, monkeypatch):
    from tests.conftest import RIGS

    monkeypatch.setenv("TESTBED_CALIBRATION_DIR", str(tmp_path / "no-calibration"))
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    utts = tone_utterances(["yes"], n=8000)
    store = create_session(plan, RIGS / "jack-loopback.toml", root=tmp_path / "sessions", models_root=tiny_zoo,
                           utterances=utts)
    rig, p, models, cal = open_runner_parts(store)
    assert rig.backend == "sounddevice" and cal is None
    res = Runner(store, rig, p, models, calibration=cal).run()
    assert res.reason == "finished"
    st = store.status()
    assert (st["done"], st["total"], st["corrupted"]) == (4, 4, [])
    df = load_evaluations(store.path)
    assert len(df) == 4 * 2 * 2 and set(df["eval_source"]) == {"live"}
    assert set(df["delay_ms"]) == {0.0, 100.0}
    # on the loopback, mic "ref" (input 1) hears the user speaker (output 1) verbatim, one period late at most
    import soundfile as sf

    clean = utts[0][2]
    for tid in range(4):
        ref, sr = sf.read(store.path / f"audio/{tid:06d}/ref.flac", dtype="float32")
        corr = np.correlate(ref, clean, mode="valid")
        lag = int(np.argmax(corr))
        pre = int(0.05 * sr)
        assert pre <= lag <= pre + 2 * jack_loopback.period + 64, lag
        assert np.abs(ref).max() > 0.1
    store.close()


PLACED = PLAN.replace("[evaluate]", 'placements = ["near", "far"]\n[evaluate]').replace("delay_ms = [0, 100]", "delay_ms = [0]")


def test_operator_is_prompted_to_move_the_adversary_on_a_physical_rig(jack_loopback, tmp_path, tiny_zoo, cli,
                                                                      monkeypatch):
    from tests.conftest import RIGS

    monkeypatch.setenv("TESTBED_CALIBRATION_DIR", str(tmp_path / "no-calibration"))
    plan = tmp_path / "plan.toml"
    plan.write_text(PLACED)
    store = create_session(plan, RIGS / "jack-loopback.toml", root=tmp_path / "sessions", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes"], n=8000), session_id="placed")
    store.close()
    # Enter for "near", then "s" to skip "far": half the trials run, the rest stay pending
    r = cli(["session", "resume", "placed", "--sessions-dir", tmp_path / "sessions", "--models-dir", tiny_zoo],
            input="\ns\n")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "Move the adversary to near (x=3 m, y=2.2 m, z=1.2 m)" in out
    assert "Move the adversary to far (x=4.5 m, y=3.5 m, z=1.2 m)" in out
    assert "resume with: testbed session resume placed" in out
    r = cli(["session", "status", "placed", "--sessions-dir", tmp_path / "sessions", "--json"])
    st = json.loads(r.stdout)
    assert (st["done"], st["total"]) == (2, 4)
    df = load_evaluations(tmp_path / "sessions" / "placed")
    assert set(df["placement"]) == {"near"}
