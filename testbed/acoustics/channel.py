"""Speaker -> mic channels: the linear part of the simulated rig, as impulse responses.

A channel's ``h[speaker]`` maps the digital signal sent to that speaker to the
digital signal at the mic's ADC input, with every level included:

``h = g_spk * g_mic * (rir * speaker_fir * mic_fir)``

where ``g_spk`` is the speaker's peak pressure at 1 m per full-scale unit (from
``spl_at_1m_db``: a 0 dBFS sine gives that SPL at 1 m on axis), the RIR carries
``1 / r`` and the room, and ``g_mic`` is the mic's digital units per pascal (from
its sensitivity). The response FIRs are zero-phase, so the direct path still peaks
at ``r / c * sample_rate`` samples. Noise, clock error and the ADC are not linear
time-invariant and are not in ``h``; ``noise_rms`` says how loud the noise is.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import oaconvolve

from testbed.acoustics.noise import P_REF_PA, diffuse_noise_rms, self_noise_rms
from testbed.acoustics.responses import (
    is_flat,
    mic_facts,
    mic_response_db,
    speaker_response_db,
    zero_phase_fir,
)
from testbed.acoustics.room import RirCache, RoomSpec, default_rir_cache, source_directivities
from testbed.errors import RigError
from testbed.rig.geometry import SPEED_OF_SOUND_M_S

if TYPE_CHECKING:
    from testbed.rig import Rig, Speaker

Vec3 = tuple[float, float, float]

#: Taps of the combined speaker x mic response FIR (odd; centre tap is time zero).
FIR_TAPS = 1023
#: Positions jittered by ``position_jitter_m`` stay this far from the walls, metres.
WALL_MARGIN_M = 0.02


@dataclass(frozen=True)
class Channel:
    """Everything a speaker -> one mic path does that is linear, plus the noise level.

    Attributes
    ----------
    mic : the mic's name in the rig.
    placement : the placement applied (None: the rig's base positions).
    sample_rate : Hz.
    h : speaker name -> float32 impulse response, shape (n_taps,); index 0 is the
        instant the speaker's first sample plays. Levels included (see module doc).
    noise_rms : RMS of background + self-noise at the ADC, full-scale units.
    direct_delay_samples : speaker name -> direct-path delay ``r / c * fs``, samples.
    distance_m : speaker name -> direct-path distance, metres.
    positions_m : the positions used (speakers and this mic), after any jitter.
    clock_ppm : the mic's sample-clock error (not applied in ``h``).
    bits : the mic's ADC resolution (not applied in ``h``).
    """

    mic: str
    placement: str | None
    sample_rate: int
    h: dict[str, np.ndarray]
    noise_rms: float
    direct_delay_samples: dict[str, float] = field(default_factory=dict)
    distance_m: dict[str, float] = field(default_factory=dict)
    positions_m: dict[str, Vec3] = field(default_factory=dict)
    clock_ppm: float = 0.0
    bits: int = 24

    def apply(self, signals: dict[str, np.ndarray], n_out: int | None = None) -> np.ndarray:
        """Noise-free mic signal for speaker ``signals`` (each starting at sample 0).

        Parameters
        ----------
        signals : speaker name -> float array, shape (n_samples,).
        n_out : output length in samples (default: longest signal).

        Returns
        -------
        float32 array, shape (n_out,)
        """
        n_out = n_out or max(len(s) for s in signals.values())
        y = np.zeros(n_out, dtype=np.float64)
        for name, x in signals.items():
            c = oaconvolve(np.asarray(x, dtype=np.float64), self.h[name])[:n_out]
            y[:c.size] += c
        return y.astype(np.float32)


def speaker_gain_pa(speaker: "Speaker") -> float:
    """Peak pressure in pascal at 1 m on axis per full-scale unit sent to ``speaker``."""
    return float(np.sqrt(2.0) * P_REF_PA * 10 ** (speaker.spl_at_1m_db / 20))


def _resolved(value: str, rig: "Rig") -> str:
    """A response/tier name as a cache key: built-in name, or absolute CSV path + mtime."""
    from testbed.rig import resolve_response

    p = resolve_response(rig, value)
    if p is None:
        return value
    try:
        return f"{p.resolve()}@{p.stat().st_mtime_ns}"
    except OSError as exc:
        raise RigError(f"{p}: cannot read response CSV: {exc.strerror or exc}") from None


@lru_cache(maxsize=128)
def _pair_fir(spk_key: str, mic_key: str, sample_rate: int) -> np.ndarray | None:
    freqs = np.linspace(0.0, sample_rate / 2, 2049)
    spk = spk_key.rsplit("@", 1)[0]
    mic = mic_key.rsplit("@", 1)[0]
    db = speaker_response_db(spk, freqs) + mic_response_db(mic, freqs)
    if is_flat(db):
        return None
    fir = zero_phase_fir(freqs, db, sample_rate, FIR_TAPS)
    fir.setflags(write=False)
    return fir


def pair_fir(rig: "Rig", speaker: str, mic: str) -> np.ndarray | None:
    """Zero-phase FIR of speaker response x mic response (centre tap = time zero), None if flat."""
    return _pair_fir(_resolved(rig.speakers[speaker].response, rig),
                     _resolved(rig.mics[mic].tier, rig), int(rig.sample_rate))


def mic_noise_rms(rig: "Rig", mic: str) -> float:
    """Expected RMS at ``mic``'s ADC of diffuse background (``room.noise_dbspl``) + self-noise."""
    facts = mic_facts(rig.mics[mic])
    tier = rig.mics[mic].tier
    diffuse = diffuse_noise_rms(rig.room.noise_dbspl, facts.gain_per_pa,
                                lambda f: mic_response_db(tier, f, rig), rig.sample_rate)
    own = self_noise_rms(facts.self_noise_dba, facts.gain_per_pa)
    return float(np.hypot(diffuse, own))


def build_channel(
    rig: "Rig",
    mic: str,
    positions: dict[str, Vec3],
    placement: str | None = None,
    rir_cache: RirCache | None = None,
) -> Channel:
    """The channel from every speaker of ``rig`` to ``mic`` for explicit ``positions`` (metres)."""
    cache = rir_cache or default_rir_cache()
    room = RoomSpec.from_rig(rig)
    names = list(rig.speakers)
    rirs = cache.get(room, [positions[s] for s in names], [positions[mic]], source_directivities(rig, names))
    facts = mic_facts(rig.mics[mic])
    half = (FIR_TAPS - 1) // 2
    h: dict[str, np.ndarray] = {}
    delay: dict[str, float] = {}
    dist: dict[str, float] = {}
    for i, s in enumerate(names):
        gain = speaker_gain_pa(rig.speakers[s]) * facts.gain_per_pa
        rir = rirs[i][0].astype(np.float64) * gain
        fir = pair_fir(rig, s, mic)
        if fir is not None:
            rir = oaconvolve(rir, fir)[half:]
        hs = rir.astype(np.float32)
        hs.setflags(write=False)
        h[s] = hs
        d = float(np.linalg.norm(np.subtract(positions[mic], positions[s])))
        dist[s] = d
        delay[s] = d / SPEED_OF_SOUND_M_S * rig.sample_rate
    used = {k: tuple(positions[k]) for k in (*names, mic)}
    return Channel(mic=mic, placement=placement, sample_rate=int(rig.sample_rate), h=h,
                   noise_rms=mic_noise_rms(rig, mic), direct_delay_samples=delay,
                   distance_m=dist, positions_m=used, clock_ppm=facts.clock_ppm, bits=facts.bits)


def placement_positions(rig: "Rig", placement: str | None) -> dict[str, Vec3]:
    """Positions of every speaker and mic with ``placement`` applied (RigError if unknown)."""
    try:
        return rig.positions(placement)
    except KeyError:
        where = rig.source or rig.name
        raise RigError(f"{where}: placements: no placement {placement!r} "
                       f"(have: {', '.join(rig.placements) or 'none'})") from None


class _ChannelCache:
    """LRU of built channels keyed by (rig, mic, positions)."""

    def __init__(self, max_items: int = 256) -> None:
        self.max_items = max_items
        self._store: OrderedDict[tuple, Channel] = OrderedDict()

    def get(self, key: tuple) -> Channel | None:
        ch = self._store.get(key)
        if ch is not None:
            self._store.move_to_end(key)
        return ch

    def put(self, key: tuple, ch: Channel) -> None:
        self._store[key] = ch
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)


