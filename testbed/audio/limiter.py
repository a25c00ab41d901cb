"""The speaker safety limiter: nothing ever leaves for a speaker above its caps.

Four stages, each only ever lowering the level:

1. a soft limiter (a smooth ``tanh`` knee starting ``knee_db`` below the ceiling) and a hard
   clip at the ceiling bound the *sample* peak, then a short raised-cosine fade-in/out stops
   clicks at the signal's edges;
2. a true-peak stage bounds the *reconstructed* peak: what a DAC's reconstruction filter or a
   resampling sound server makes of the samples between them. It is measured as ITU-R
   BS.1770-4's true-peak meter does (4x oversampling, :func:`true_peak`); where it is over the
   ceiling a smooth gain (a few ms) pulls that stretch down, and a last whole-signal gain makes
   the bound exact. A sign-like attack at the ceiling otherwise overshoots by up to 6 dB;
3. an RMS limit: the loudest ``RMS_WINDOW_S`` stretch must stay under ``max_rms_dbfs`` (the
   voice coil's heating), else the whole signal is attenuated;
4. a duration limit: at most ``max_seconds_at_ceiling`` seconds of the signal may sit within
   ``AT_CEILING_DB`` of the ceiling (true peak), else the whole signal is attenuated until no
   more than that does.

The true-peak meter is :mod:`testbed.audio.truepeak`; the limiter measures a signal's envelope
once (the input's, or the output's for a provably quiet input) and re-measures it only around the
samples each later stage changes, so it costs about one envelope per signal.

Non-finite samples (NaN, inf) are replaced by silence. An attack can ask for anything; the
tweeter only ever sees what its speaker's caps allow, and :class:`LimitResult` says what was done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.audio.truepeak import (  # noqa: F401  true_peak_envelope and the filter are public here too
    TRUE_PEAK_OVERSAMPLE,
    _oversampling_filter,
    _polyphase_gain,
    true_peak,
    true_peak_envelope,
    update_true_peak_envelope,
)
from testbed.fade import fade_edges

#: Default fade-in/out length at each end of a speaker signal, in milliseconds.
FADE_MS = 5.0
#: Default width of the soft knee below the ceiling, in dB.
KNEE_DB = 3.0
#: Length of the true-peak stage's gain smoothing, milliseconds.
TRUE_PEAK_SMOOTH_MS = 2.0
#: Passes of the smooth true-peak gain before the exact whole-signal gain.
TRUE_PEAK_PASSES = 6
#: A true peak within this many dB of the ceiling counts as "at the ceiling".
AT_CEILING_DB = 1.0
#: Window of the RMS limit, seconds (the whole signal when shorter).
RMS_WINDOW_S = 1.0
#: Relative safety margin of the whole-signal gains (float32 rounding of the result).
_MARGIN = 1e-5
#: A smoothed true-peak gain this close to 1 is 1 (the rounding of a smoothing of ones).
_UNITY_TOL = 1e-12


@dataclass(frozen=True)
class LimitResult:
    """A limited signal and what the limiter had to do.

    Attributes
    ----------
    signal : float32, shape (n_samples,); sample and true peak <= 10 ** (max_dbfs / 20).
    engaged : True when the limiter changed anything but the fades (a peak, true peak, RMS
        or duration over its cap, or NaN/inf samples).
    input_peak_dbfs : sample peak of the input before limiting (finite samples only).
    output_peak_dbfs : sample peak of what leaves for the speaker.
    n_nonfinite : NaN/inf samples replaced by silence.
    input_true_peak_dbtp : true peak of the input (finite samples only), dBTP; for an input whose
        sample peak is so low that even the oversampling filter's largest gain keeps it under the
        cap, that upper bound (the limiter cannot have engaged on it, so it is not measured).
    output_true_peak_dbtp : true peak of what leaves for the speaker, dBTP.
    output_rms_dbfs : RMS of the loudest ``RMS_WINDOW_S`` of the output, dBFS.
    seconds_at_ceiling : seconds of the output whose true peak is within ``AT_CEILING_DB``
        of the ceiling.
    rms_gain_db : attenuation the RMS limit applied (0 when it did not act), dB <= 0.
    duration_gain_db : attenuation the duration limit applied (0 when it did not act), dB <= 0.
    """

    signal: np.ndarray
    engaged: bool
    input_peak_dbfs: float
    output_peak_dbfs: float
    n_nonfinite: int = 0
    input_true_peak_dbtp: float = -200.0
    output_true_peak_dbtp: float = -200.0
    output_rms_dbfs: float = -200.0
    seconds_at_ceiling: float = 0.0
    rms_gain_db: float = 0.0
    duration_gain_db: float = 0.0

    def notes(self, speaker: str, max_dbfs: float) -> list[str]:
        """One line per limit that acted, naming ``speaker``, for a trial's notes."""
        out: list[str] = []
        if self.n_nonfinite:
            out.append(f"speaker {speaker}: {self.n_nonfinite} NaN/inf sample(s) replaced by silence")
        if self.input_peak_dbfs > max_dbfs or self.input_true_peak_dbtp > max_dbfs:
            out.append(f"speaker {speaker}: signal peak {self.input_peak_dbfs:.1f} dBFS "
                       f"(true peak {self.input_true_peak_dbtp:.1f} dBTP) exceeded max_dbfs {max_dbfs:g}; "
                       f"limited to {self.output_true_peak_dbtp:.1f} dBTP")
        if self.rms_gain_db < 0:
            out.append(f"speaker {speaker}: RMS over max_rms_dbfs; attenuated by {-self.rms_gain_db:.1f} dB "
                       f"to {self.output_rms_dbfs:.1f} dBFS")
        if self.duration_gain_db < 0:
            out.append(f"speaker {speaker}: longer than max_seconds_at_ceiling within {AT_CEILING_DB:g} dB "
                       f"of the ceiling; attenuated by {-self.duration_gain_db:.1f} dB "
                       f"({self.seconds_at_ceiling:.2f} s at the ceiling now)")
        return out


