"""Decay statistics of an impulse response: RT60 per octave band, DRR, spectral tilt, C50.

RT60 comes from Schroeder backward integration of the (band-filtered) energy and a
least-squares line over the -5 to -25 dB (T20) or -5 to -35 dB (T30) part of the decay
curve, extrapolated to 60 dB (ISO 3382-1). Works on simulated and measured IRs alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

#: Octave-band centre frequencies, Hz, reported by :func:`band_rt60_s` (the rig's band set).
OCTAVE_BANDS_HZ = (125, 250, 500, 1000, 2000, 4000)
#: Half-width of the window around the direct-sound peak that counts as direct sound, ms.
DIRECT_WINDOW_MS = 2.5


def schroeder_db(h: np.ndarray) -> np.ndarray:
    """Schroeder backward-integrated energy decay curve of ``h`` in dB (0 dB at index 0).

    Parameters
    ----------
    h : (n_samples,) impulse response.

    Returns
    -------
    (n_samples,) float64 decay curve, dB re total energy; -inf-free (floored at -300 dB).
    """
    e = np.cumsum(np.asarray(h, dtype=np.float64)[::-1] ** 2)[::-1]
    total = e[0] if e.size and e[0] > 0 else 1.0
    return 10.0 * np.log10(np.maximum(e / total, 1e-30))


def rt60_s(h: np.ndarray, sample_rate: int, fit_db: tuple[float, float] = (-5.0, -25.0)) -> float:
    """RT60 in seconds of ``h`` from a line fit to its Schroeder curve over ``fit_db``.

    The start of ``h`` is taken at its peak (the direct sound), so any lead-in is ignored.
    Returns ``nan`` when the decay never reaches the lower end of ``fit_db`` (too short a tail).
    """
    h = np.asarray(h, dtype=np.float64)
    if h.size == 0 or not np.any(h):
        return float("nan")
    h = h[int(np.argmax(np.abs(h))):]
    edc = schroeder_db(h)
    hi, lo = fit_db
    i0 = int(np.argmax(edc <= hi))
    below = edc <= lo
    if not below.any() or i0 >= int(np.argmax(below)):
        return float("nan")
    i1 = int(np.argmax(below))
    t = np.arange(i0, i1 + 1) / sample_rate
    slope, _ = np.polyfit(t, edc[i0:i1 + 1], 1)
    if slope >= 0:
        return float("nan")
    return float(-60.0 / slope)


def band_filter(h: np.ndarray, sample_rate: int, centre_hz: float) -> np.ndarray:
    """``h`` through a zero-phase octave band at ``centre_hz`` (5th-order Butterworth, run twice).

    Steep skirts keep a long-decaying neighbour band from leaking into this band's decay.
    """
    lo = centre_hz / np.sqrt(2.0)
    hi = min(centre_hz * np.sqrt(2.0), 0.45 * sample_rate)
    sos = butter(5, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, np.asarray(h, dtype=np.float64))


def band_rt60_s(h: np.ndarray, sample_rate: int,
                bands_hz: tuple[int, ...] = OCTAVE_BANDS_HZ) -> dict[int, float]:
    """RT60 in seconds per octave band: T30, or T20 where the decay does not reach -35 dB.

    Bands whose upper edge is above Nyquist are skipped.
    """
    h = np.asarray(h, dtype=np.float64)
    # the peak of the broadband IR is the direct sound; cut there so filter ringing before it is not fitted
    start = int(np.argmax(np.abs(h)))
    out = {}
    for fc in bands_hz:
        if fc * np.sqrt(2.0) > 0.5 * sample_rate:
            continue
        hb = band_filter(h, sample_rate, fc)[start:]
        t30 = rt60_s(hb, sample_rate, (-5.0, -35.0))
        out[int(fc)] = t30 if np.isfinite(t30) else rt60_s(hb, sample_rate)
    return out


def drr_db(h: np.ndarray, sample_rate: int, window_ms: float = DIRECT_WINDOW_MS) -> float:
    """Direct-to-reverberant ratio in dB: energy within ``window_ms`` of the peak vs after it."""
    h = np.asarray(h, dtype=np.float64)
    peak = int(np.argmax(np.abs(h)))
    w = max(int(round(window_ms * 1e-3 * sample_rate)), 1)
    direct = float(np.sum(h[max(peak - w, 0):peak + w + 1] ** 2))
    late = float(np.sum(h[peak + w + 1:] ** 2))
    return float(10.0 * np.log10(max(direct, 1e-30) / max(late, 1e-30)))


def c50_db(h: np.ndarray, sample_rate: int) -> float:
    """Clarity C50 in dB: energy in the first 50 ms after the direct sound vs the rest."""
    h = np.asarray(h, dtype=np.float64)
    peak = int(np.argmax(np.abs(h)))
    n50 = peak + int(0.05 * sample_rate)
    early = float(np.sum(h[peak:n50] ** 2))
    late = float(np.sum(h[n50:] ** 2))
    return float(10.0 * np.log10(max(early, 1e-30) / max(late, 1e-30)))


def late_tilt_db(h: np.ndarray, sample_rate: int, lo_hz: int = 500, hi_hz: int = 4000) -> float:
    """Spectral tilt of the reverberant part: energy per Hz in the octave at ``hi_hz`` minus at ``lo_hz``, dB.

    A white tail gives 0 dB; a room that absorbs more at high frequencies gives a negative tilt.

    Only the part from 5 ms after the direct sound on is used, so the source's and mic's
    direct-path colouring matters less than the room's frequency-dependent absorption.
    """
    h = np.asarray(h, dtype=np.float64)
    start = int(np.argmax(np.abs(h))) + int(0.005 * sample_rate)
    e = [float(np.sum(band_filter(h, sample_rate, f)[start:] ** 2)) / f for f in (lo_hz, hi_hz)]
    return float(10.0 * np.log10(max(e[1], 1e-30) / max(e[0], 1e-30)))


@dataclass(frozen=True)
class DecayStats:
    """Room statistics of one impulse response (seconds, dB)."""

    rt60_s: float
    band_rt60_s: dict[int, float]
    drr_db: float
    c50_db: float
    late_tilt_db: float

    def as_dict(self) -> dict:
        return {"rt60_s": _r(self.rt60_s), "band_rt60_s": {str(k): _r(v) for k, v in self.band_rt60_s.items()},
                "drr_db": _r(self.drr_db), "c50_db": _r(self.c50_db), "late_tilt_db": _r(self.late_tilt_db)}


def _r(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 3)


def decay_stats(h: np.ndarray, sample_rate: int) -> DecayStats:
    """Every statistic of this module for one impulse response ``h`` (n_samples,) at ``sample_rate`` Hz."""
    return DecayStats(rt60_s=rt60_s(h, sample_rate), band_rt60_s=band_rt60_s(h, sample_rate),
                      drr_db=drr_db(h, sample_rate), c50_db=c50_db(h, sample_rate),
                      late_tilt_db=late_tilt_db(h, sample_rate))
