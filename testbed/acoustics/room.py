"""Room impulse responses from pyroomacoustics' image-source ShoeBox, cached per geometry.

An RIR here maps *pressure at 1 m from the source* to *pressure at the mic*: the
direct path is ``1 / r`` (r in metres) at ``r / c`` seconds, reflections follow.
Index 0 is the moment the source emits (pyroomacoustics' global fractional-delay
offset is removed), so the direct path peaks at ``r / 343 * sample_rate`` samples.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from testbed.errors import RigError
from testbed.rig.geometry import SPEED_OF_SOUND_M_S

Vec3 = tuple[float, float, float]

#: Positions are rounded to this many decimals (0.1 mm) to form cache keys.
_KEY_DECIMALS = 4


@dataclass(frozen=True)
class RoomSpec:
    """What the image-source model needs to know about a room.

    Attributes
    ----------
    size_m : (length, width, height) in metres.
    rt60_s : reverberation time in seconds; 0 means anechoic (direct path only).
    sample_rate : Hz.
    """

    size_m: Vec3
    rt60_s: float
    sample_rate: int

    @classmethod
    def from_rig(cls, rig) -> "RoomSpec":
        return cls(tuple(float(v) for v in rig.room.size_m), float(rig.room.rt60_s), int(rig.sample_rate))


def absorption(room: RoomSpec) -> tuple[float, int]:
    """Energy absorption coefficient and image-source order for ``room.rt60_s`` (Sabine).

    Returns ``(1.0, 0)`` for an anechoic room (``rt60_s == 0``).

    Raises
    ------
    RigError
        The RT60 cannot be reached in a room of this size (too short for its volume).
    """
    if room.rt60_s <= 0:
        return 1.0, 0
    from testbed.acoustics.pra import pyroomacoustics

    pra = pyroomacoustics()

    try:
        e_abs, max_order = pra.inverse_sabine(room.rt60_s, list(room.size_m), c=SPEED_OF_SOUND_M_S)
    except ValueError:
        raise RigError(
            f"room.rt60_s: {room.rt60_s} s is too short for a {list(room.size_m)} m room "
            "(Sabine needs absorption > 1); raise rt60_s or use 0 for anechoic"
        ) from None
    return float(e_abs), int(max_order)


def compute_rirs(room: RoomSpec, sources: Sequence[Vec3], mics: Sequence[Vec3]) -> list[list[np.ndarray]]:
    """Image-source RIRs for every (source, mic) pair, uncached.

    Parameters
    ----------
    room : the room.
    sources, mics : positions in metres, each inside the room.

    Returns
    -------
    ``rirs[s][m]``: float32 arrays (lengths differ), index 0 = emission time.
    """
    from testbed.acoustics.pra import pyroomacoustics

    pra = pyroomacoustics()

    e_abs, max_order = absorption(room)
    shoebox = pra.ShoeBox(
        list(room.size_m), fs=room.sample_rate, materials=pra.Material(e_abs),
        max_order=max_order, air_absorption=False,
    )
    for s in sources:
        shoebox.add_source(list(s))
    shoebox.add_microphone_array(np.asarray(mics, dtype=np.float64).T)
    # pyroomacoustics' default 10 Hz high-pass is zero-phase: its tail reaches before the
    # emission and would be cut with the lead, leaving a step. Keep the RIR causal and
    # exact; the loudspeaker and mic models carry their own low-frequency roll-off.
    hpf = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        shoebox.compute_rir()
    finally:
        pra.constants.set("rir_hpf_enable", hpf)
    lead = pra.constants.get("frac_delay_length") // 2
    return [[np.asarray(shoebox.rir[m][s][lead:], dtype=np.float32) for m in range(len(mics))]
            for s in range(len(sources))]


def _key(p: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(float(v), _KEY_DECIMALS) for v in p)


class RirCache:
    """An LRU cache of RIRs keyed by (room, source position, mic position).

    Parameters
    ----------
    max_pairs : how many (source, mic) RIRs to keep (about 60 kB each for a 0.4 s room).
    """

    def __init__(self, max_pairs: int = 2048) -> None:
        self.max_pairs = max_pairs
        self._store: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0

    def get(self, room: RoomSpec, sources: Sequence[Vec3], mics: Sequence[Vec3]) -> list[list[np.ndarray]]:
        """RIRs ``[s][m]`` for every source/mic pair, computing only the missing ones.

        Missing pairs are computed in one pyroomacoustics call over the sources and
        mics involved. Returned arrays are shared with the cache: do not modify them.
        """
        skeys = [_key(s) for s in sources]
        mkeys = [_key(m) for m in mics]
        missing = [(i, j) for i, sk in enumerate(skeys) for j, mk in enumerate(mkeys)
                   if (room, sk, mk) not in self._store]
        self.hits += len(skeys) * len(mkeys) - len(missing)
        if missing:
            self.misses += len(missing)
            si = sorted({i for i, _ in missing})
            mj = sorted({j for _, j in missing})
            rirs = compute_rirs(room, [sources[i] for i in si], [mics[j] for j in mj])
            for a, i in enumerate(si):
                for b, j in enumerate(mj):
                    rirs[a][b].setflags(write=False)
                    self._store[(room, skeys[i], mkeys[j])] = rirs[a][b]
        out = []
        for sk in skeys:
            row = []
            for mk in mkeys:
                k = (room, sk, mk)
                self._store.move_to_end(k)
                row.append(self._store[k])
            out.append(row)
        while len(self._store) > self.max_pairs:
            self._store.popitem(last=False)
        return out


_DEFAULT = RirCache()


def default_rir_cache() -> RirCache:
    """The process-wide RIR cache that :func:`testbed.acoustics.sample_channel` uses by default."""
    return _DEFAULT
