"""Time delay estimation by GCC-PHAT with sub-sample peak interpolation."""

from __future__ import annotations

import numpy as np


def gcc_phat(
    sig: np.ndarray,
    ref: np.ndarray,
    sample_rate: int,
    *,
    band_hz: tuple[float, float] | None = None,
    max_delay: int | None = None,
    upsample: int = 16,
) -> tuple[float, float]:
    """Delay of ``sig`` relative to ``ref`` by the generalised cross-correlation with phase transform.

    The cross-spectrum is whitened (PHAT) inside ``band_hz`` and zeroed outside it, so
    frequencies the test signal does not excite add no noise. The correlation is
    evaluated ``upsample`` times finer (zero-padded inverse FFT) and the peak refined
    with a parabola through its neighbours.

    Parameters
    ----------
    sig, ref : float arrays, shape (n,) and (m,); ``sig`` holds ``ref`` delayed.
    sample_rate : Hz.
    band_hz : (low, high) frequencies used; default 100 Hz .. 0.45 x sample rate.
    max_delay : search only delays in [0, max_delay] samples (default: all non-negative lags).
    upsample : interpolation factor of the correlation.

    Returns
    -------
    delay_samples : float, positive when ``sig`` lags ``ref``.
    peak : the normalised correlation peak in [0, 1]; near 1 for a clean delayed copy,
        small (< 0.1) when ``ref`` is not in ``sig``.
    """
    sig = np.asarray(sig, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    n = len(sig) + len(ref)
    nfft = 1 << int(np.ceil(np.log2(n)))
    S = np.fft.rfft(sig, nfft)
    R = np.fft.rfft(ref, nfft)
    X = S * np.conj(R)
    f = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    lo, hi = band_hz if band_hz is not None else (100.0, 0.45 * sample_rate)
    mask = (f >= lo) & (f <= hi)
    mag = np.abs(X)
    W = np.zeros_like(X)
    ok = mask & (mag > 1e-12 * (mag.max() + 1e-300))
    W[ok] = X[ok] / mag[ok]
    k_ok = int(ok.sum())
    scale = nfft / (2.0 * max(k_ok, 1))  # a clean delayed copy peaks at 1
    cc = np.fft.irfft(W, nfft) * scale
    max_lag = len(sig) if max_delay is None else min(int(max_delay) + 1, nfft)
    i0 = int(np.argmax(cc[:max_lag]))
    # refine: evaluate the band-limited correlation on a grid `upsample` times finer around i0
    bins = np.nonzero(ok)[0]
    taus = i0 + np.arange(-upsample, upsample + 1) / upsample
    ph = np.exp(2j * np.pi * np.outer(taus, bins) / nfft)
    fine = (ph @ W[bins]).real * (2.0 / nfft) * scale
    j = int(np.argmax(fine))
    if 0 < j < len(fine) - 1:
        y0, y1, y2 = fine[j - 1], fine[j], fine[j + 1]
        denom = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    else:
        y1, frac = fine[j], 0.0
    delay = taus[j] + float(np.clip(frac, -0.5, 0.5)) / upsample
    return float(delay), float(min(1.0, max(0.0, y1)))