_CHANNELS = _ChannelCache()


def clear_caches() -> None:
    """Forget every cached channel and RIR (benchmarks use it to time a cold start)."""
    _CHANNELS._store.clear()
    default_rir_cache().clear()


def rig_key(rig: "Rig") -> str:
    """A string that changes whenever anything in ``rig`` that the simulation reads changes."""
    return f"{rig.source}|{rig.model_dump_json()}"


def shoebox_channel(
    rig: "Rig",
    mic: str,
    placement: str | None = None,
    *,
    rng: np.random.Generator,
    position_jitter_m: float = 0.0,
) -> Channel:
    """One realisation of the channel from every speaker to ``mic`` (for EOT and the simulator).

    Parameters
    ----------
    rig : the validated rig (its room, speakers and mic models).
    mic : name of a mic of the rig.
    placement : a named placement of the rig, or None for the base positions.
    rng : source of the position jitter (unused when ``position_jitter_m`` is 0).
    position_jitter_m : standard deviation in metres of an independent Gaussian
        offset added to every speaker and to the mic on each axis (kept
        :data:`WALL_MARGIN_M` inside the room). 0 gives the nominal channel.

    Returns
    -------
    Channel
        ``h[speaker]``: float32 impulse responses, digital-to-digital with levels;
        ``noise_rms``: background + self-noise RMS in full-scale units. Channels and
        RIRs are cached per geometry, so the nominal channel is computed once.

    Raises
    ------
    RigError
        Unknown mic or placement.
    """
    if mic not in rig.mics:
        where = rig.source or rig.name
        raise RigError(f"{where}: mics: no mic {mic!r} (have: {', '.join(rig.mics)})")
    pos = dict(placement_positions(rig, placement))
    if position_jitter_m > 0:
        size = np.asarray(rig.room.size_m, dtype=np.float64)
        for k in (*rig.speakers, mic):
            p = np.asarray(pos[k], dtype=np.float64) + rng.normal(0.0, position_jitter_m, 3)
            pos[k] = tuple(np.clip(p, WALL_MARGIN_M, size - WALL_MARGIN_M).round(4).tolist())
    key = (rig_key(rig), mic, placement,
           tuple((k, tuple(np.round(pos[k], 4))) for k in (*rig.speakers, mic)))
    ch = _CHANNELS.get(key)
    if ch is None:
        ch = build_channel(rig, mic, pos, placement)
        _CHANNELS.put(key, ch)
    return ch
