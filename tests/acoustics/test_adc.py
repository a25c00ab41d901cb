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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("level", [0.01, 0.999, 1.5])
def test_adc_equals_clip_then_quantise_in_double(dtype, bits, level):
    x = level * np.sin(np.linspace(0, 40 * np.pi, 4000)) + 1e-4 * np.random.default_rng(bits).standard_normal(4000)
    x = x.astype(dtype)
    x[::97] *= 1e-7                     # tiny samples: codes near zero, and float32 subnormal scales
    y, n = adc(x, bits)
    want, n_want = _reference(x, bits)
    np.testing.assert_array_equal(y, want)
    assert n == n_want
    if bits >= 16:                      # 8 bits: 0.999 is above the top code (127 / 128) already
        assert (n > 0) == (level > 1.0)
    assert y.dtype == np.float32 and np.max(y) <= np.float32(1.0 - 2.0 ** -(bits - 1)) and np.min(y) >= -1.0


def test_adc_does_not_modify_its_input_and_counts_one_sided_clips():
    x = np.array([0.0, 0.5, -1.2, 0.99999999, -1.0], dtype=np.float64)
    before = x.copy()
    y, n = adc(x, 16)
    np.testing.assert_array_equal(x, before)
    assert n == 2 and y[2] == -1.0 and y[3] == np.float32(1.0 - 2.0 ** -15)
    assert adc(np.zeros(0), 16)[1] == 0
    special = np.array([np.nan, np.inf, -np.inf, 0.25], dtype=np.float32)
    y, n = adc(special, 24)
    want, n_want = _reference(special, 24)
    np.testing.assert_array_equal(y, want)
    assert n == n_want == 2
