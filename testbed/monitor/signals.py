"""Small pictures of a capture for the page: a min/max waveform envelope and a log spectrogram.

Both are computed here, server-side, so the browser only draws numbers (no audio reaches it).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import stft

#: Floor of the spectrogram, dB relative to full scale.
FLOOR_DB = -120.0


def envelope(signal: np.ndarray, n_points: int = 400) -> dict:
    """Min and max of ``signal`` over ``n_points`` equal spans (what a waveform plot needs).

    Parameters
    ----------
    signal : float32 (n_samples,), PCM in [-1, 1].
    n_points : columns of the plot.

    Returns
    -------
    ``{"min": [...], "max": [...]}``: two lists of ``min(n_points, n_samples)`` floats (4 decimals).
    """
    x = np.nan_to_num(np.asarray(signal, dtype=np.float32))
    if x.size == 0:
        return {"min": [], "max": []}
    n = min(n_points, x.size)
    edges = np.linspace(0, x.size, n + 1).astype(int)[:-1]    # n spans of (almost) equal length
    lo = np.minimum.reduceat(x, edges)
    hi = np.maximum.reduceat(x, edges)
    return {"min": np.round(lo, 4).tolist(), "max": np.round(hi, 4).tolist()}


def spectrogram(signal: np.ndarray, sample_rate: int, n_freqs: int = 64, n_frames: int = 120) -> dict:
    """A small log-magnitude spectrogram of ``signal`` (scipy.signal.stft, Hann window).

    Parameters
    ----------
    signal : float32 (n_samples,), PCM in [-1, 1].
    sample_rate : Hz.
    n_freqs, n_frames : at most this many frequency rows (0 .. Nyquist, pooled by max) and time
        columns (pooled by max) are returned.

    Returns
    -------
    ``{"db": [[...] x frames] x freqs, "f_max_hz", "duration_s", "lo_db", "hi_db"}``: ``db`` holds
    integer dBFS values, row 0 the lowest frequency.
    """
    x = np.nan_to_num(np.asarray(signal, dtype=np.float32))    # float32 halves the STFT's work
    duration_s = x.size / float(sample_rate)
    if x.size < 16:
        return {"db": [], "f_max_hz": sample_rate / 2, "duration_s": duration_s, "lo_db": FLOOR_DB, "hi_db": 0}
    nperseg = int(min(256, x.size))
    _, _, z = stft(x, fs=sample_rate, nperseg=nperseg, noverlap=nperseg // 2, boundary=None, padded=False)
    # |Z| of a full-scale sine is ~1/2 with scipy's "spectrum" scaling of the window
    # pooled before the log (max commutes with a monotonic map): the log runs on the small picture only
    mag = _pool_max(_pool_max(np.abs(z), n_freqs, axis=0), n_frames, axis=1) * 2.0
    db = 20.0 * np.log10(np.maximum(mag, 10 ** (FLOOR_DB / 20)))
    out = np.round(db).astype(int)
    return {"db": out.tolist(), "f_max_hz": sample_rate / 2, "duration_s": duration_s,
            "lo_db": int(out.min()), "hi_db": int(out.max())}


def _pool_max(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Max over ``n`` (almost) equal groups along ``axis`` (unchanged when it is already that small);
    one ``np.maximum.reduceat`` call, the groups as ``np.array_split`` makes them."""
    size = a.shape[axis]
    if size <= n:
        return a
    q, r = divmod(size, n)
    edges = np.arange(n) * q + np.minimum(np.arange(n), r)
    return np.maximum.reduceat(a, edges, axis=axis)
