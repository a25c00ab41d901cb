"""The analog-to-digital converter of a simulated mic: full-scale clipping and quantisation."""

from __future__ import annotations

import numpy as np


def adc(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Clip at full scale and quantise to ``bits`` (two's complement, no dither).

    Parameters
    ----------
    x : float array, shape (n_samples,), the analog signal in full-scale units.
    bits : converter resolution; codes are ``k / 2 ** (bits - 1)`` for
        ``k = -2 ** (bits - 1) .. 2 ** (bits - 1) - 1``.

    Returns
    -------
    samples : float32 array, shape (n_samples,)
    clipped : how many samples fell outside the converter's range.
    """
    q = float(2 ** (bits - 1))
    codes = np.asarray(x, dtype=np.float64) * q
    np.rint(codes, out=codes)
    lo, hi = (float(codes.min()), float(codes.max())) if codes.size else (0.0, 0.0)
    clipped = 0
    if hi > q - 1 or lo < -q:   # a signal inside the range (nearly always) needs no clip or count
        clipped = int(np.count_nonzero((codes > q - 1) | (codes < -q)))
        np.clip(codes, -q, q - 1, out=codes)
    codes /= q
    return codes.astype(np.float32), clipped
