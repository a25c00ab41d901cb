"""Raised-cosine fades: the one ramp every part of the testbed tapers signal edges with.

The ramp of ``n`` samples is ``0.5 - 0.5 cos(pi k / n)`` for ``k = 0 .. n-1``: it starts at 0
and stops one step short of 1, so a faded signal has no click at either end. It lives at the
top level (like :mod:`testbed.fileio`) because the audio limiter, the calibration signals and
the Farina analysis, in different layers, all use it.
"""

from __future__ import annotations

import numpy as np


def raised_cosine(n: int) -> np.ndarray:
    """The rising half of a raised-cosine window: float64, shape (n,), from 0 up to just under 1."""
    n = int(n)
    if n <= 0:
        return np.zeros(0)
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)


def fade_window(length: int, n_fade: int) -> np.ndarray:
    """A window of ones with a raised-cosine fade-in and fade-out of ``n_fade`` samples each.

    Parameters
    ----------
    length : window length, samples.
    n_fade : fade length at each end, samples (0 gives all ones). The fade-out is written
        last, so where the two overlap (``2 * n_fade > length``) it wins.

    Returns
    -------
    float64 array, shape (length,).
    """
    w = np.ones(int(length))
    if n_fade > 0:
        ramp = raised_cosine(n_fade)
        w[:n_fade] = ramp
        w[len(w) - n_fade:] = ramp[::-1]
    return w


def fade_edges(x: np.ndarray, n_fade: int) -> np.ndarray:
    """Multiply the first and last ``n_fade`` samples of ``x`` by the raised-cosine ramp, in place.

    Parameters
    ----------
    x : float array, shape (n_samples,); modified in place and returned. The ramp is cast to
        ``x.dtype`` first, so a float32 signal is faded in float32.
    n_fade : fade length at each end, samples (0 leaves ``x`` as it is).
    """
    if n_fade > 0:
        ramp = raised_cosine(n_fade).astype(x.dtype, copy=False)
        x[:n_fade] *= ramp
        x[len(x) - n_fade:] *= ramp[::-1]
    return x
