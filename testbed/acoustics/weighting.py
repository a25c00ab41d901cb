"""Frequency weighting and sound pressure levels: the A-weighting filter of IEC 61672-1 and
the dBFS <-> dB SPL conversion of a calibrated microphone.

The A-weighting filter is the standard's analog prototype (four zeros at 0 Hz, poles at
20.6 Hz (x2), 107.7 Hz, 737.9 Hz and 12194 Hz (x2)) mapped to the sample rate by the
bilinear transform (:func:`scipy.signal.bilinear_zpk`), as second-order sections,
normalised to 0 dB at 1 kHz. The bilinear transform squeezes the top octave; one of the two
12194 Hz poles is pre-warped (``fs / pi * tan(pi f / fs)``), which halves that error: the
filter is within 0.5 dB of the standard's table up to about 0.25 x the sample rate
(4 kHz at 16 kHz, 10 kHz at 48 kHz) and falls to -inf at Nyquist.

A microphone's SPL calibration is REW's number: the RMS level in dBFS (``dbfs(x, "rms")``,
so a full-scale sine reads -3.01 dBFS) it records from a 94 dB SPL (1 Pa) calibrator.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

#: IEC 61672-1 pole frequencies of the A-weighting, Hz.
A_POLES_HZ = (20.598997, 107.65265, 737.86223, 12194.217)
#: The calibrator level that ``dbfs_at_94`` numbers refer to, dB SPL (1 Pa RMS).
REFERENCE_DBSPL = 94.0


@lru_cache(maxsize=16)
def _a_sos(sample_rate: int) -> np.ndarray:
    f1, f2, f3, f4 = A_POLES_HZ
    f4_warped = sample_rate / np.pi * np.tan(np.pi * min(f4, 0.49 * sample_rate) / sample_rate)
    p = -2 * np.pi * np.array([f1, f1, f2, f3, f4, f4_warped])
    zd, pd, kd = signal.bilinear_zpk(np.zeros(4), p, 1.0, sample_rate)
    sos = signal.zpk2sos(zd, pd, kd)
    _, h = signal.sosfreqz(sos, worN=[1000.0], fs=sample_rate)
    sos[0, :3] /= abs(h[0])
    return sos


def a_weighting_sos(sample_rate: int) -> np.ndarray:
    """The A-weighting filter at ``sample_rate`` Hz as second-order sections, shape (3, 6),
    0 dB at 1 kHz (a fresh copy)."""
    if sample_rate < 4000:
        raise ValueError(f"a_weighting_sos: sample_rate must be >= 4000 Hz, got {sample_rate}")
    return _a_sos(int(sample_rate)).copy()


def a_weighting_db(freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Gain of :func:`a_weighting_sos` in dB at ``freqs_hz`` (any shape; -200 dB floor)."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    _, h = signal.sosfreqz(a_weighting_sos(sample_rate), worN=f.ravel(), fs=sample_rate)
    return (20 * np.log10(np.maximum(np.abs(h), 1e-10))).reshape(f.shape)


def a_weight(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """``x`` (float, shape (n_samples,)) through the A-weighting filter, float64."""
    return signal.sosfilt(a_weighting_sos(sample_rate), np.asarray(x, dtype=np.float64))


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` in dBFS (full-scale sine = -3.01 dBFS); -200 for silence."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return -200.0
    return float(10 * np.log10(max(float(np.mean(x * x)), 1e-20)))


def spl_db(level_dbfs: float, dbfs_at_94: float) -> float:
    """dB SPL of an RMS level ``level_dbfs`` at a mic reading ``dbfs_at_94`` from a 94 dB calibrator."""
    return float(level_dbfs - dbfs_at_94 + REFERENCE_DBSPL)


def levels(x: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Unweighted and A-weighted RMS level of ``x`` in dBFS."""
    return rms_dbfs(x), rms_dbfs(a_weight(x, sample_rate))
