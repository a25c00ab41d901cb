"""Room impulse responses from pyroomacoustics' image-source ShoeBox, cached per geometry.

An RIR here maps *pressure at 1 m from the source* to *pressure at the mic*: the
direct path is ``1 / r`` (r in metres) at ``r / c`` seconds, reflections follow.
Index 0 is the moment the source emits (pyroomacoustics' global fractional-delay
offset is removed), so the direct path peaks at ``r / 343 * sample_rate`` samples
(times the source's directivity towards the mic; 1 on its axis).

What pyroomacoustics offers beyond a frequency-flat shoebox is used where the rig asks:
octave-band RT60s (per-band absorption), air absorption, cardioid-family source
directivity along ``facing_deg``, and the hybrid image-source + ray-traced tail (seeded).
The absorption is calibrated on probe paths so that the RT60 the simulator *delivers*
(T30 on the simulated IR) is the requested one; :mod:`testbed.acoustics.delivered`
measures it on the rig's own paths for ``rig check``, both with :mod:`testbed.acoustics.irstats`.
Rooms without ray tracing are rendered from pyroomacoustics' image sources by
:class:`testbed.acoustics.image_sources.ImageSources` (one build per reflection order shared by
the octave bands; the calibration re-weights its probe images instead of recomputing them);
ray-traced tails are pyroomacoustics' own, synthesised by :mod:`testbed.acoustics.rt_tail`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
import warnings

import numpy as np

from testbed.errors import RigError
from testbed.rig.geometry import SPEED_OF_SOUND_M_S

Vec3 = tuple[float, float, float]

#: Positions are rounded to this many decimals (0.1 mm) to form cache keys.
_KEY_DECIMALS = 4


#: Octave bands (Hz) of ``rt60_bands_s`` and of the multi-band simulation, low to high.
BANDS_HZ = (125, 250, 500, 1000, 2000, 4000)
#: Source directivity patterns (pyroomacoustics' cardioid family, frequency-independent).
DIRECTIVITIES = ("omni", "subcardioid", "cardioid", "hypercardioid")
#: Image-source order under the ray-traced tail (pyroomacoustics' advice for the hybrid mode).
HYBRID_ISM_ORDER = 3
#: At most this many probe renders adjust the absorption until the delivered RT60 is within
#: :data:`CALIBRATION_TOLERANCE` of the request (the last correction is applied unverified).
CALIBRATION_ROUNDS = 2
CALIBRATION_TOLERANCE = 0.05
#: Probe source and mics used to calibrate a room's absorption, as fractions of the room size
#: (the delivered RT60 varies from path to path; the calibration matches their mean).
_PROBE_SRCS = ((0.31, 0.37, 0.42),)
_PROBE_MICS = ((0.66, 0.61, 0.35), (0.42, 0.76, 0.3), (0.18, 0.22, 0.45))


@dataclass(frozen=True)
class SourceDirectivity:
    """How a source radiates: a pattern of :data:`DIRECTIVITIES` pointing at ``facing_deg``.

    ``facing_deg`` is the azimuth in degrees from +x towards +y; the axis is horizontal.
    """

    pattern: str = "omni"
    facing_deg: float = 0.0


OMNI = SourceDirectivity()


@dataclass(frozen=True)
class RoomSpec:
    """What the room simulation needs to know about a room.

    Attributes
    ----------
    size_m : (length, width, height) in metres.
    rt60_s : reverberation time in seconds; 0 means anechoic (direct path only).
    sample_rate : Hz.
    rt60_bands_s : RT60 per octave band of :data:`BANDS_HZ`, seconds, or None for
        ``rt60_s`` in every band (a frequency-flat room).
    air_absorption : simulate air absorption (20 C, 0 % humidity; more at high frequencies).
    ray_tracing : hybrid image-source (order :data:`HYBRID_ISM_ORDER`) + ray-traced tail.
    seed : seed of the ray tracer (rays are random where they hit walls); each source is
        traced on its own from this seed, so a path's RIR depends only on its geometry.
    """

    size_m: Vec3
    rt60_s: float
    sample_rate: int
    rt60_bands_s: tuple[float, ...] | None = None
    air_absorption: bool = False
    ray_tracing: bool = False
    seed: int = 0

    @classmethod
    def from_rig(cls, rig) -> "RoomSpec":
        r = rig.room
        bands = getattr(r, "rt60_bands_s", None)
        return cls(tuple(float(v) for v in r.size_m), float(r.rt60_s), int(rig.sample_rate),
                   tuple(float(v) for v in bands) if bands is not None else None,
                   bool(getattr(r, "air_absorption", False)), bool(getattr(r, "ray_tracing", False)),
                   int(r.seed) if getattr(r, "ray_tracing", False) else 0)

    @property
    def multi_band(self) -> bool:
        """Whether the simulation needs octave bands (band RT60s or air absorption)."""
        return self.rt60_bands_s is not None or self.air_absorption

    def target_bands_s(self) -> tuple[float, ...]:
        """Requested RT60 per band of :data:`BANDS_HZ`, seconds."""
        return self.rt60_bands_s if self.rt60_bands_s is not None else (self.rt60_s,) * len(BANDS_HZ)

    @property
    def requested_rt60_s(self) -> float:
        """The requested mid-frequency RT60 (mean of the 500 Hz and 1 kHz bands), seconds."""
        t = self.target_bands_s()
        return float(0.5 * (t[2] + t[3]))


def source_directivities(rig, names: Sequence[str] | None = None) -> list[SourceDirectivity]:
    """The :class:`SourceDirectivity` of each speaker of ``rig`` (all of them, or ``names``).

    A speaker's ``directivity`` field names the pattern; ``"model"`` takes the pattern of its
    speaker model (:data:`testbed.acoustics.responses.SPEAKER_DIRECTIVITY`; omni for a CSV).
    """
    from testbed.acoustics.responses import SPEAKER_DIRECTIVITY

    out = []
    for name in (names if names is not None else list(rig.speakers)):
        spk = rig.speakers[name]
        pattern = getattr(spk, "directivity", "model")
        if pattern == "model":
            pattern = SPEAKER_DIRECTIVITY.get(spk.response, "omni")
        out.append(SourceDirectivity(pattern, float(spk.facing_deg)))
    return out


def _sabine_absorption(room: RoomSpec) -> tuple[tuple[float, ...], int]:
    """Sabine energy absorption per band and the image-source order for the longest band."""
    from testbed.acoustics.pra import pyroomacoustics

    pra = pyroomacoustics()
    coeffs, order = [], 0
    for t in room.target_bands_s():
        try:
            e_abs, max_order = pra.inverse_sabine(t, list(room.size_m), c=SPEED_OF_SOUND_M_S)
        except ValueError:
            raise RigError(
                f"room.rt60_s: {t} s is too short for a {list(room.size_m)} m room "
                "(Sabine needs absorption > 1); raise rt60_s or use 0 for anechoic"
            ) from None
        coeffs.append(float(e_abs))
        order = max(order, int(max_order))
    return tuple(coeffs), order


def _shoebox(room: RoomSpec, coeffs: Sequence[float], max_order: int):
    """A pyroomacoustics ShoeBox for ``room`` with energy absorption ``coeffs`` (1 or per band)."""
    from testbed.acoustics.pra import pyroomacoustics

    pra = pyroomacoustics()
    if len(coeffs) == 1:
        material = pra.Material(float(coeffs[0]))
    else:
        material = pra.Material({"coeffs": [float(c) for c in coeffs], "center_freqs": list(BANDS_HZ)})
    tracing = room.ray_tracing and max_order > 0  # an anechoic room has no tail to trace
    order = min(max_order, HYBRID_ISM_ORDER) if tracing else max_order
    box = pra.ShoeBox(list(room.size_m), fs=room.sample_rate, materials=material, max_order=order,
                      air_absorption=room.air_absorption, ray_tracing=tracing)
    if tracing:
        box.set_ray_tracing(receiver_radius=0.5, energy_thres=1e-7, time_thres=max(room.target_bands_s()) * 1.5)
    return box


def _pra_directivity(d: SourceDirectivity):
    """The pyroomacoustics directivity object for ``d`` (None for omni), axis horizontal."""
    if d.pattern == "omni":
        return None
    from testbed.acoustics.pra import pyroomacoustics

    pyroomacoustics()  # imported without PortAudio before its submodule
    from pyroomacoustics.directivities import Cardioid, DirectionVector, HyperCardioid, SubCardioid

    cls = {"cardioid": Cardioid, "subcardioid": SubCardioid, "hypercardioid": HyperCardioid}.get(d.pattern)
    if cls is None:
        raise RigError(f"speaker directivity: unknown pattern {d.pattern!r} (have: {', '.join(DIRECTIVITIES)})")
    return cls(DirectionVector(azimuth=d.facing_deg, colatitude=90.0, degrees=True))


def _render(room: RoomSpec, coeffs: Sequence[float], max_order: int, sources: Sequence[Vec3],
            mics: Sequence[Vec3], dirs: Sequence[SourceDirectivity]) -> list[list[np.ndarray]]:
    if room.ray_tracing and len(sources) > 1:  # trace each source from the seed (see RoomSpec.seed)
        return [_render(room, coeffs, max_order, [s], mics, [d])[0] for s, d in zip(sources, dirs)]
    if not room.ray_tracing:  # pyroomacoustics' image sources, rendered without its per-band passes
        from testbed.acoustics.image_sources import ImageSources

        return ImageSources(lambda c: _shoebox(room, c, max_order), coeffs, sources, mics,
                            [_pra_directivity(d) for d in dirs]).render(coeffs)
    return _render_pra(room, coeffs, max_order, sources, mics, dirs)


def _render_pra(room: RoomSpec, coeffs: Sequence[float], max_order: int, sources: Sequence[Vec3],
                mics: Sequence[Vec3], dirs: Sequence[SourceDirectivity]) -> list[list[np.ndarray]]:
    """``ShoeBox.compute_rir`` itself: ray-traced rooms, and the reference the image-source renderer
    (:mod:`testbed.acoustics.image_sources`) is tested against."""
    from testbed.acoustics.pra import pyroomacoustics
    from testbed.acoustics.rt_tail import fast_tail

    pra = pyroomacoustics()
    box = _shoebox(room, coeffs, max_order)
    for s, d in zip(sources, dirs):
        box.add_source(list(s), directivity=_pra_directivity(d))
    box.add_microphone_array(np.asarray(mics, dtype=np.float64).T)
    if room.ray_tracing:  # the tracer (C++) and the tail's Poisson diracs (numpy) are random
        pra.random.seed(numpy=int(room.seed), libroom=int(room.seed) % 2**64)
    # pyroomacoustics' default 10 Hz high-pass is zero-phase: its tail reaches before the
    # emission and would be cut with the lead, leaving a step. Keep the RIR causal and
    # exact; the loudspeaker and mic models carry their own low-frequency roll-off.
    hpf = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        with fast_tail():   # pyroomacoustics' tail synthesis, vectorised: the same RIRs bit for bit
            box.compute_rir()
    finally:
        pra.constants.set("rir_hpf_enable", hpf)
    lead = pra.constants.get("frac_delay_length") // 2
    return [[np.asarray(box.rir[m][s][lead:], dtype=np.float32) for m in range(len(mics))]
            for s in range(len(sources))]


def _probe(room: RoomSpec) -> tuple[list[Vec3], list[Vec3]]:
    def at(fracs):
        return [tuple(f * d for f, d in zip(fr, room.size_m)) for fr in fracs]
    return at(_PROBE_SRCS), at(_PROBE_MICS)


def delivered_band_rt60_s(room: RoomSpec, h: np.ndarray,
                          bands_hz: tuple[int, ...] = BANDS_HZ) -> tuple[float, ...]:
    """RT60 (T30, else T20) per band of ``bands_hz`` measured on RIR ``h`` of ``room``, seconds."""
    from testbed.acoustics.irstats import band_rt60_s

    got = band_rt60_s(h, room.sample_rate, bands_hz)
    return tuple(got.get(b, float("nan")) for b in bands_hz)


@lru_cache(maxsize=64)
def absorption_bands(room: RoomSpec) -> tuple[tuple[float, ...], int]:
    """Energy absorption (one value, or one per band of :data:`BANDS_HZ`) and image-source order.

    Starts from Sabine and then, for :data:`CALIBRATION_ROUNDS` rounds, renders three probe paths
    and scales each band's absorption by delivered / requested RT60 (Sabine: RT60 ~ 1 / absorption),
    so that the RT60 the simulator *delivers* (T30 on the simulated IR) is the one requested --
    Sabine alone overshoots the image-source model by up to ~50 % at long RT60s. A frequency-flat
    room is calibrated on its mid-frequency RT60 and stays single-band.

    Raises
    ------
    RigError
        The RT60 cannot be reached in a room of this size (too short for its volume).
    """
    from testbed.acoustics.image_sources import ImageSources

    if room.rt60_s <= 0 and room.rt60_bands_s is None:
        return (1.0,), 0
    coeffs, order = _sabine_absorption(room)
    if not room.multi_band:
        coeffs = coeffs[:1]
    target = room.target_bands_s()
    srcs, mics = _probe(room)
    if room.multi_band:  # band-wise image sources cost ~10x: calibrate on two paths
        mics = mics[:2]
    probe = None
    for _ in range(CALIBRATION_ROUNDS):
        if room.ray_tracing:  # the traced tail depends on the absorption: render in full
            rirs = _render(room, coeffs, order, srcs, mics, [OMNI] * len(srcs))
        else:  # image sources once; each round re-weights them (the same RIRs to float32 rounding)
            probe = probe or ImageSources(lambda c: _shoebox(room, c, order), coeffs, srcs, mics, reweight=True)
            rirs = probe.render(coeffs)
        # a single-band room is calibrated on its mid bands: measure only those
        bands = BANDS_HZ if len(coeffs) > 1 else BANDS_HZ[2:4]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a band without decay is nan
            got = np.nanmean([delivered_band_rt60_s(room, h, bands) for row in rirs for h in row], axis=0)
        if len(coeffs) == 1:
            ratio = [(got[0] + got[1]) / (target[2] + target[3])]
        else:
            ratio = [g / t for g, t in zip(got, target)]
        if not all(np.isfinite(ratio)) or max(abs(r - 1.0) for r in ratio) < CALIBRATION_TOLERANCE:
            break
        coeffs = tuple(float(np.clip(c * r, 0.005, 0.99)) for c, r in zip(coeffs, ratio))
    return coeffs, order


def absorption(room: RoomSpec) -> tuple[float, int]:
    """Calibrated energy absorption (the mid-band value) and image-source order for ``room``.

    Returns ``(1.0, 0)`` for an anechoic room. See :func:`absorption_bands`.
    """
    coeffs, order = absorption_bands(room)
    return float(coeffs[len(coeffs) // 2]) if len(coeffs) > 1 else float(coeffs[0]), order


def compute_rirs(room: RoomSpec, sources: Sequence[Vec3], mics: Sequence[Vec3],
                 directivities: Sequence[SourceDirectivity] | None = None) -> list[list[np.ndarray]]:
    """Room impulse responses for every (source, mic) pair, uncached.

    Parameters
    ----------
    room : the room.
    sources, mics : positions in metres, each inside the room.
    directivities : one per source (default: omni).

    Returns
    -------
    ``rirs[s][m]``: float32 arrays (lengths differ), index 0 = emission time.
    """
    dirs = list(directivities) if directivities is not None else [OMNI] * len(sources)
    coeffs, order = absorption_bands(room)
    return _render(room, coeffs, order, sources, mics, dirs)


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
        """Forget every RIR and every calibrated absorption (for timing a cold start)."""
        self._store.clear()
        absorption_bands.cache_clear()
        self.hits = self.misses = 0

    def get(self, room: RoomSpec, sources: Sequence[Vec3], mics: Sequence[Vec3],
            directivities: Sequence[SourceDirectivity] | None = None) -> list[list[np.ndarray]]:
        """RIRs ``[s][m]`` for every source/mic pair, computing only the missing ones.

        ``directivities`` gives one :class:`SourceDirectivity` per source (default: omni); it is
        part of the cache key. Missing pairs are computed in one pyroomacoustics call over the
        sources and mics involved. Returned arrays are shared with the cache: do not modify them.
        """
        dirs = list(directivities) if directivities is not None else [OMNI] * len(sources)
        skeys = [(_key(s), d) for s, d in zip(sources, dirs)]
        mkeys = [_key(m) for m in mics]
        missing = [(i, j) for i, sk in enumerate(skeys) for j, mk in enumerate(mkeys)
                   if (room, sk, mk) not in self._store]
        self.hits += len(skeys) * len(mkeys) - len(missing)
        if missing:
            self.misses += len(missing)
            si = sorted({i for i, _ in missing})
            mj = sorted({j for _, j in missing})
            rirs = compute_rirs(room, [sources[i] for i in si], [mics[j] for j in mj], [dirs[i] for i in si])
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

