"""The RT60 the room simulator delivers, measured on its impulse responses, next to the request.

``testbed rig check`` prints it; a miss of more than :data:`RT60_TOLERANCE` is called out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from testbed.acoustics.room import (
    BANDS_HZ,
    RirCache,
    RoomSpec,
    default_rir_cache,
    delivered_band_rt60_s,
    source_directivities,
)



#: A delivered RT60 further than this fraction from the requested one is reported as a miss.
RT60_TOLERANCE = 0.20


@dataclass(frozen=True)
class DeliveredRt60:
    """The RT60 the simulator delivers on one speaker -> mic path, next to the requested one.

    Attributes
    ----------
    speaker, mic : the path.
    requested_s, delivered_s : mid-frequency RT60 (mean of the 500 Hz and 1 kHz bands), seconds;
        delivered is T30 on the simulated RIR (room + source directivity, no speaker/mic models).
    requested_bands_s, delivered_bands_s : per band of :data:`BANDS_HZ`, seconds (nan: no decay).
    """

    speaker: str
    mic: str
    requested_s: float
    delivered_s: float
    requested_bands_s: tuple[float, ...]
    delivered_bands_s: tuple[float, ...]

    @property
    def miss(self) -> float:
        """(delivered - requested) / requested; nan when the decay could not be measured."""
        return (self.delivered_s - self.requested_s) / self.requested_s if self.requested_s > 0 else 0.0

    @property
    def within_tolerance(self) -> bool:
        return bool(np.isfinite(self.miss) and abs(self.miss) <= RT60_TOLERANCE)

    def as_dict(self) -> dict:
        def r(v: float) -> float | None:
            return round(float(v), 3) if np.isfinite(v) else None
        return {"speaker": self.speaker, "mic": self.mic, "requested_s": r(self.requested_s),
                "delivered_s": r(self.delivered_s), "miss_pct": r(100 * self.miss),
                "within_tolerance": self.within_tolerance, "bands_hz": list(BANDS_HZ),
                "requested_bands_s": [r(v) for v in self.requested_bands_s],
                "delivered_bands_s": [r(v) for v in self.delivered_bands_s]}


def delivered_rt60(rig, placement: str | None = None,
                   rir_cache: RirCache | None = None) -> list[DeliveredRt60]:
    """Measure the RT60 of every simulated speaker -> mic path of ``rig`` (anechoic: empty list).

    Raises
    ------
    KeyError
        ``placement`` is not one of the rig's placements.
    """
    room = RoomSpec.from_rig(rig)
    if room.rt60_s <= 0 and room.rt60_bands_s is None:
        return []
    pos = rig.positions(placement)
    spk, mics = list(rig.speakers), list(rig.mics)
    rirs = (rir_cache or default_rir_cache()).get(room, [pos[s] for s in spk], [pos[m] for m in mics],
                                                  source_directivities(rig, spk))
    out = []
    for i, s in enumerate(spk):
        for j, m in enumerate(mics):
            bands = delivered_band_rt60_s(room, rirs[i][j])
            out.append(DeliveredRt60(s, m, room.requested_rt60_s, float(0.5 * (bands[2] + bands[3])),
                                     room.target_bands_s(), bands))
    return out


def delivered_rt60_summary(rig, placement: str | None) -> dict | None:
    """The simulator's delivered RT60 next to the requested one (sim rigs with a shoebox room only).

    ``{"requested_s", "delivered_s", "miss_pct", "within_tolerance", "tolerance_pct", "bands_hz",
    "requested_bands_s", "delivered_bands_s", "paths": [...]}``; the room's values are the means
    over every speaker -> mic path; None for a hardware or measured-room rig or an anechoic room.
    """
    if rig.backend != "sim" or getattr(rig.room, "model", "shoebox") == "measured":
        return None
    paths = delivered_rt60(rig, placement)
    if not paths:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan band -> nan
        bands = np.nanmean([p.delivered_bands_s for p in paths], axis=0)
        mean = float(np.nanmean([p.delivered_s for p in paths]))
    req = paths[0].requested_s
    miss = (mean - req) / req
    ok = bool(np.isfinite(miss) and abs(miss) <= RT60_TOLERANCE)

    def r(v: float) -> float | None:
        return round(float(v), 3) if np.isfinite(v) else None
    return {"requested_s": r(req), "delivered_s": r(mean), "miss_pct": r(100 * miss), "within_tolerance": ok,
            "tolerance_pct": round(100 * RT60_TOLERANCE),
            "method": "T30 (T20 where the decay is short), mean of the 500 Hz and 1 kHz octave bands",
            "bands_hz": paths[0].as_dict()["bands_hz"],
            "requested_bands_s": [r(v) for v in paths[0].requested_bands_s],
            "delivered_bands_s": [r(v) for v in bands], "paths": [p.as_dict() for p in paths]}
