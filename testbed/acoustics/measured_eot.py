"""Expectation over transformations for a measured room: realistic variations of measured paths.

A measured path cannot be moved like a shoebox source, so an over-the-air attack crafted on
a measured rig varies the recorded responses instead, the way a second recording of the
same room would differ:

- a sub-millisecond time shift (uniform in +/-``shift_ms``, band-limited, fractional);
- a gain (uniform in +/-``gain_db``);
- a spectral tilt (uniform in +/-``tilt_db_per_octave``, pivoting at 1 kHz, flat below
  100 Hz and above 0.45 x the rate so it cannot blow up the band edges);
- late-reverb resampling: with probability ``tail_swap_p``, the part ``tail_after_ms``
  after the direct sound is replaced by the late part of another path of the same room
  (aligned at its own direct sound, scaled to the replaced tail's energy, 1 ms cross-fade),
  so the early part stays this path's and the diffuse tail is a plausible other one.

Every draw comes from the caller's :class:`numpy.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from testbed.acoustics.irstats import onset_index
from testbed.acoustics.measured import measured_channel


@dataclass(frozen=True)
class MeasuredEot:
    """How far the EOT draws of a measured path vary (see the module doc)."""

    shift_ms: float = 0.5
    gain_db: float = 2.0
    tilt_db_per_octave: float = 1.5
    tail_swap_p: float = 0.5
    tail_after_ms: float = 5.0
    fade_ms: float = 1.0


def _shift(h: np.ndarray, shift_samples: float) -> np.ndarray:
    """``h`` delayed by ``shift_samples`` (may be negative or fractional), same length, by FFT."""
    n = h.size
    pad = int(np.ceil(abs(shift_samples))) + 64
    nfft = 1 << int(np.ceil(np.log2(n + 2 * pad)))
    x = np.zeros(nfft)
    x[pad:pad + n] = h
    k = np.fft.rfftfreq(nfft)
    y = np.fft.irfft(np.fft.rfft(x) * np.exp(-2j * np.pi * k * shift_samples), nfft)
    return y[pad:pad + n]


def _tilt(h: np.ndarray, db_per_octave: float, sample_rate: int) -> np.ndarray:
    """``h`` with a gain of ``db_per_octave * log2(f / 1 kHz)`` dB (zero-phase)."""
    nfft = 1 << int(np.ceil(np.log2(2 * h.size)))
    f = np.clip(np.fft.rfftfreq(nfft, 1.0 / sample_rate), 100.0, 0.45 * sample_rate)
    g = 10 ** (db_per_octave * np.log2(f / 1000.0) / 20)
    return np.fft.irfft(np.fft.rfft(h, nfft) * g, nfft)[:h.size]


def swap_tail(h: np.ndarray, donor: np.ndarray, sample_rate: int, after_ms: float = 5.0,
              fade_ms: float = 1.0) -> np.ndarray:
    """``h`` with its late part (``after_ms`` past its onset) taken from ``donor``'s late part.

    The donor's tail is aligned at the donor's own onset and scaled to the energy of the
    tail it replaces; a raised-cosine cross-fade of ``fade_ms`` joins them. Same length as ``h``.
    """
    cut = onset_index(h) + int(round(after_ms * 1e-3 * sample_rate))
    d_cut = onset_index(donor) + int(round(after_ms * 1e-3 * sample_rate))
    if cut >= h.size or d_cut >= donor.size:
        return np.array(h, dtype=np.float64)
    fade = max(1, int(round(fade_ms * 1e-3 * sample_rate)))
    start = max(cut - fade, 0)
    tail = np.zeros(h.size - start)
    src = donor[max(d_cut - (cut - start), 0):]
    tail[:min(tail.size, src.size)] = src[:tail.size]
    own = float(np.sum(h[start:] ** 2))
    theirs = float(np.sum(tail ** 2))
    if theirs > 0:
        tail *= np.sqrt(own / theirs)
    w = np.ones(h.size - start)
    w[:fade] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    out = np.array(h, dtype=np.float64)
    out[start:] = (1 - w) * h[start:] + w * tail
    return out


def vary_ir(h: np.ndarray, donors: Sequence[np.ndarray], rng: np.random.Generator,
            sample_rate: int, eot: MeasuredEot = MeasuredEot()) -> np.ndarray:
    """One EOT draw of a measured IR ``h`` (float, shape (n,)); ``donors``: other paths of the room."""
    x = np.asarray(h, dtype=np.float64)
    if donors and rng.random() < eot.tail_swap_p:
        x = swap_tail(x, donors[int(rng.integers(len(donors)))], sample_rate, eot.tail_after_ms, eot.fade_ms)
    if eot.tilt_db_per_octave:
        x = _tilt(x, rng.uniform(-eot.tilt_db_per_octave, eot.tilt_db_per_octave), sample_rate)
    if eot.shift_ms:
        x = _shift(x, rng.uniform(-eot.shift_ms, eot.shift_ms) * 1e-3 * sample_rate)
    return x * 10 ** (rng.uniform(-eot.gain_db, eot.gain_db) / 20)


def measured_draws(rig, mics: Sequence[str], placement: str | None, n_channels: int,
                   rng: np.random.Generator, eot: MeasuredEot | None = MeasuredEot()) -> list:
    """``n_channels`` :class:`~testbed.acoustics.channel.Channel` draws of a measured rig, mics in turn.

    ``eot=None`` gives the nominal measured channels (no variation). Tails are swapped
    between every measured path of the room (all speakers and mics at ``placement``).
    """
    nominal = {m: measured_channel(rig, m, placement) for m in rig.mics}
    pool = [np.asarray(c.h[s], dtype=np.float64) for c in nominal.values() for s in rig.speakers]
    out = []
    for i in range(int(n_channels)):
        ch = nominal[mics[i % len(mics)]]
        if eot is None:
            out.append(ch)
            continue
        h = {}
        for s, hs in ch.h.items():
            donors = [d for d in pool if d is not hs and not np.array_equal(d, hs)]
            v = vary_ir(hs, donors, rng, rig.sample_rate, eot).astype(np.float32)
            v.setflags(write=False)
            h[s] = v
        out.append(replace(ch, h=h))
    return out


def noise_bed(rig, mics: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The room's recorded background for EOT (``[room] noise``), or None when the rig has none.

    Returns
    -------
    (bed, rms) : float32 (n,) the recording at the rig rate with RMS 1, and float64
        (len(mics),) the level it is mixed at for each of ``mics`` (draw ``i`` of a bank is for
        ``mics[i]``): the RMS of the diffuse field at ``room.noise_dbspl`` at that mic
        (:func:`testbed.acoustics.room_noise.room_noise_rms`). The mic's self-noise stays white.
    """
    from testbed.acoustics.room_noise import read_room_noise, room_noise_rms

    bed = read_room_noise(rig)
    if bed is None:
        return None
    return bed.astype(np.float32), np.array([room_noise_rms(rig, m) for m in mics])
