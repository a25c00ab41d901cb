"""The simulated ADC: clipping counted and applied only where the signal leaves the range, same codes."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics import adc


def _reference(x, bits):
    q = float(2 ** (bits - 1))
    codes = np.rint(np.asarray(x, dtype=np.float64) * q)
    clipped = int(np.count_nonzero((codes > q - 1) | (codes < -q)))
    np.clip(codes, -q, q - 1, out=codes)
    return (codes / q).astype(np.float32), clipped


@pytest.mark.parametrize("bits", [16, 24])
@pytest.mark.parametrize("level", [0.01, 0.999, 1.5])
def test_adc_equals_clip_then_quantise(bits, level):
    x = level * np.sin(np.linspace(0, 40 * np.pi, 4000)) + 1e-4 * np.random.default_rng(bits).standard_normal(4000)
    y, n = adc(x.astype(np.float32), bits)
    want, n_want = _reference(x.astype(np.float32), bits)
    np.testing.assert_array_equal(y, want)
    assert n == n_want
    assert (n > 0) == (level > 1.0)
    assert y.dtype == np.float32 and np.max(y) <= 1.0 - 2.0 ** -(bits - 1) and np.min(y) >= -1.0


def test_adc_does_not_modify_its_input_and_counts_one_sided_clips():
    x = np.array([0.0, 0.5, -1.2, 0.99999999, -1.0], dtype=np.float64)
    before = x.copy()
    y, n = adc(x, 16)
    np.testing.assert_array_equal(x, before)
    assert n == 2 and y[2] == -1.0 and y[3] == np.float32(1.0 - 2.0 ** -15)
    assert adc(np.zeros(0), 16)[1] == 0
