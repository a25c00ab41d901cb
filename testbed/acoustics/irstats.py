"""Room statistics of one impulse response: onset, RT60 (T20/T30, per octave band), DRR, C50, tilt.

The one place these are computed, for simulated and measured IRs alike (``rig check``, the
calibration profile, the simulator's absorption calibration and delivered-RT60 check, measured
rigs). Methods follow ISO 3382-1 in their simple form:

- **onset**: the first sample whose magnitude reaches 20 dB below the IR's peak;
- **decay**: Schroeder backward integration of the squared IR from the onset, cut where the
  IR sinks into its noise floor (estimated from the last tenth of the file), then a
  least-squares line over -5..-25 dB (T20) or -5..-35 dB (T30), extrapolated to 60 dB;
- **octave bands**: 5th-order Butterworth band-passes (``scipy.signal.butter``, SOS, run
  zero-phase with ``sosfiltfilt``) at 125 Hz .. 8 kHz, those whose upper edge is below
  0.9 x Nyquist; steep skirts keep a long-decaying neighbour band out of a band's decay;
- **DRR**: energy within +/-2.5 ms of the direct-sound peak over the energy after it;
- **C50**: energy in the first 50 ms after the direct-sound peak over the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfiltfilt

#: Octave-band centre frequencies, Hz.
OCTAVE_CENTRES_HZ = (125, 250, 500, 1000, 2000, 4000, 8000)
#: Half-width of the direct-sound window of the DRR, milliseconds.
DRR_HALF_WINDOW_MS = 2.5
#: The onset is where |h| first reaches this far below its peak, dB (ISO 3382-1).
ONSET_THRESHOLD_DB = -20.0
#: Fit ranges of T20 and T30 on the Schroeder curve, dB.
T20_DB = (-5.0, -25.0)
T30_DB = (-5.0, -35.0)


def onset_index(h: np.ndarray, threshold_db: float = ONSET_THRESHOLD_DB) -> int:
    """Index of the first sample with ``|h| >= peak * 10**(threshold_db / 20)`` (0 for silence)."""
    a = np.abs(np.asarray(h, dtype=np.float64))
    peak = float(a.max()) if a.size else 0.0
    if peak <= 0:
        return 0
    return int(np.argmax(a >= peak * 10 ** (threshold_db / 20)))


def _noise_cut(energy: np.ndarray, fs: int) -> int:
    """Where the IR's 10 ms smoothed energy last stands 10 dB above the noise floor (samples)."""
    n = energy.size
    win = max(1, int(0.01 * fs))
    smooth = np.convolve(energy, np.ones(win) / win, mode="same")
    floor = float(np.mean(energy[-max(n // 10, 1):]))
    if floor <= 0:
        return n
    above = np.nonzero(smooth > 10.0 * floor)[0]
    return int(above[-1]) + 1 if above.size else n


def schroeder_db(h: np.ndarray, sample_rate: int, start: int = 0) -> np.ndarray:
    """Schroeder energy decay curve of ``h[start:]`` in dB re its total, shape (n_kept,).

    The integral stops where the IR reaches its noise floor, so the curve is not bent
    by the noise; ``n_kept`` can be shorter than the IR. Empty for a silent IR.
    """
    e = np.asarray(h, dtype=np.float64)[start:] ** 2
    if e.size == 0 or e.sum() <= 0:
        return np.zeros(0)
    e = e[:_noise_cut(e, sample_rate)]
    edc = np.cumsum(e[::-1])[::-1]
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(edc / edc[0])


def decay_time_s(edc_db: np.ndarray, sample_rate: int, top_db: float = T20_DB[0],
                 bottom_db: float = T20_DB[1]) -> float:
    """Reverberation time from a line fit of ``edc_db`` between ``top_db`` and ``bottom_db``, seconds.

    NaN when the curve does not reach ``bottom_db`` (the IR's dynamic range is too small).
    """
    if edc_db.size < 4 or edc_db.min() > bottom_db:
        return float("nan")
    i0 = int(np.argmax(edc_db <= top_db))
    i1 = int(np.argmax(edc_db <= bottom_db))
    if i1 - i0 < 3:
        return float("nan")
    t = np.arange(i0, i1) / sample_rate
    slope, _ = np.polyfit(t, edc_db[i0:i1], 1)
    return float(-60.0 / slope) if slope < 0 else float("nan")


def rt60_s(h: np.ndarray, sample_rate: int, fit_db: tuple[float, float] = T20_DB,
           start: int | None = None) -> float:
    """Broadband reverberation time of ``h`` (n_samples,), seconds, fitted over ``fit_db``.

    The decay is integrated from ``start`` (default: the onset, :func:`onset_index`); NaN when
    the decay does not reach the lower end of ``fit_db``.
    """
    h = np.asarray(h, dtype=np.float64)
    edc = schroeder_db(h, sample_rate, onset_index(h) if start is None else start)
    return decay_time_s(edc, sample_rate, *fit_db)


@lru_cache(maxsize=64)
def _octave_sos(sample_rate: int, centre_hz: float) -> np.ndarray:
    """The band-pass of :func:`octave_band`, designed once per rate and band (the design costs
    about as much as filtering a 1 s IR)."""
    lo, hi = centre_hz / math.sqrt(2), min(centre_hz * math.sqrt(2), 0.45 * sample_rate)
    sos = butter(5, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    sos.flags.writeable = False
    return sos


def octave_band(h: np.ndarray, sample_rate: int, centre_hz: float) -> np.ndarray:
    """``h`` filtered to the octave band around ``centre_hz`` (zero-phase 5th-order Butterworth)."""
    sos = _octave_sos(int(sample_rate), float(centre_hz)).copy()  # scipy's sosfilt wants it writable
    return sosfiltfilt(sos, np.asarray(h, dtype=np.float64))


def bands_for(sample_rate: int, bands_hz: tuple[int, ...] = OCTAVE_CENTRES_HZ) -> tuple[int, ...]:
    """The bands of ``bands_hz`` that fit below 0.9 x Nyquist at ``sample_rate``."""
    return tuple(int(fc) for fc in bands_hz if fc * math.sqrt(2) <= 0.9 * sample_rate / 2)


def band_decay_s(h: np.ndarray, sample_rate: int, bands_hz: tuple[int, ...] = OCTAVE_CENTRES_HZ,
                 start: int | None = None) -> dict[int, tuple[float, float]]:
    """``{centre_hz: (t20_s, t30_s)}`` per octave band of :func:`bands_for`, seconds (NaN: no decay).

    Each band's decay is integrated from ``start`` (default: the broadband onset), so the
    filter's ringing before the direct sound is not fitted.
    """
    h = np.asarray(h, dtype=np.float64)
    start = onset_index(h) if start is None else start
    out = {}
    for fc in bands_for(sample_rate, bands_hz):
        edc = schroeder_db(octave_band(h, sample_rate, fc), sample_rate, start)
        out[fc] = (decay_time_s(edc, sample_rate, *T20_DB), decay_time_s(edc, sample_rate, *T30_DB))
    return out


def band_rt60_s(h: np.ndarray, sample_rate: int,
                bands_hz: tuple[int, ...] = OCTAVE_CENTRES_HZ) -> dict[int, float]:
    """RT60 per octave band, seconds: T30, or T20 where the decay does not reach -35 dB.

    Bands above 0.9 x Nyquist are left out (see :func:`bands_for`).
    """
    return {fc: (t30 if math.isfinite(t30) else t20)
            for fc, (t20, t30) in band_decay_s(h, sample_rate, bands_hz).items()}


def drr_db(h: np.ndarray, sample_rate: int, half_window_ms: float = DRR_HALF_WINDOW_MS) -> float:
    """Direct-to-reverberant ratio, dB: energy within +/-``half_window_ms`` of the peak over the rest after it.

    NaN for a silent IR, +inf when nothing follows the direct sound.
    """
    e = np.asarray(h, dtype=np.float64) ** 2
    if e.size == 0 or e.sum() <= 0:
        return float("nan")
    peak = int(np.argmax(e))
    w = max(1, int(round(half_window_ms * 1e-3 * sample_rate)))
    direct = float(e[max(peak - w, 0):peak + w + 1].sum())
    late = float(e[peak + w + 1:].sum())
    if late <= 0:
        return float("inf")
    return 10.0 * math.log10(direct / late)


def c50_db(h: np.ndarray, sample_rate: int) -> float:
    """Clarity C50 in dB: energy in the first 50 ms after the direct-sound peak over the rest."""
    e = np.asarray(h, dtype=np.float64) ** 2
    peak = int(np.argmax(e)) if e.size else 0
    n50 = peak + int(0.05 * sample_rate)
    early, late = float(e[peak:n50].sum()), float(e[n50:].sum())
    return float(10.0 * np.log10(max(early, 1e-30) / max(late, 1e-30)))


def late_tilt_db(h: np.ndarray, sample_rate: int, lo_hz: int = 500, hi_hz: int = 4000) -> float:
    """Spectral tilt of the reverberant part: energy per Hz in the octave at ``hi_hz`` minus at ``lo_hz``, dB.

    A white tail gives 0 dB; a room that absorbs more at high frequencies gives a negative tilt.
    Only the part from 5 ms after the direct-sound peak on is used, so the source's and mic's
    direct-path colouring matters less than the room's frequency-dependent absorption.
    """
    h = np.asarray(h, dtype=np.float64)
    start = int(np.argmax(np.abs(h))) + int(0.005 * sample_rate)
    e = [float(np.sum(octave_band(h, sample_rate, f)[start:] ** 2)) / f for f in (lo_hz, hi_hz)]
    return float(10.0 * np.log10(max(e[1], 1e-30) / max(e[0], 1e-30)))


@dataclass(frozen=True)
class IrStats:
    """The figures of one impulse response.

    Attributes
    ----------
    n_samples, sample_rate : length and rate of the IR analysed.
    onset_samples : ISO 3382 onset index (-20 dB re peak).
    peak_samples : index of the largest magnitude.
    drr_db : direct-to-reverberant ratio, dB.
    t20_s, t30_s : broadband T20 and T30, seconds (NaN when the range is too small).
    bands : octave centre (Hz, as str) -> {"t20_s": ..., "t30_s": ...}.
    c50_db : clarity C50, dB.
    late_tilt_db : spectral tilt of the reverberant part, 4 kHz vs 500 Hz, dB (NaN below 16 kHz rate).
    """

    n_samples: int
    sample_rate: int
    onset_samples: int
    peak_samples: int
    drr_db: float
    t20_s: float
    t30_s: float
    bands: dict[str, dict[str, float]] = field(default_factory=dict)
    c50_db: float = float("nan")
    late_tilt_db: float = float("nan")

    @property
    def length_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def rt60_s(self) -> float:
        """T30 where it exists, else T20 (NaN if neither)."""
        return self.t30_s if math.isfinite(self.t30_s) else self.t20_s

    @property
    def band_rt60_s(self) -> dict[int, float]:
        """Per octave band (Hz), T30 where it exists, else T20, seconds (as :func:`band_rt60_s`)."""
        return {int(fc): (b["t30_s"] if math.isfinite(b["t30_s"]) else b["t20_s"]) for fc, b in self.bands.items()}

    def as_dict(self) -> dict:
        d = asdict(self)
        d["length_s"] = self.length_s
        d["rt60_s"] = self.rt60_s
        d["bands"] = {fc: {k: _finite(v) for k, v in b.items()} for fc, b in self.bands.items()}
        return {k: _finite(v) for k, v in d.items()}


def _finite(v):
    """JSON has no NaN or infinity: None stands for 'not measurable'."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def ir_stats(h: np.ndarray, sample_rate: int, bands: bool = True) -> IrStats:
    """Onset, DRR, C50, late tilt and T20/T30 (broadband and per octave band) of ``h`` (shape (n,), any units)."""
    h = np.asarray(h, dtype=np.float64)
    onset = onset_index(h)
    edc = schroeder_db(h, sample_rate, onset)
    per_band: dict[str, dict[str, float]] = {}
    if bands and h.size > 64:
        per_band = {str(fc): {"t20_s": t20, "t30_s": t30}
                    for fc, (t20, t30) in band_decay_s(h, sample_rate, start=onset).items()}
    tilt = late_tilt_db(h, sample_rate) if bands and 4000 in bands_for(sample_rate) and h.size > 64 \
        else float("nan")
    return IrStats(n_samples=int(h.size), sample_rate=int(sample_rate), onset_samples=onset,
                   peak_samples=int(np.argmax(np.abs(h))) if h.size else 0,
                   drr_db=drr_db(h, sample_rate), t20_s=decay_time_s(edc, sample_rate, *T20_DB),
                   t30_s=decay_time_s(edc, sample_rate, *T30_DB), bands=per_band,
                   c50_db=c50_db(h, sample_rate) if h.size else float("nan"), late_tilt_db=tilt)
