"""The rig an over-the-air attack is crafted through, when it is not the one it is played in.

A plan's ``[[attacks]]`` entry may say ``craft_rig = "PATH"`` (relative to the plan file): the
perturbation is crafted through that rig's channels (a simulated or measured twin of the room)
and played in the session's rig. Without it a session crafts through its own rig; a physical
rig whose calibration holds impulse responses crafts through those measured paths
(:func:`testbed.calibration.irs.calibrated_twin`), and every trial's notes say which.

The attack configuration keeps the craft rig as two reserved entries of its ``params``
(:data:`CRAFT_RIG_KEY`: the resolved path, :data:`CRAFT_RIG_NAME_KEY`: the rig's name), so
the attacks table of the store needs no new column; :func:`split_params` takes them out again
before the attack sees its hyper-parameters.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from testbed.errors import CalibrationError
from testbed.rig import load_rig
from testbed.session.craft_check import check_craft_rig
from testbed.session.trials import CRAFT_RIG_KEY, CRAFT_RIG_NAME_KEY, craft_rig_path

RESERVED = (CRAFT_RIG_KEY, CRAFT_RIG_NAME_KEY)
__all__ = ["RESERVED", "craft_rig_path", "load_craft_rig", "split_params", "check_craft_rig",
           "crafting_channels", "channel_digest"]


def load_craft_rig(path: Path | str):
    """The craft rig at ``path`` (a :class:`~testbed.rig.Rig`); RigError naming the file."""
    return load_rig(path)


def split_params(params: dict) -> tuple[dict, str | None, str | None]:
    """``(attack hyper-parameters, craft rig path or None, craft rig name or None)``."""
    rest = {k: v for k, v in params.items() if k not in RESERVED}
    return rest, params.get(CRAFT_RIG_KEY), params.get(CRAFT_RIG_NAME_KEY)


def crafting_channels(rig, use_calibration: bool = True):
    """``(rig to draw channels from, description)`` for crafting through ``rig``.

    A physical rig with impulse responses in its calibration profile gives its measured twin
    ("measured IRs of calibration (DIR)"); a calibration that cannot be used falls back to the
    shoebox of the rig's geometry and says why; a measured-room rig gives "measured IRs (DIR)";
    any other rig "shoebox".
    """
    if use_calibration and rig.is_physical:
        from testbed.calibration.irs import calibrated_twin

        try:
            twin = calibrated_twin(rig)
        except CalibrationError as exc:
            return rig, f"shoebox (calibration not used: {exc})"
        if twin is not None:
            return twin, f"measured IRs of calibration ({twin.room.irs})"
    if rig.room.model == "measured":
        return rig, f"measured IRs ({rig.room.irs})"
    return rig, "shoebox"


def channel_digest(rig) -> str | None:
    """sha256 over the names and bytes of a measured rig's IR files and its noise recording (None
    for a shoebox rig): the rig's TOML names its folder, not what is in it, so a crafting cache
    key needs this too. Every ``.wav``/``.flac`` of the folder counts (the rig reads those)."""
    if rig.room.model != "measured":
        return None
    folder = Path(rig.room.irs).expanduser()
    if not folder.is_absolute() and rig.source is not None:
        folder = Path(rig.source).parent / folder
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".wav", ".flac"))
    if rig.room.noise is not None:
        noise = Path(rig.room.noise).expanduser()
        files.append(noise if noise.is_absolute() or rig.source is None else Path(rig.source).parent / noise)
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}|".encode())
        h.update(f.read_bytes())
    return h.hexdigest()
