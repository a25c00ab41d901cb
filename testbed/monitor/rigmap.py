"""The rig map's data: room, speakers, mics and named placements, top-down (x, y in metres).

Read from the rig the session stored (``meta["rig"]``, the rig schema's JSON form), so the monitor
needs neither the rig file nor ``testbed.rig``.
"""

from __future__ import annotations


def _xy(p) -> list[float] | None:
    try:
        return [float(p[0]), float(p[1])]
    except (TypeError, ValueError, IndexError):
        return None


def rig_map(rig: dict | None, placement: str | None = None, adv_pos_m: list | None = None) -> dict | None:
    """Top-down geometry with ``placement`` applied to the speakers and mics it moves.

    Parameters
    ----------
    rig : the stored rig (``{"room": {"size_m": [x, y, z]}, "speakers": {...}, "mics": {...},
        "placements": {name: {thing: [x, y, z]}}}``); None gives None.
    placement : the placement now in use (None: the rig's own positions).
    adv_pos_m : where the last trial's adversary speaker actually was, metres (drawn when known).

    Returns
    -------
    ``{"room_m": [x, y], "speakers": [{"name", "role", "xy"}], "mics": [{"name", "tier", "xy"}],
    "placements": {name: {thing: [x, y]}}, "current": placement, "adv_xy": [x, y] | None}``
    """
    if not rig:
        return None
    moved = (rig.get("placements") or {}).get(placement or "", {}) or {}
    room = _xy((rig.get("room") or {}).get("size_m")) or [0.0, 0.0]
    speakers = [{"name": n, "role": s.get("role"), "xy": _xy(moved.get(n) or s.get("position_m"))}
                for n, s in (rig.get("speakers") or {}).items()]
    mics = [{"name": n, "tier": m.get("tier"), "xy": _xy(moved.get(n) or m.get("position_m"))}
            for n, m in (rig.get("mics") or {}).items()]
    placements = {p: {thing: _xy(pos) for thing, pos in (things or {}).items()}
                  for p, things in (rig.get("placements") or {}).items()}
    adv = _xy(adv_pos_m) if adv_pos_m and adv_pos_m[0] is not None else None
    return {"room_m": room, "speakers": speakers, "mics": mics, "placements": placements,
            "current": placement, "adv_xy": adv}
