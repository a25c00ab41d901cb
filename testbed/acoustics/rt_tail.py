"""pyroomacoustics' ray-traced tail synthesis, vectorised: the same numbers, bit for bit.

``pyroomacoustics.simulation.rt.compute_rt_rir`` turns the tracer's energy histograms into an
impulse response by drawing a Poisson sequence of diracs (``poisson_sequence``: one Python
iteration per dirac) and placing each dirac with its sign and gain (``directional_sequence``:
one more Python iteration per dirac). At 10 000 diracs a second that is ~30 ms per
source/mic pair, most of a hybrid room's cold start. The two functions here compute the same
arrays from the same draws of pyroomacoustics' package RNG, in the same order and the same
floating-point operations (so a seeded room gives the identical RIR and leaves the RNG in the
identical state), with the per-dirac loops replaced by array operations:

- once the dirac rate reaches its cap (after ~0.04 s), every interval is ``log(1 / z) / cap``:
  the intervals are drawn at once and summed with ``np.add.accumulate`` (sequential, like the
  loop's ``times[-1] + dt``); the RNG is then rewound to exactly the draws the loop would make;
- a one-tap receiver response (every omnidirectional mic) places the diracs with one
  ``np.add.at`` (unbuffered, in dirac order, like the loop); longer responses keep the loop.

:func:`fast_tail` swaps them into ``pyroomacoustics.simulation.rt`` for the duration of a block.
``tests/acoustics/test_rt_tail.py`` asserts bitwise equality with pyroomacoustics' originals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import threading

import numpy as np

#: Diracs drawn per block beyond the expected count (the loop's stopping time is random).
_SLACK = 64


def _rng():
    from testbed.acoustics.pra import pyroomacoustics

    return pyroomacoustics().random.get_rng()


def poisson_sequence(volume, duration, c, max_rate=10000, t0=None):
    """Same signature, draws and result as ``pyroomacoustics.simulation.rt.poisson_sequence``.

    Parameters
    ----------
    volume : room volume, cubic metres.
    duration : seconds of sequence after ``t0``.
    c : speed of sound, metres per second.
    max_rate : cap on the dirac rate, diracs per second.
    t0 : time of the first dirac, seconds (default: pyroomacoustics' mixing-time estimate).

    Returns
    -------
    ``(t0, times)``: ``times`` float64, shape (n_diracs,), seconds, the last one >= t0 + duration.
    """
    rng = _rng()
    fpcv = 4 * np.pi * c**3 / volume
    if t0 is None:
        t0 = ((2 * np.log(2)) / fpcv) ** (1.0 / 3.0)
    times = [t0]
    mu = None
    # the loop itself while the rate still grows (a few hundred diracs at most)
    while times[-1] < t0 + duration:
        z = rng.uniform()
        mu = np.minimum(fpcv * (t0 + times[-1]) ** 2, max_rate)
        dt = np.log(1 / z) / mu
        times.append(times[-1] + dt)
        if mu == max_rate:
            break
    if not times[-1] < t0 + duration:
        return t0, np.array(times)
    # the rate is capped from here on: every interval is log(1 / z) / mu with the same mu
    end = t0 + duration
    bitgen = rng.bit_generator
    state = bitgen.state
    tail = [np.asarray([times[-1]], dtype=np.float64)]
    used = 0
    while True:
        n = int((end - float(tail[-1][-1])) * float(mu)) + _SLACK
        z = rng.uniform(size=n)
        acc = np.add.accumulate(np.concatenate((tail[-1][-1:], np.log(1 / z) / mu)))[1:]
        past = np.flatnonzero(~(acc < end))
        if past.size:
            k = int(past[0]) + 1
            tail.append(acc[:k])
            used += k
            break
        tail.append(acc)
        used += n
    bitgen.state = state
    rng.uniform(size=used)      # the draws the loop would have made, and no more
    return t0, np.concatenate((np.array(times), *tail[1:]))


def directional_sequence(t0, times, response, hist, hist_bin_size, fs):
    """Same signature, draws and result as ``pyroomacoustics.simulation.rt.directional_sequence``:
    signed diracs at ``times`` (seconds), each scaled to unit local energy per histogram bin and
    convolved with a receiver response drawn from the direction histogram ``hist``.

    Returns
    -------
    float64, shape (int(times[-1] * fs) + n_taps + 1,)
    """
    from testbed.acoustics.pra import pyroomacoustics

    pyroomacoustics()
    from pyroomacoustics.simulation import rt

    rng = _rng()
    seq_bp = rt.binary_sequence(times, fs)
    seq_power = rt.seq_rolling_power(seq_bp, int(hist_bin_size * fs), filter_length_mult=2)
    nonzero = seq_power > 1e-10
    seq_power_norm = np.where(nonzero, 1.0 / np.where(nonzero, seq_power, 1.0), 0.0)
    indices = (times * fs).astype(np.int64)
    bins = np.floor((times - t0) / hist_bin_size).astype(np.int64)
    bins = np.minimum(bins, hist.shape[-1] - 1)
    cumul_hist = np.cumsum(hist, axis=0)
    cumul_uniform = np.cumsum(np.ones((cumul_hist.shape[0], 1)), axis=0)
    mask = cumul_hist[[-1], :] > 1e-10
    denom = np.where(mask, cumul_hist[[-1], :], cumul_uniform[[-1], :])
    cdf = np.where(mask, cumul_hist, cumul_uniform) / denom
    cdf_per_delta = cdf[:, bins]
    z = rng.uniform(size=bins.shape[0])
    r_ind = np.sum(z[None, :] > cdf_per_delta, axis=0)
    chosen_response = response[r_ind, :]
    signs = rng.choice([1, -1], size=len(indices))
    seq = np.zeros(indices[-1] + response.shape[1] + 1)
    gains = np.sqrt(seq_power_norm[indices])
    if response.shape[1] == 1:
        np.add.at(seq, indices, signs * chosen_response[:, 0] * gains)
    else:
        for i, sign, taps, g in zip(indices, signs, chosen_response, gains):
            seq[i: i + taps.shape[0]] += sign * taps * g
    return seq


_SWAP_LOCK = threading.Lock()
_swap_depth = 0
_stock: tuple | None = None


@contextmanager
def fast_tail() -> Iterator[None]:
    """Within the block, pyroomacoustics synthesises ray-traced tails with this module's functions.

    Re-entrant and thread-safe: the stock functions come back when the last block open leaves.
    """
    global _swap_depth, _stock
    from testbed.acoustics.pra import pyroomacoustics

    pyroomacoustics()
    from pyroomacoustics.simulation import rt

    with _SWAP_LOCK:
        if _swap_depth == 0:
            _stock = rt.poisson_sequence, rt.directional_sequence
            rt.poisson_sequence, rt.directional_sequence = poisson_sequence, directional_sequence
        _swap_depth += 1
    try:
        yield
    finally:
        with _SWAP_LOCK:
            _swap_depth -= 1
            if _swap_depth == 0 and _stock is not None:
                rt.poisson_sequence, rt.directional_sequence = _stock
                _stock = None