def ceiling(max_dbfs: float) -> float:
    """Linear amplitude of a ``max_dbfs`` cap (full scale = 1.0), never above 1.0."""
    return float(min(1.0, 10.0 ** (float(max_dbfs) / 20.0)))


def ceiling32(max_dbfs: float) -> np.float32:
    """:func:`ceiling` rounded down to float32, so a float32 clip at it never exceeds the cap."""
    c = ceiling(max_dbfs)
    c32 = np.float32(c)
    return np.nextafter(c32, np.float32(0)) if float(c32) > c else c32


def _db(v: float) -> float:
    return float(20 * np.log10(max(float(v), 1e-10)))


def true_peak_dbtp(signal: np.ndarray) -> float:
    """:func:`true_peak` in dBTP (dB relative to full scale, true peak); -200 for silence."""
    return _db(true_peak(signal))


def seconds_at_ceiling(signal: np.ndarray, max_dbfs: float, sample_rate: int) -> float:
    """Seconds of ``signal`` whose true-peak envelope is within ``AT_CEILING_DB`` of ``max_dbfs``."""
    at = ceiling(max_dbfs) * 10.0 ** (-AT_CEILING_DB / 20.0)
    return float(np.count_nonzero(true_peak_envelope(signal) >= at)) / float(sample_rate)


def loudest_rms(signal: np.ndarray, sample_rate: int, window_s: float = RMS_WINDOW_S) -> float:
    """RMS (linear) of the loudest ``window_s`` stretch of ``signal`` (the whole when shorter)."""
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return 0.0
    w = int(min(x.size, max(1, round(window_s * sample_rate))))
    if w == x.size:
        return float(np.sqrt(float(np.sum(x * x)) / w))
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    return float(np.sqrt(max(0.0, float(np.max(energy[w:] - energy[:-w]))) / w))


