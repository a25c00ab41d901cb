"""Test signals for calibration: exponential sine sweeps (with their inverse filters), sync clicks, tones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.fade import fade_edges, fade_window


@dataclass(frozen=True)
class Sweep:
    """An exponential (Farina) sine sweep and its inverse filter.

    Attributes
    ----------
    signal : float32, shape (n,), amplitude ``amplitude``, with 10 ms raised-cosine fades.
    inverse : float64, shape (n,), time-reversed sweep with a -6 dB/octave envelope, scaled
        so that ``signal * inverse`` (convolution) peaks at about 1.
    f1_hz, f2_hz : start and end frequency in Hz.
    duration_s : sweep length in seconds.
    rate_s : Farina's ``L = T / ln(f2 / f1)``; harmonic k arrives ``L ln k`` before the linear IR.
    """

    signal: np.ndarray
    inverse: np.ndarray
    f1_hz: float
    f2_hz: float
    duration_s: float
    rate_s: float
    sample_rate: int


def exp_sweep(sample_rate: int, duration_s: float = 2.0, f1_hz: float = 50.0, f2_hz: float | None = None,
              amplitude: float = 0.25) -> Sweep:
    """Farina's exponential sine sweep from ``f1_hz`` to ``f2_hz`` (default 0.45 x sample rate)."""
    f2 = float(f2_hz if f2_hz is not None else 0.45 * sample_rate)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    rate = duration_s / np.log(f2 / f1_hz)
    x = np.sin(2 * np.pi * f1_hz * rate * (np.exp(t / rate) - 1.0))
    x = x * fade_window(n, int(0.01 * sample_rate))
    inv = x[::-1] * np.exp(-t / rate)
    # normalise: the deconvolved impulse of the sweep itself has unit peak
    from scipy.signal import fftconvolve

    inv = inv / np.max(np.abs(fftconvolve(x, inv)))
    return Sweep(signal=(amplitude * x).astype(np.float32), inverse=inv / amplitude, f1_hz=f1_hz, f2_hz=f2,
                 duration_s=duration_s, rate_s=float(rate), sample_rate=sample_rate)


def sync_click(sample_rate: int, amplitude: float = 0.25, duration_s: float = 0.01) -> np.ndarray:
    """A short Hann-tapered linear chirp (200 Hz to 0.4 x rate): easy to find with sub-sample accuracy."""
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    f0, f1 = 200.0, 0.4 * sample_rate
    x = np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / duration_s * t * t)) * np.hanning(n)
    return (amplitude * x).astype(np.float32)


def tone(sample_rate: int, freq_hz: float = 1000.0, duration_s: float = 1.0, amplitude: float = 0.1) -> np.ndarray:
    """A sine of ``freq_hz`` with 10 ms fades, float32 shape (round(duration_s * rate),)."""
    n = int(round(duration_s * sample_rate))
    x = amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n) / sample_rate)
    return fade_edges(x, int(0.01 * sample_rate)).astype(np.float32)
