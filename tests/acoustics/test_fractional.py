"""Fractional delays and clock resampling: sub-sample accuracy against exact band-limited references."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics import apply_clock_ppm, fractional_delay, resample_at


def bandlimited(n: int, seed: int, f_max: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Periodic noise with content below ``f_max`` x fs, and its spectrum (for exact delays)."""
    rng = np.random.default_rng(seed)
    spec = np.zeros(n // 2 + 1, complex)
    k = np.arange(1, int(f_max * n))
    spec[k] = rng.standard_normal(k.size) + 1j * rng.standard_normal(k.size)
    return np.fft.irfft(spec, n), spec


def exact_delay(spec: np.ndarray, n: int, d: float) -> np.ndarray:
    k = np.arange(spec.size)
    return np.fft.irfft(spec * np.exp(-2j * np.pi * k * d / n), n)


@pytest.mark.parametrize("delay", [0.0, 3.0, 0.5, 196.8, 17.25, 0.03])
def test_fractional_delay_matches_an_exact_band_limited_delay(delay):
    n = 8192
    x, spec = bandlimited(n, seed=1)
    y = fractional_delay(np.tile(x, 3), delay)[n:2 * n]  # middle period: no edge effects
    ref = exact_delay(spec, n, delay)
    err_db = 10 * np.log10(np.mean((y - ref) ** 2) / np.mean(ref**2))
    assert err_db < -60, err_db


def test_fractional_delay_integer_is_an_exact_shift_and_n_out_pads():
    x = np.arange(1, 6, dtype=np.float32)
    assert np.array_equal(fractional_delay(x, 2.0), [0, 0, 1, 2, 3, 4, 5])
    assert np.array_equal(fractional_delay(x, 2.0, n_out=4), [0, 0, 1, 2])
    assert fractional_delay(x, 0.5, n_out=20).shape == (20,)
    assert fractional_delay(np.ones((3, 10)), 1.5).shape == (3, 12)


def test_impulse_peak_lands_at_the_fractional_position_within_0_05_samples():
    x = np.zeros(256, np.float32)
    x[100] = 1.0
    for d in (12.3, 196.8, 0.25, 7.75):
        y = fractional_delay(x, d)
        # phase slope of the spectrum of a band-limited impulse = its position
        seg = y[int(100 + d) - 64:int(100 + d) + 64].astype(np.float64)
        k = np.arange(1, 48)
        w = 2 * np.pi * k / 128
        ph = np.unwrap(np.angle(np.fft.rfft(seg)[k] * np.exp(1j * w * 64)))
        pos = int(100 + d) - 64 + 64 - np.polyfit(w, ph, 1)[0]
        assert pos == pytest.approx(100 + d, abs=0.05)


def test_negative_delay_is_refused():
    with pytest.raises(ValueError):
        fractional_delay(np.ones(4), -0.1)


def test_resample_at_reads_a_band_limited_signal_between_samples():
    n = 4096
    x, spec = bandlimited(n, seed=2, f_max=0.3)
    xx = np.tile(x, 3)
    t = n + np.linspace(0, n - 1, 3001)
    got = resample_at(xx, t)
    k = np.arange(spec.size)
    ref = np.array([np.sum(np.real(spec * np.exp(2j * np.pi * k * (ti - n) / n)) * (2 - (k == 0)))
                    for ti in t[:200]]) / n
    assert np.max(np.abs(got[:200] - ref)) < 2e-3 * np.max(np.abs(ref))
    assert np.all(resample_at(xx, np.array([-100.0, 1e7])) == 0)


def test_clock_ppm_changes_length_and_pitch():
    fs, f0 = 16000, 500.0
    x = np.sin(2 * np.pi * f0 * np.arange(4 * fs) / fs).astype(np.float32)
    y = apply_clock_ppm(x, 1000.0)  # exaggerated so a 4 s tone shows it clearly
    assert y.shape == x.shape
    z = np.abs(np.fft.rfft(y[: 3 * fs] * np.hanning(3 * fs), 32 * fs))
    f_peak = np.argmax(z) * fs / (32 * fs)
    assert f_peak == pytest.approx(f0 / 1.001, abs=0.05)
    assert np.array_equal(apply_clock_ppm(x, 0.0), x)


@pytest.mark.parametrize("ppm,n_in,n_out", [(40.0, 25634, 25600), (-300.0, 4000, 4000), (5000.0, 1000, 1100),
                                             (100.0, 1000, 3000)])
def test_clock_resampler_reads_what_resample_at_reads(ppm, n_in, n_out):
    """The clock's precomputed plan (runs of contiguous windows) gives the general
    resampler's samples exactly, including outputs past the end of the input."""
    x = np.random.default_rng(1).standard_normal(n_in).astype(np.float32)
    want = resample_at(x, np.arange(n_out) / (1.0 + ppm * 1e-6))
    got = apply_clock_ppm(x, ppm, n_out)
    assert got.shape == (n_out,)
    assert np.array_equal(got, want)