def fade(signal: np.ndarray, sample_rate: int, fade_ms: float = FADE_MS) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``fade_ms`` at each end (a copy, float32)."""
    y = np.array(signal, dtype=np.float32, copy=True)
    n = min(int(round(fade_ms * 1e-3 * sample_rate)), len(y) // 2)
    return fade_edges(y, n)


def _soft_clip(x: np.ndarray, c: float, knee_db: float, peak: float | None = None) -> np.ndarray:
    """Samples above ``c - knee_db`` approach ``c`` along a tanh knee, then clip at ``c``
    (``peak``: ``max|x|`` when the caller knows it)."""
    t = c * 10.0 ** (-abs(knee_db) / 20.0)
    if peak is not None and peak <= t:
        return x
    a = np.abs(x)
    over = a > t
    if not np.any(over):
        return x                # every |x| <= t <= c: nothing to bend or clip
    span = c - t
    y = x.copy()
    with np.errstate(over="ignore"):  # huge inputs: tanh saturates at 1 anyway
        z = np.minimum((a[over] - t) / span, 50.0)
    y[over] = np.sign(x[over]) * (t + span * np.tanh(z))
    return np.clip(y, -c, c)


def _stretches(idx: np.ndarray, margin: int, n: int) -> list[tuple[int, int]]:
    """``(start, stop)`` stretches covering every index of ``idx`` (sorted) with ``margin`` samples
    either side, clipped to ``0..n``; indices closer than ``2 * margin`` share a stretch."""
    if idx.size == 0:
        return []
    ends = np.flatnonzero(np.diff(idx) > 2 * margin)
    firsts = [int(idx[0])] + idx[ends + 1].tolist()
    lasts = idx[ends].tolist() + [int(idx[-1])]
    return [(max(0, a - margin), min(n, b + margin + 1)) for a, b in zip(firsts, lasts)]


def _bound_true_peak(y: np.ndarray, c: float, sample_rate: int,
                     env: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``y`` (float64) with its true peak <= ``c``: smooth local gains, then one exact whole gain.
    Returns the signal and its :func:`true_peak_envelope` (``env``, when given, is ``y``'s).

    Where the envelope is over ``c`` the needed gain is spread (minimum filter, then a Hann
    smoothing of ``TRUE_PEAK_SMOOTH_MS``) so the gain itself stays smooth and adds little
    distortion; a smooth gain does not remove every inter-sample overshoot at once, hence the passes.
    The gain differs from 1 only within ``2 w`` samples of an overshoot (``w`` the smoothing length:
    ``w`` for the minimum filter, ``w / 2`` for the Hann), so each pass computes it on stretches
    ``4 w`` around the overshoots and re-measures the envelope only where it changed the signal.
    """
    from scipy.ndimage import minimum_filter1d

    c = c * (1.0 - _MARGIN)     # room for the float32 rounding that follows
    w = max(1, int(round(TRUE_PEAK_SMOOTH_MS * 1e-3 * sample_rate)))
    hann = np.hanning(w + 2)[1:-1]
    hann /= hann.sum()
    if env is None:
        env = true_peak_envelope(y)
    for _ in range(TRUE_PEAK_PASSES):
        if env.size == 0 or env.max() <= c:
            return y, env
        g = np.ones_like(y)
        for s, e in _stretches(np.flatnonzero(env > c), 4 * w, env.size):
            need = np.minimum(1.0, c / np.maximum(env[s:e], 1e-30))
            gs = minimum_filter1d(need, size=2 * w + 1, mode="nearest")
            padded = np.concatenate((np.full(w, gs[0]), gs, np.full(w, gs[-1])))   # np.pad "edge", cheaper
            g[s:e] = np.convolve(padded, hann, mode="same")[w:-w]
        # far from every overshoot g is a smoothing of ones: 1, up to the rounding of its sum
        changed = g < 1.0 - _UNITY_TOL
        y = np.where(changed, y * g, y)
        env = update_true_peak_envelope(y, env, changed)
    g = min(1.0, c / float(env.max()))
    return y * g, env * g


def _duration_gain(env: np.ndarray, c: float, max_seconds: float, sample_rate: int) -> float:
    """Linear gain (<= 1) leaving at most ``max_seconds`` of a signal with true-peak envelope
    ``env`` within ``AT_CEILING_DB`` of ``c``."""
    at = c * 10.0 ** (-AT_CEILING_DB / 20.0)
    allowed = int(np.floor(max_seconds * sample_rate))
    if np.count_nonzero(env >= at) <= allowed:
        return 1.0
    # the (allowed + 1)-th loudest sample must fall under the threshold: then at most `allowed` stay
    kth = float(np.partition(env, env.size - allowed - 1)[env.size - allowed - 1])
    return at / kth * (1.0 - _MARGIN)


