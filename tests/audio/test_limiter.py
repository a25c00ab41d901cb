"""The speaker safety limiter: nothing leaves above max_dbfs, whatever the attack asks for."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from testbed.audio.limiter import ceiling, hard_cap, limit

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
    # the soft knee keeps most of the level: the middle sits within 1 dB of the cap
    mid = np.abs(res.signal[200:-200])
    assert 20 * np.log10(mid.min()) > max_dbfs - 1.0


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
