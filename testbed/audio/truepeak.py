"""True-peak metering (ITU-R BS.1770-4, 4x oversampling) for the speaker safety limiter.

The reconstructed signal is what ``scipy.signal.resample_poly(x, 4, 1)`` makes of the samples.
It is computed as that filter's four polyphase branches, each a short convolution at the input
rate; the branch that is (to rounding) a scaled unit impulse is a multiplication, and
:func:`update_true_peak_envelope` recomputes an envelope only around the samples that changed,
which is what lets the limiter's passes cost little where a signal is not over its cap.
"""

from __future__ import annotations

import functools

import numpy as np

#: Oversampling factor of the true-peak meter (ITU-R BS.1770-4, annex 2).
TRUE_PEAK_OVERSAMPLE = 4
#: A branch whose off-centre taps sum (in magnitude) to at most this fraction of its centre tap
#: is treated as that centre tap times the signal (the error is that fraction of the peak).
_DELTA_TOL = 1e-12
#: Changed stretches at least this long are convolved; shorter ones are gathered into one product.
_SPAN_MIN = 512
#: Positions gathered per matrix product (memory: this x 21 floats).
_GATHER_CHUNK = 16384
#: Above this fraction of the signal changed, the whole envelope is recomputed at once.
_FULL_FRACTION = 0.6


@functools.lru_cache(maxsize=1)
def _oversampling_filter() -> np.ndarray:
    """``resample_poly(x, 4, 1)``'s own default filter, designed once (the design costs more than
    the filtering of a 1 s signal)."""
    from scipy.signal import firwin

    f = firwin(2 * 10 * TRUE_PEAK_OVERSAMPLE + 1, 1.0 / TRUE_PEAK_OVERSAMPLE, window=("kaiser", 5.0))
    f.flags.writeable = False
    return f


@functools.lru_cache(maxsize=1)
def _polyphase() -> tuple[int, tuple[np.ndarray, ...]]:
    """``(offset, branches)``: ``resample_poly(x, 4, 1)[k::4]`` equals
    ``np.convolve(x, branches[k])[offset:offset + len(x)]`` (resample_poly scales its filter by 4)."""
    h = _oversampling_filter() * TRUE_PEAK_OVERSAMPLE
    offset = (h.size - 1) // 2 // TRUE_PEAK_OVERSAMPLE
    return offset, tuple(np.ascontiguousarray(h[k::TRUE_PEAK_OVERSAMPLE]) for k in range(TRUE_PEAK_OVERSAMPLE))


@functools.lru_cache(maxsize=1)
def _polyphase_gain() -> float:
    """The largest gain any reconstructed point can have over the sample peak (the largest L1
    norm of a polyphase branch, about 2.24 = +7 dB): ``true_peak(x) <= max|x| * this``."""
    return max(1.0, max(float(np.abs(b).sum()) for b in _polyphase()[1]))


@functools.lru_cache(maxsize=1)
def _kernels() -> tuple[int, float, tuple[np.ndarray, ...], int]:
    """``(offset, scale, branches, longest)``: the envelope is ``max(scale * |x|, |branch outputs|)``.

    ``scale`` (>= 1, the sample itself) folds in every branch that is a scaled unit impulse at
    ``offset`` (the filter's zero-phase branch: its other taps are sinc zeros, ~1e-17);
    ``branches`` are the others, convolved; ``longest`` is the longest branch, in taps.
    """
    offset, all_branches = _polyphase()
    scale = 1.0
    kept = []
    for b in all_branches:
        centre = abs(float(b[offset])) if offset < b.size else 0.0
        rest = float(np.abs(b).sum()) - centre
        if centre > 0.0 and rest <= _DELTA_TOL * centre:
            scale = max(scale, centre)
        else:
            kept.append(b)
    return offset, scale, tuple(kept), max(b.size for b in all_branches)