def limit(
    signal: np.ndarray,
    max_dbfs: float,
    sample_rate: int,
    *,
    knee_db: float = KNEE_DB,
    fade_ms: float = FADE_MS,
    max_rms_dbfs: float | None = None,
    max_seconds_at_ceiling: float | None = None,
) -> LimitResult:
    """Limit ``signal`` so its sample and true peak never exceed ``max_dbfs`` (and its RMS and
    time at the ceiling stay under their caps, when given).

    Parameters
    ----------
    signal : float array, shape (n_samples,), PCM in full-scale units.
    max_dbfs : the speaker's cap in dBFS (<= 0), applied to the true peak (dBTP).
    sample_rate : Hz, for the fade, smoothing and window lengths.
    knee_db : samples below ``max_dbfs - knee_db`` pass unchanged; above it a tanh knee
        approaches the ceiling smoothly.
    fade_ms : raised-cosine fade at each end, in milliseconds (0 disables).
    max_rms_dbfs : cap on the RMS of the loudest ``RMS_WINDOW_S`` (None: no RMS limit).
    max_seconds_at_ceiling : cap on the seconds within ``AT_CEILING_DB`` of the ceiling
        (None: no duration limit).

    Returns
    -------
    LimitResult
        ``engaged`` is True when any limit acted or the input held non-finite samples (the
        session records it as "limited"); :meth:`LimitResult.notes` says which.
    """
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    # max and min are nan or inf exactly when some sample is: count them only then
    hi, lo = (float(x.max()), float(x.min())) if x.size else (0.0, 0.0)
    n_bad = 0
    if not (np.isfinite(hi) and np.isfinite(lo)):
        finite = np.isfinite(x)
        n_bad = int(x.size - np.count_nonzero(finite))
        x = np.where(finite, x, 0.0)
        hi, lo = (float(x.max()), float(x.min()))
    c = ceiling(max_dbfs)
    peak_in = max(hi, -lo, 0.0)
    # a huge input's true peak is meaningless and may overflow, and a quiet one's provably under
    # the cap (sample peak x the filter's largest branch gain): measure it only when it matters
    env = None
    if peak_in > 4.0:
        tp_in = peak_in
    elif peak_in * _polyphase_gain() > c:
        env = true_peak_envelope(x)
        tp_in = float(env.max())
    else:
        tp_in = peak_in * _polyphase_gain()     # an upper bound, and under the cap
    y = _soft_clip(x, c, knee_db, peak_in).astype(np.float32)       # a new array: fade it in place
    if fade_ms > 0:
        y = fade_edges(y, min(int(round(fade_ms * 1e-3 * sample_rate)), len(y) // 2))
    y = y.astype(np.float64)
    if env is not None:
        # the knee, the fades and float32 rounding changed some samples: re-measure only there
        env = update_true_peak_envelope(y, env, y != x)
    # env follows y through the (linear) gains below: one oversampling for a quiet signal
    y, env = _bound_true_peak(y, c, sample_rate, env)
    rms_gain = dur_gain = 1.0
    # the gains below are linear: the output's loudest RMS is this one scaled by them (up to the
    # final float32 rounding, ~1e-7 relative)
    rms = loudest_rms(y, sample_rate)
    if max_rms_dbfs is not None and y.size:
        cap = ceiling(max_rms_dbfs)
        if rms > cap:
            rms_gain = cap / rms * (1.0 - _MARGIN)
            y, env = y * rms_gain, env * rms_gain
    if max_seconds_at_ceiling is not None and y.size:
        dur_gain = _duration_gain(env, c, float(max_seconds_at_ceiling), sample_rate)
        y, env = y * dur_gain, env * dur_gain
    # float32 rounding of c can land a hair above it: clip once more in float32.
    c32 = ceiling32(max_dbfs)
    y = np.clip(y.astype(np.float32), -c32, c32)
    peak_out = float(np.max(np.abs(y))) if y.size else 0.0
    at = c * 10.0 ** (-AT_CEILING_DB / 20.0)
    return LimitResult(
        signal=y,
        engaged=bool(peak_in > c or tp_in > c or n_bad > 0 or rms_gain < 1.0 or dur_gain < 1.0),
        input_peak_dbfs=_db(peak_in),
        output_peak_dbfs=_db(peak_out),
        n_nonfinite=n_bad,
        input_true_peak_dbtp=_db(tp_in),
        output_true_peak_dbtp=_db(float(env.max()) if env.size else 0.0),
        output_rms_dbfs=_db(rms * rms_gain * dur_gain),
        seconds_at_ceiling=float(np.count_nonzero(env >= at)) / float(sample_rate),
        rms_gain_db=_db(rms_gain) if rms_gain < 1.0 else 0.0,
        duration_gain_db=_db(dur_gain) if dur_gain < 1.0 else 0.0,
    )


def limit_for(speaker, signal: np.ndarray, sample_rate: int) -> LimitResult:
    """:func:`limit` with a rig speaker's caps (``max_dbfs``, ``max_rms_dbfs``, ``max_seconds_at_ceiling``)."""
    return limit(signal, speaker.max_dbfs, sample_rate,
                 max_rms_dbfs=getattr(speaker, "max_rms_dbfs", None),
                 max_seconds_at_ceiling=getattr(speaker, "max_seconds_at_ceiling", None))


def record_limit(facts, speaker: str, result: LimitResult, max_dbfs: float) -> None:
    """Write what the limiter did to ``speaker`` into a :class:`~testbed.audio.types.TrialFacts`:
    ``limited``, ``speaker_true_peak_dbtp``, ``speaker_max_rms_dbfs``, ``speaker_seconds_at_ceiling``
    and one note per limit that acted."""
    facts.limited[speaker] = result.engaged
    facts.speaker_true_peak_dbtp[speaker] = result.output_true_peak_dbtp
    facts.speaker_max_rms_dbfs[speaker] = result.output_rms_dbfs
    facts.speaker_seconds_at_ceiling[speaker] = result.seconds_at_ceiling
    facts.notes.extend(result.notes(speaker, max_dbfs))


def hard_cap(block: np.ndarray, ceilings: np.ndarray) -> np.ndarray:
    """Last line of defence on a whole output buffer: clip each channel to its ceiling.

    Parameters
    ----------
    block : float32, shape (n_frames, n_channels), modified in place and returned.
    ceilings : float32, shape (n_channels,), linear amplitude per channel (see :func:`ceiling32`).
    """
    np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    c = np.asarray(ceilings, dtype=np.float32)[None, :]
    np.clip(block, -c, c, out=block)
    return block
