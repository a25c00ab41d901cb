"""Farina's exponential-sweep deconvolution: linear impulse response, harmonics, frequency response."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from testbed.calibration.signals import Sweep
from testbed.fade import fade_window


@dataclass(frozen=True)
class SweepResponse:
    """One path's response measured with an exponential sweep.

    Attributes
    ----------
    freqs_hz : float, shape (n_freqs,), log-spaced between the sweep's limits.
    response_db : float, shape (n_freqs,), magnitude of the linear part relative to a wire
        (0 dB = the signal arrives as sent), smoothed over ``smoothing_oct`` octaves.
    ir : float, shape (n_ir,), the windowed linear impulse response (peak near ``pre`` samples).
    thd_percent : energy of harmonics 2..5 relative to the linear part, in percent.
    """

    freqs_hz: np.ndarray
    response_db: np.ndarray
    ir: np.ndarray
    thd_percent: float


def deconvolve(recorded: np.ndarray, sweep: Sweep) -> np.ndarray:
    """Full deconvolution ``recorded * inverse``; the linear IR's zero lag sits at index ``len(sweep) - 1``
    plus the delay between the sweep's start in ``recorded`` and sample 0."""
    return fftconvolve(np.asarray(recorded, np.float64), sweep.inverse)


def _window(h: np.ndarray, start: int, length: int, fade: int) -> np.ndarray:
    seg = np.zeros(length)
    lo, hi = max(start, 0), min(start + length, len(h))
    if hi > lo:
        seg[lo - start:hi - start] = h[lo:hi]
    return seg * fade_window(length, min(fade, length // 4))


def _smooth_db(freqs: np.ndarray, mag2: np.ndarray, grid: np.ndarray, octaves: float) -> np.ndarray:
    """Power average of ``mag2`` over +-octaves/2 around each grid frequency, in dB."""
    out = np.empty(len(grid))
    for i, fc in enumerate(grid):
        lo, hi = fc * 2 ** (-octaves / 2), fc * 2 ** (octaves / 2)
        sel = (freqs >= lo) & (freqs <= hi)
        if not np.any(sel):
            sel = np.argmin(np.abs(freqs - fc)) == np.arange(len(freqs))
        out[i] = 10 * np.log10(max(float(np.mean(mag2[sel])), 1e-20))
    return out


def sweep_response(
    recorded: np.ndarray,
    sweep: Sweep,
    delay_samples: float,
    *,
    ir_s: float = 0.1,
    n_freqs: int = 200,
    smoothing_oct: float = 1 / 6,
) -> SweepResponse:
    """Response of one path from a recording of ``sweep`` that started at ``delay_samples``.

    Parameters
    ----------
    recorded : float, shape (n,), the capture; the sweep was played starting at sample
        0 of the reference and arrives around ``delay_samples`` (from GCC-PHAT).
    sweep : the sweep played.
    delay_samples : where the linear IR's main peak is expected, in samples.
    ir_s : length of the linear-IR window after its peak, in seconds (shorter than the gap
        to the 2nd harmonic, ``rate_s * ln 2``).
    n_freqs : points of the log frequency grid.
    smoothing_oct : fractional-octave smoothing width.
    """
    sr = sweep.sample_rate
    h = deconvolve(recorded, sweep)
    zero = len(sweep.signal) - 1
    pre = int(0.005 * sr)
    n_lin = int(min(ir_s, 0.9 * sweep.rate_s * np.log(2)) * sr) + pre
    peak = zero + int(round(delay_samples))
    lin = _window(h, peak - pre, n_lin, pre // 2)
    # the same window on the sweep deconvolved by itself: a wire, for normalisation
    ref = _window(deconvolve(sweep.signal, sweep), zero - pre, n_lin, pre // 2)
    harm = 0.0
    for k in range(2, 6):
        off = int(round(sweep.rate_s * np.log(k) * sr))
        span = int(0.5 * sweep.rate_s * (np.log(k + 1) - np.log(k)) * sr)
        seg = _window(h, peak - off - pre, min(span, n_lin), pre // 2)
        harm += float(np.sum(seg ** 2))
    nfft = 1 << int(np.ceil(np.log2(max(n_lin, 2 * sr // 10))))
    H = np.fft.rfft(lin, nfft)
    R = np.fft.rfft(ref, nfft)
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    band = (f >= sweep.f1_hz) & (f <= sweep.f2_hz)
    mag2 = np.abs(H[band]) ** 2 / np.maximum(np.abs(R[band]) ** 2, 1e-20)
    grid = np.geomspace(max(sweep.f1_hz * 1.5, 20.0), sweep.f2_hz / 1.05, n_freqs)
    resp = _smooth_db(f[band], mag2, grid, smoothing_oct)
    thd = 100.0 * np.sqrt(harm / max(float(np.sum(lin ** 2)), 1e-30))
    return SweepResponse(freqs_hz=grid, response_db=resp, ir=lin, thd_percent=float(thd))
