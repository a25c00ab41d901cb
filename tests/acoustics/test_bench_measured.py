"""The sim bench's measured-room comparison: same geometry, measured IRs, a ratio in the JSON."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from testbed.acoustics import sample_channel
from testbed.bench import sim


def test_measured_bench_rig_keeps_the_geometry_and_plays_its_synthetic_irs(tmp_path):
    base = sim.bench_rig()
    rig = sim.measured_bench_rig(tmp_path)
    assert rig.room.model == "measured"
    assert {m: v.position_m for m, v in rig.mics.items()} == {m: v.position_m for m, v in base.mics.items()}
    assert len(list(tmp_path.glob("*__*.wav"))) == len(rig.speakers) * len(rig.mics)
    ch = sample_channel(rig, rig.dut.mic, None, rng=np.random.default_rng(0))
    stored, fs = sf.read(tmp_path / f"adversary__{rig.dut.mic}.wav", dtype="float64")
    assert fs == rig.sample_rate and stored.size == int(sim.MEASURED_IR_S * fs)
    h = np.asarray(ch.h["adversary"], dtype=np.float64)
    n = min(h.size, stored.size)
    np.testing.assert_allclose(h[:n], stored[:n], atol=1e-6)


def test_measured_vs_sim_reports_the_ratio_of_warm_trial_costs():
    out = sim.measured_vs_sim(sim._trials(3, 16000), 1.6)
    assert out["measured_vs_sim_trial_ratio"] > 0
    ratio = out["measured_ms_per_trial_warm"] / out["sim_ms_per_trial_warm_same_trials"]
    assert abs(out["measured_vs_sim_trial_ratio"] - ratio) < 0.02
