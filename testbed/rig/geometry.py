"""Speaker-to-microphone geometry for any placement of a rig."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from testbed.rig.schema import Rig

#: Speed of sound used everywhere in the testbed, m/s (20 degC air).
SPEED_OF_SOUND_M_S = 343.0


@dataclass(frozen=True)
class PathGeometry:
    """One speaker -> mic path.

    ``angle_deg`` is the off-axis angle at the speaker: 0 when the mic lies on
    the direction the speaker faces, 180 behind it (horizontal plane).
    """

    speaker: str
    mic: str
    distance_m: float
    angle_deg: float
    delay_ms: float
    delay_samples: float

    def as_dict(self) -> dict:
        return asdict(self)


def path_geometry(rig: Rig, placement: str | None = None) -> list[PathGeometry]:
    """Every speaker -> mic path of ``rig`` with ``placement`` applied, speakers then mics in file order."""
    pos = rig.positions(placement)
    out = []
    for sname, spk in rig.speakers.items():
        s = np.asarray(pos[sname], dtype=float)
        facing = np.deg2rad(spk.facing_deg)
        axis = np.array([np.cos(facing), np.sin(facing)])
        for mname in rig.mics:
            m = np.asarray(pos[mname], dtype=float)
            d = float(np.linalg.norm(m - s))
            horiz = m[:2] - s[:2]
            if np.linalg.norm(horiz) < 1e-9:
                angle = 0.0
            else:
                c = float(np.dot(horiz, axis) / np.linalg.norm(horiz))
                angle = float(np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0))))
            delay_s = d / SPEED_OF_SOUND_M_S
            out.append(
                PathGeometry(sname, mname, d, angle, delay_s * 1e3, delay_s * rig.sample_rate)
            )
    return out


def geometry_table(rig: Rig, placement: str | None = None) -> dict[str, dict[str, PathGeometry]]:
    """``{speaker: {mic: PathGeometry}}`` for quick lookups."""
    table: dict[str, dict[str, PathGeometry]] = {}
    for g in path_geometry(rig, placement):
        table.setdefault(g.speaker, {})[g.mic] = g
    return table
