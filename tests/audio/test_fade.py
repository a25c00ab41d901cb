"""``testbed.fade`` is the one raised-cosine fade: every former copy is reproduced bit for bit.

The ``_old_*`` functions are the four copies as they stood before they were replaced
(audio/limiter.py, calibration/signals.py twice, calibration/farina.py), kept verbatim.
"""

from __future__ import annotations

import numpy as np
import pytest

from testbed.audio.limiter import fade
from testbed.calibration.farina import _window
from testbed.calibration.signals import exp_sweep, tone
from testbed.fade import fade_edges, fade_window, raised_cosine


def _old_limiter_fade(signal, sample_rate, fade_ms=5.0):
    y = np.array(signal, dtype=np.float32, copy=True)
    n = min(int(round(fade_ms * 1e-3 * sample_rate)), len(y) // 2)
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(np.float32)
        y[:n] *= ramp
        y[len(y) - n:] *= ramp[::-1]
    return y


def _old_sweep_signal(sample_rate, duration_s=2.0, f1_hz=50.0, amplitude=0.25):
    f2 = 0.45 * sample_rate
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    rate = duration_s / np.log(f2 / f1_hz)
    x = np.sin(2 * np.pi * f1_hz * rate * (np.exp(t / rate) - 1.0))
    nf = int(0.01 * sample_rate)
    w = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(nf) / nf)
    w[:nf] = ramp
    w[n - nf:] = ramp[::-1]
    x = x * w
    return (amplitude * x).astype(np.float32)


def _old_tone(sample_rate, freq_hz=1000.0, duration_s=1.0, amplitude=0.1):
    n = int(round(duration_s * sample_rate))
    x = amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n) / sample_rate)
    nf = int(0.01 * sample_rate)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(nf) / nf)
    x[:nf] *= ramp
    x[n - nf:] *= ramp[::-1]
    return x.astype(np.float32)


def _old_farina_window(h, start, length, fade):
    seg = np.zeros(length)
    lo, hi = max(start, 0), min(start + length, len(h))
    if hi > lo:
        seg[lo - start:hi - start] = h[lo:hi]
    w = np.ones(length)
    f = min(fade, length // 4)
    if f > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(f) / f)
        w[:f] = ramp
        w[length - f:] = ramp[::-1]
    return seg * w


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # bit-identical, not merely close


def test_ramp_shape():
    r = raised_cosine(8)
    assert r[0] == 0.0 and np.all(np.diff(r) > 0) and r[-1] < 1.0
    assert raised_cosine(0).shape == (0,)
    w = fade_window(20, 4)
    assert np.all(w[4:16] == 1.0) and w[0] == w[-1] == 0.0 and w[1] == raised_cosine(4)[1]


@pytest.mark.parametrize("sample_rate,fade_ms,n", [(16000, 5.0, 16000), (48000, 5.0, 1000), (16000, 5.0, 101),
                                                    (16000, 50.0, 30), (16000, 0.0, 500), (8000, 2.5, 3)])
def test_limiter_fade_is_unchanged(sample_rate, fade_ms, n):
    x = np.random.default_rng(n).standard_normal(n) * 0.3
    _same(fade(x, sample_rate, fade_ms), _old_limiter_fade(x, sample_rate, fade_ms))
    _same(fade(x.astype(np.float32), sample_rate, fade_ms), _old_limiter_fade(x.astype(np.float32), sample_rate, fade_ms))


@pytest.mark.parametrize("sample_rate,duration_s", [(16000, 2.0), (48000, 0.5), (16000, 0.05)])
def test_calibration_signals_are_unchanged(sample_rate, duration_s):
    _same(exp_sweep(sample_rate, duration_s).signal, _old_sweep_signal(sample_rate, duration_s))
    _same(tone(sample_rate, 440.0, duration_s, 0.2), _old_tone(sample_rate, 440.0, duration_s, 0.2))


@pytest.mark.parametrize("start,length,fade_n", [(100, 512, 32), (-20, 256, 200), (900, 512, 16), (0, 64, 0)])
def test_farina_window_is_unchanged(start, length, fade_n):
    h = np.random.default_rng(start + length).standard_normal(1000)
    _same(_window(h, start, length, fade_n), _old_farina_window(h, start, length, fade_n))


def test_fade_edges_works_in_place_in_the_signal_dtype():
    x = np.ones(10, dtype=np.float32)
    y = fade_edges(x, 3)
    assert y is x and x.dtype == np.float32
    np.testing.assert_array_equal(x[:3], raised_cosine(3).astype(np.float32))
    np.testing.assert_array_equal(x[-3:], raised_cosine(3).astype(np.float32)[::-1])
    assert np.all(x[3:7] == 1.0)
