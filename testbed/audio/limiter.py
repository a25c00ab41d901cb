"""The speaker safety limiter: nothing ever leaves for a speaker above its ``max_dbfs``.

A soft limiter (a smooth ``tanh`` knee starting ``knee_db`` below the ceiling) keeps
loud signals from distorting abruptly, then a hard clip at the ceiling makes the cap
absolute, then a short raised-cosine fade-in/out stops clicks at the signal's edges.
Non-finite samples (NaN, inf) are replaced by silence. An attack can ask for anything;
the tweeter only ever sees at most ``max_dbfs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.fade import fade_edges

#: Default fade-in/out length at each end of a speaker signal, in milliseconds.
FADE_MS = 5.0
#: Default width of the soft knee below the ceiling, in dB.
KNEE_DB = 3.0


@dataclass(frozen=True)
class LimitResult:
    """A limited signal and what the limiter had to do.

    Attributes
    ----------
    signal : float32, shape (n_samples,), peak <= 10 ** (max_dbfs / 20).
    engaged : True when the input would have exceeded the ceiling (or held NaN/inf).
    input_peak_dbfs : peak of the input before limiting (finite samples only).
    output_peak_dbfs : peak of what leaves for the speaker.
    n_nonfinite : NaN/inf samples replaced by silence.
    """

    signal: np.ndarray
    engaged: bool
    input_peak_dbfs: float
    output_peak_dbfs: float
    n_nonfinite: int = 0


def ceiling(max_dbfs: float) -> float:
    """Linear amplitude of a ``max_dbfs`` cap (full scale = 1.0), never above 1.0."""
    return float(min(1.0, 10.0 ** (float(max_dbfs) / 20.0)))


def ceiling32(max_dbfs: float) -> np.float32:
    """:func:`ceiling` rounded down to float32, so a float32 clip at it never exceeds the cap."""
    c = ceiling(max_dbfs)
    c32 = np.float32(c)
    return np.nextafter(c32, np.float32(0)) if float(c32) > c else c32


def fade(signal: np.ndarray, sample_rate: int, fade_ms: float = FADE_MS) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``fade_ms`` at each end (a copy, float32)."""
    y = np.array(signal, dtype=np.float32, copy=True)
    n = min(int(round(fade_ms * 1e-3 * sample_rate)), len(y) // 2)
    return fade_edges(y, n)


def limit(
    signal: np.ndarray,
    max_dbfs: float,
    sample_rate: int,
    *,
    knee_db: float = KNEE_DB,
    fade_ms: float = FADE_MS,
) -> LimitResult:
    """Limit ``signal`` so its peak never exceeds ``max_dbfs``.

    Parameters
    ----------
    signal : float array, shape (n_samples,), PCM in full-scale units.
    max_dbfs : the speaker's cap in dBFS (<= 0).
    sample_rate : Hz, for the fade length.
    knee_db : samples below ``max_dbfs - knee_db`` pass unchanged; above it a tanh knee
        approaches the ceiling smoothly.
    fade_ms : raised-cosine fade at each end, in milliseconds (0 disables).

    Returns
    -------
    LimitResult
        ``engaged`` is True when the input peak exceeded the ceiling or held non-finite
        samples (the session records it as "limited").
    """
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    finite = np.isfinite(x)
    n_bad = int(x.size - np.count_nonzero(finite))
    if n_bad:
        x = np.where(finite, x, 0.0)
    c = ceiling(max_dbfs)
    peak_in = float(np.max(np.abs(x))) if x.size else 0.0
    t = c * 10.0 ** (-abs(knee_db) / 20.0)
    a = np.abs(x)
    over = a > t
    if np.any(over):
        span = c - t
        y = x.copy()
        with np.errstate(over="ignore"):  # huge inputs: tanh saturates at 1 anyway
            z = np.minimum((a[over] - t) / span, 50.0)
        y[over] = np.sign(x[over]) * (t + span * np.tanh(z))
    else:
        y = x
    y = np.clip(y, -c, c).astype(np.float32)
    if fade_ms > 0:
        y = fade(y, sample_rate, fade_ms)
    # float32 rounding of c can land a hair above it: clip once more in float32.
    c32 = ceiling32(max_dbfs)
    y = np.clip(y, -c32, c32)
    peak_out = float(np.max(np.abs(y))) if y.size else 0.0
    return LimitResult(
        signal=y,
        engaged=bool(peak_in > c or n_bad > 0),
        input_peak_dbfs=float(20 * np.log10(max(peak_in, 1e-10))),
        output_peak_dbfs=float(20 * np.log10(max(peak_out, 1e-10))),
        n_nonfinite=n_bad,
    )


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
