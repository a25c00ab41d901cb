"""The speaker safety limiter: nothing leaves above max_dbfs, whatever the attack asks for."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.signal import resample_poly

from testbed.audio.limiter import (
    AT_CEILING_DB,
    ceiling,
    hard_cap,
    limit,
    seconds_at_ceiling,
    true_peak,
    true_peak_dbtp,
    true_peak_envelope,
)

SR = 16000


@settings(max_examples=200, deadline=None)
@given(
    x=arrays(np.float64, st.integers(1, 3000),
             elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
    max_dbfs=st.floats(-60.0, 0.0),
)
def test_output_never_exceeds_the_cap(x, max_dbfs):
    res = limit(x, max_dbfs, SR)
    assert res.signal.dtype == np.float32
    assert np.all(np.isfinite(res.signal))
    assert float(np.max(np.abs(res.signal))) <= ceiling(max_dbfs)
    assert true_peak(res.signal) <= ceiling(max_dbfs)
    if not np.all(np.isfinite(x)) or np.nanmax(np.abs(np.where(np.isfinite(x), x, 0))) > ceiling(max_dbfs):
        assert res.engaged


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_dbfs=st.floats(-30.0, -0.1))
def test_full_scale_attack_is_held_and_reported(seed, max_dbfs):
    """A +-1.0 (0 dBFS) perturbation, the worst an attack can send, leaves at the cap at most."""
    rng = np.random.default_rng(seed)
    attack = np.sign(rng.standard_normal(4000))
    res = limit(attack, max_dbfs, SR)
    assert res.engaged
    assert res.input_peak_dbfs == 0.0
    assert res.output_peak_dbfs <= max_dbfs + 1e-6
    # the limiter keeps as much level as the true-peak cap allows: the loudest 2 ms of every
    # 10 ms stretch reaches within 1.5 dB of the cap (a sign wave's samples cannot all sit near
    # it: their reconstruction between samples overshoots by up to 6 dB, see issue #22)
    env = true_peak_envelope(res.signal[200:-200])
    blocks = env[: len(env) // 160 * 160].reshape(-1, 160).max(axis=1)
    assert 20 * np.log10(blocks.min()) > max_dbfs - 1.5
    assert res.output_true_peak_dbtp <= max_dbfs + 1e-6


@settings(max_examples=30, deadline=None)
@given(max_dbfs=st.floats(-30.0, -0.1), over_db=st.floats(0.1, 3.0), freq=st.floats(50.0, 2000.0))
def test_overdriven_tone_keeps_its_level_within_one_db(max_dbfs, over_db, freq):
    """A tone up to 3 dB over the cap, well under Nyquist, is rounded by the soft knee, not
    squared: little inter-sample overshoot, so its sample peak stays within 1 dB of the cap."""
    t = np.arange(4000) / SR
    amp = 10 ** ((max_dbfs + over_db) / 20)
    res = limit(amp * np.sin(2 * np.pi * freq * t), max_dbfs, SR)
    assert res.engaged and res.output_true_peak_dbtp <= max_dbfs + 1e-6
    assert res.output_peak_dbfs > max_dbfs - 1.0


def test_quiet_signal_passes_unchanged_except_the_fades():
    t = np.arange(SR) / SR
    x = 0.1 * np.sin(2 * np.pi * 440 * t)          # -20 dBFS, far under a -6 dBFS cap
    res = limit(x, -6.0, SR, fade_ms=5.0)
    n_fade = int(0.005 * SR)
    assert not res.engaged
    np.testing.assert_allclose(res.signal[n_fade:-n_fade], x[n_fade:-n_fade], atol=1e-7)
    assert res.signal[0] == 0.0 and res.signal[-1] == 0.0   # faded in and out
    assert abs(res.signal[n_fade // 2]) < abs(x[n_fade // 2])


def test_hard_cap_clips_each_channel_to_its_own_ceiling_and_silences_nan():
    block = np.array([[2.0, -3.0], [np.nan, 0.1], [-0.9, np.inf]], np.float32)
    hard_cap(block, np.array([0.5, 0.25], np.float32))
    np.testing.assert_array_equal(block, np.array([[0.5, -0.25], [0.0, 0.1], [-0.5, 0.0]], np.float32))


def _sign_attack(seed: int, n: int = SR) -> np.ndarray:
    """A PGD-style perturbation after its last signed-gradient step: +-eps on every sample."""
    return 0.05 * np.sign(np.random.default_rng(seed).standard_normal(n))


@pytest.mark.parametrize("seed", range(4))
def test_issue_22_sign_attack_stays_under_the_cap_after_resampling(seed):
    """Issue #22, reproduction 2: a sign-like perturbation limited to -6 dBFS reached about
    -0.3 dBFS once resampled 16 -> 48 kHz (a DAC's reconstruction or a sound server does this)."""
    x = _sign_attack(seed) * 40.0                  # asks for +6 dBFS, the attack's worst
    res = limit(x, -6.0, SR)
    up = resample_poly(res.signal.astype(np.float64), 3, 1)
    assert 20 * np.log10(np.max(np.abs(up))) <= -6.0
    assert true_peak_dbtp(res.signal) <= -6.0 and res.output_true_peak_dbtp <= -6.0
    assert res.engaged and res.input_true_peak_dbtp > 0.0


def test_sign_attack_under_the_sample_cap_is_still_limited_for_its_true_peak():
    """Sample peak exactly at the cap, true peak over it: the old limiter let this through."""
    c = ceiling(-6.0)
    x = c * np.sign(np.random.default_rng(9).standard_normal(SR))
    assert true_peak(x) > 1.5 * c
    res = limit(x, -6.0, SR, fade_ms=0.0)
    assert res.engaged
    assert true_peak(res.signal) <= c
    assert any("true peak" in n for n in res.notes("adversary", -6.0))


def test_longer_than_max_seconds_at_ceiling_is_attenuated_to_the_limit():
    t = np.arange(3 * SR) / SR
    tone = np.sin(2 * np.pi * 500 * t)             # 0 dBFS for 3 s: squared against the -6 dBFS ceiling
    free = limit(tone, -6.0, SR)
    assert free.seconds_at_ceiling > 2.0 and free.duration_gain_db == 0.0
    res = limit(tone, -6.0, SR, max_seconds_at_ceiling=0.5)
    assert res.engaged and res.duration_gain_db < 0.0
    assert res.seconds_at_ceiling <= 0.5
    assert seconds_at_ceiling(res.signal, -6.0, SR) <= 0.5
    # attenuated just enough: the tone now sits just under the "at the ceiling" band
    assert -6.0 - AT_CEILING_DB - 0.5 < res.output_true_peak_dbtp < -6.0
    assert any("max_seconds_at_ceiling" in n for n in res.notes("user", -6.0))


def test_shorter_than_max_seconds_at_ceiling_keeps_its_level():
    t = np.arange(SR // 4) / SR
    res = limit(np.sin(2 * np.pi * 500 * t), -6.0, SR, max_seconds_at_ceiling=0.5)
    assert res.duration_gain_db == 0.0 and 0.1 < res.seconds_at_ceiling <= 0.25
    assert res.output_true_peak_dbtp > -6.5


def test_rms_over_max_rms_dbfs_is_attenuated_and_reported():
    x = _sign_attack(3, 2 * SR) * 40.0             # loudest second far over -20 dBFS RMS
    res = limit(x, -6.0, SR, max_rms_dbfs=-20.0)
    assert res.rms_gain_db < 0.0 and res.engaged
    assert res.output_rms_dbfs <= -20.0 + 1e-6
    rms_1s = max(np.sqrt(np.mean(res.signal[i:i + SR].astype(np.float64) ** 2)) for i in range(0, SR + 1, 400))
    assert 20 * np.log10(rms_1s) <= -20.0 + 1e-6
    quiet = limit(0.01 * np.sin(np.arange(SR) * 0.1), -6.0, SR, max_rms_dbfs=-20.0)
    assert quiet.rms_gain_db == 0.0 and not quiet.engaged


def test_true_peak_meter_matches_the_sample_peak_of_a_slow_tone_and_exceeds_it_at_fs_over_4():
    t = np.arange(SR) / SR
    slow = 0.5 * np.sin(2 * np.pi * 100 * t)
    assert abs(true_peak(slow) - 0.5) < 1e-3
    quarter = 0.5 * np.sin(2 * np.pi * (SR / 4) * t + np.pi / 4)   # samples at +-0.354, peaks at 0.5
    assert np.max(np.abs(quarter)) < 0.36 and true_peak(quarter) > 0.49
    assert true_peak_envelope(quarter).shape == quarter.shape


def _sim_rig(**adversary):
    from testbed.rig import parse_rig

    spk = {"position_m": [4.0, 3.0, 1.5], "spl_at_1m_db": 94.0}
    return parse_rig({
        "name": "t", "sample_rate": SR, "backend": "sim",
        "room": {"size_m": [6.0, 5.0, 3.0], "rt60_s": 0.0, "noise_dbspl": -20.0, "seed": 3},
        "speakers": {"user": {"role": "user", **spk, "max_dbfs": -3},
                     "adversary": {"role": "adversary", **spk, "position_m": [1.0, 1.0, 1.5], **adversary}},
        "mics": {"ref": {"tier": "reference", "position_m": [3.0, 2.5, 1.0]}},
        "dut": {"mic": "ref"},
    }, "t.toml")


def test_the_trial_reports_true_peak_rms_and_seconds_at_ceiling_per_speaker():
    """What the runner stores (``facts.as_dict()``) carries the limiter's facts and its notes."""
    from testbed.audio import Playback
    from testbed.audio.sim import SimBackend

    rig = _sim_rig(max_dbfs=-6, max_rms_dbfs=-12, max_seconds_at_ceiling=0.2)
    t = np.arange(SR // 2) / SR
    user = (0.05 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)          # -26 dBFS: untouched
    attack = _sign_attack(5, SR // 2) * 40.0
    facts = SimBackend(rig).run_trial({"user": Playback(user), "adversary": Playback(attack)}, record_s=0.6).facts
    d = facts.as_dict()
    for key in ("speaker_true_peak_dbtp", "speaker_max_rms_dbfs", "speaker_seconds_at_ceiling"):
        assert set(d[key]) == {"user", "adversary"}
    assert d["limited"] == {"user": False, "adversary": True}
    assert -26.5 < d["speaker_true_peak_dbtp"]["user"] < -25.5 and d["speaker_seconds_at_ceiling"]["user"] == 0.0
    assert d["speaker_true_peak_dbtp"]["adversary"] <= -6.0
    assert d["speaker_max_rms_dbfs"]["adversary"] <= -12.0 + 1e-6
    assert d["speaker_seconds_at_ceiling"]["adversary"] <= 0.2
    notes = " | ".join(d["notes"])
    assert "speaker adversary" in notes and "true peak" in notes and "user" not in notes


@pytest.mark.parametrize(("field", "value"), [("max_rms_dbfs", "nan"), ("max_rms_dbfs", "-inf"),
                                              ("max_rms_dbfs", "1.0"), ("max_seconds_at_ceiling", "inf"),
                                              ("max_seconds_at_ceiling", "-1")])
def test_speaker_limit_fields_must_be_finite_and_in_range(field, value):
    from testbed.errors import RigError

    with pytest.raises(RigError, match=rf"^t\.toml: speakers\.adversary\.{field}: "):
        _sim_rig(max_dbfs=-6, **{field: float(value)})


def test_existing_rigs_stay_valid_with_the_default_limits():
    from testbed.rig import load_rig
    from tests.conftest import RIGS

    for path in sorted(RIGS.glob("*.toml")):
        rig = load_rig(path)
        for spk in rig.speakers.values():
            assert spk.max_rms_dbfs == 0.0 and spk.max_seconds_at_ceiling == 1.0


def test_the_polyphase_envelope_is_resample_polys_and_the_gain_bound_holds():
    """The envelope computed branch by branch equals the one read off resample_poly(x, 4, 1), and
    no reconstructed point exceeds the sample peak times the filter's largest branch gain."""
    from scipy.signal import resample_poly

    from testbed.audio.limiter import _oversampling_filter, _polyphase_gain, true_peak_envelope

    rng = np.random.default_rng(5)
    for n in (1, 3, 40, 999, 16000):
        x = rng.standard_normal(n) * 0.1
        x[::7] = np.sign(x[::7]) * 0.1          # sign-like stretches make the largest overshoots
        up = np.abs(resample_poly(x, 4, 1, window=_oversampling_filter()))
        ref = np.abs(x)
        for k in range(4):
            ref = np.maximum(ref, up[k::4][:n])
        env = true_peak_envelope(x)
        assert np.max(np.abs(env - ref)) < 1e-12
        assert env.max() <= np.abs(x).max() * _polyphase_gain() + 1e-12
