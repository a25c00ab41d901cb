"""The true-peak meter's shortcuts give the full measurement: the folded zero-phase branch and
the envelope re-measured only around changed samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from testbed.audio.truepeak import (
    _kernels,
    _oversampling_filter,
    true_peak_envelope,
    update_true_peak_envelope,
)


def _reference_envelope(x: np.ndarray) -> np.ndarray:
    """The envelope read off scipy's own 4x upsampling, every branch convolved."""
    up = np.abs(resample_poly(x, 4, 1, window=_oversampling_filter()))
    ref = np.abs(x)
    for k in range(4):
        ref = np.maximum(ref, up[k::4][: x.size])
    return ref


def test_only_the_zero_phase_branch_is_folded_into_a_gain():
    offset, scale, branches, longest = _kernels()
    assert len(branches) == 3 and longest == 21 and offset == 10
    assert 1.0 < scale < 1.001        # the branch's centre tap; its other taps are sinc zeros


@pytest.mark.parametrize("n", [1, 2, 20, 21, 22, 1000, 16000])
def test_envelope_matches_resample_poly_on_sign_like_signals(n):
    x = 0.7 * np.sign(np.random.default_rng(n).standard_normal(n))
    np.testing.assert_allclose(true_peak_envelope(x), _reference_envelope(x), rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000),
       pattern=st.sampled_from(["scattered", "edges", "one_run", "long_runs", "everything", "last"]))
def test_updated_envelope_equals_the_envelope_measured_afresh(seed, n, pattern):
    rng = np.random.default_rng(seed)
    old = rng.standard_normal(n) * 0.5
    changed = np.zeros(n, dtype=bool)
    if pattern == "scattered":
        changed[rng.choice(n, size=max(1, n // 50), replace=False)] = True
    elif pattern == "edges":
        changed[: min(n, 80)] = True
        changed[max(0, n - 80):] = True
    elif pattern == "one_run":
        a = int(rng.integers(0, n))
        changed[a:a + 700] = True
    elif pattern == "long_runs":
        changed[::600] = True
        changed[n // 3: n // 3 + 900] = True
    elif pattern == "everything":
        changed[:] = True
    else:
        changed[-1] = True
    new = np.where(changed, old * rng.uniform(0.0, 1.5, n), old)
    env = update_true_peak_envelope(new, true_peak_envelope(old), changed)
    np.testing.assert_allclose(env, true_peak_envelope(new), rtol=0, atol=1e-12)
    np.testing.assert_allclose(env, _reference_envelope(new), rtol=0, atol=1e-12)


def test_update_with_nothing_changed_keeps_the_envelope_and_never_modifies_it():
    x = np.random.default_rng(1).standard_normal(500)
    env = true_peak_envelope(x)
    kept = env.copy()
    assert update_true_peak_envelope(x, env, np.zeros(500, dtype=bool)) is env
    y = x.copy()
    y[250] = 5.0
    changed = y != x
    new = update_true_peak_envelope(y, env, changed)
    np.testing.assert_array_equal(env, kept)
    assert new[250] >= 5.0 and np.array_equal(new[:200], kept[:200])


def test_gathered_envelope_is_the_same_in_small_chunks(monkeypatch):
    """Scattered changes are gathered chunk by chunk (bounded memory on long signals)."""
    import testbed.audio.truepeak as tp

    rng = np.random.default_rng(3)
    old = rng.standard_normal(5000)
    changed = np.zeros(5000, dtype=bool)
    changed[rng.choice(5000, size=60, replace=False)] = True
    new = np.where(changed, -2.0 * old, old)
    monkeypatch.setattr(tp, "_GATHER_CHUNK", 7)
    env = update_true_peak_envelope(new, true_peak_envelope(old), changed)
    np.testing.assert_allclose(env, _reference_envelope(new), rtol=0, atol=1e-12)
