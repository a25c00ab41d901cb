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
    x = np.asarray(x)
    # a float32 signal at <= 24 bits quantises exactly in float32: scaling by a power of two,
    # rounding to an integer code (< 2 ** 24) and scaling back are all exact there
    dtype = np.float32 if x.dtype == np.float32 and bits <= 24 else np.float64
    q = dtype(2 ** (bits - 1))
    codes = x.astype(dtype) * q
    np.rint(codes, out=codes)
    lo, hi = (float(codes.min()), float(codes.max())) if codes.size else (0.0, 0.0)
    clipped = 0
    if not (lo >= -q and hi <= q - 1):   # inside the range (nearly always): no clip or count; NaN: both
        clipped = int(np.count_nonzero((codes > q - 1) | (codes < -q)))
        np.clip(codes, -q, q - 1, out=codes)
    codes /= q
    return codes.astype(np.float32, copy=False), clipped