def _envelope_span(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The true-peak envelope of ``x`` (float64, finite) at samples ``start:stop``: the branch
    convolutions of only the samples that reach them (silence before and after ``x``)."""
    offset, scale, branches, longest = _kernels()
    n = x.size
    lo, hi = max(0, start + offset - longest + 1), min(n, stop + offset)
    env = np.abs(x[start:stop])
    if scale != 1.0:
        env *= scale
    seg = x[lo:hi]
    first = start + offset - lo
    for b in branches:
        out = np.convolve(seg, b)[first:first + stop - start]
        np.maximum(env, np.abs(out, out=out), out=env)
    return env


def true_peak_envelope(signal: np.ndarray) -> np.ndarray:
    """Per-sample true peak: the largest magnitude among a sample and its oversampled neighbours.

    Parameters
    ----------
    signal : float array, shape (n_samples,), finite.

    Returns
    -------
    float64, shape (n_samples,): ``max(|x[n]|, |x(n + k / 4)|, k = 0..3)`` with the signal
    reconstructed as ``scipy.signal.resample_poly(x, 4, 1)`` reconstructs it (silence before and
    after it), to rounding (~1e-16 of the peak). Computed as that filter's polyphase branches,
    each one short convolution at the input rate: about a third of the cost of upsampling first.
    """
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return np.zeros(0)
    return _envelope_span(x, 0, x.size)


@functools.lru_cache(maxsize=1)
def _branch_matrix() -> np.ndarray:
    """The convolved branches as one matrix, shape (longest, n_branches): the envelope at sample
    ``n`` is ``x[n + offset - longest + 1 : n + offset + 1] @ this`` (each branch reversed, padded)."""
    _, _, branches, longest = _kernels()
    m = np.zeros((longest, len(branches)))
    for k, b in enumerate(branches):
        m[longest - b.size:, k] = b[::-1]
    m.flags.writeable = False
    return m


def _envelope_at(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The true-peak envelope of ``x`` at the sample indices ``positions`` (int, shape (m,)): the
    windows that reach them gathered into one matrix product (no per-stretch call overhead)."""
    offset, scale, _, longest = _kernels()
    xp = np.concatenate((np.zeros(longest), x, np.zeros(longest)))
    taps = np.arange(longest)
    env = np.abs(x[positions])
    if scale != 1.0:
        env *= scale
    for a in range(0, positions.size, _GATHER_CHUNK):      # bounded memory: chunk x longest floats
        windows = xp[(positions[a:a + _GATHER_CHUNK] + offset + 1)[:, None] + taps]
        out = np.abs(windows @ _branch_matrix())
        part = env[a:a + _GATHER_CHUNK]
        for k in range(out.shape[1]):      # a max over 3 columns is slower as a reduction
            np.maximum(part, out[:, k], out=part)
    return env


def update_true_peak_envelope(signal: np.ndarray, envelope: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """:func:`true_peak_envelope` of ``signal`` from the envelope of a signal that differs from it
    only at the samples ``changed``: recomputed within the filter's reach of them, kept elsewhere.

    Parameters
    ----------
    signal : float64, shape (n_samples,), finite: the new signal.
    envelope : float64, shape (n_samples,): the old signal's true-peak envelope (not modified).
    changed : bool, shape (n_samples,): where the new signal differs from the old one.

    Returns
    -------
    float64, shape (n_samples,): the new signal's envelope (a new array, or ``envelope`` itself
    when nothing changed). Long stretches are convolved, scattered samples gathered.
    """
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    idx = np.flatnonzero(changed)
    if idx.size == 0:
        return envelope
    n = x.size
    offset, _, _, longest = _kernels()
    # sample p reaches the envelope at p - offset .. p - offset + longest - 1
    left, right = offset, longest - 1 - offset
    ends = np.flatnonzero(np.diff(idx) > left + right + 1)
    first = np.empty(ends.size + 1, dtype=np.intp)
    last = np.empty(ends.size + 1, dtype=np.intp)
    first[0], first[1:] = idx[0], idx[ends + 1]
    last[:-1], last[-1] = idx[ends], idx[-1]
    starts = np.maximum(first - left, 0)
    stops = np.minimum(last + right + 1, n)
    if int((stops - starts).sum()) > _FULL_FRACTION * n:
        return _envelope_span(x, 0, n)
    env = envelope.copy()
    long = (stops - starts) >= _SPAN_MIN
    for s, e in zip(starts[long].tolist(), stops[long].tolist()):
        env[s:e] = _envelope_span(x, s, e)
    if not long.all():
        s, e = starts[~long], stops[~long]
        lengths = e - s
        # every index of every short stretch: s[i] .. e[i] - 1, concatenated
        positions = np.arange(int(lengths.sum())) + np.repeat(s - (np.cumsum(lengths) - lengths), lengths)
        env[positions] = _envelope_at(x, positions)
    return env


def true_peak(signal: np.ndarray) -> float:
    """True peak of ``signal`` (linear, full scale = 1.0), as ITU-R BS.1770-4's 4x oversampling meter."""
    env = true_peak_envelope(signal)
    return float(env.max()) if env.size else 0.0
