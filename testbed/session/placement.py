"""Setting up a placement before its trials: the positioner moves what it carries, the operator
moves the rest (physical rigs only; a simulated rig places everything itself)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from testbed.errors import SessionError


@dataclass(frozen=True)
class MoveRequest:
    """Ask the operator (or a positioner) to move things to a placement."""

    placement: str
    moves: dict[str, tuple[float, float, float]]     # speaker/mic name -> position_m

    def describe(self) -> str:
        """One line for the operator, e.g. "Move adversary to P2 (x=3.5 m, y=2.5 m, z=1 m)"."""
        parts = [f"{name} to {self.placement} (x={p[0]:g} m, y={p[1]:g} m, z={p[2]:g} m)"
                 for name, p in self.moves.items()]
        return "Move the " + "; the ".join(parts) if parts else f"Set up placement {self.placement}"


def set_placement(rig, placement: str | None, *, positioner=None,
                  prompt_move: Callable[[MoveRequest], str] | None = None,
                  log: Callable[[str, str], None] = lambda kind, msg: None,
                  on_wait: Callable[[MoveRequest], None] = lambda req: None) -> tuple[str, float | None]:
    """Bring ``rig`` to ``placement``; returns ``(answer, confirmed_at)``.

    ``answer`` is ``"ok"``, ``"skip"`` or ``"quit"`` (the operator's answer to ``prompt_move``);
    ``confirmed_at`` the wall-clock time the placement was confirmed (None when nothing moved).
    ``log(kind, message)`` records each move ("moved"); ``on_wait(request)`` is called just
    before the run waits for the operator.
    """
    if placement is None or not rig.is_physical:
        return "ok", None
    moves = dict(rig.placements[placement])
    if positioner is not None:
        spk = rig.positioner.speaker if rig.positioner else rig.adversary_speaker
        if spk in moves:
            x, y, _ = moves[spk]
            positioner.move_to(x, y)
            log("moved", f"positioner moved {spk} to {placement} (x={x:g} m, y={y:g} m)")
        others = {k: v for k, v in moves.items() if k != spk}
        if not others:
            return "ok", time.time()
        moves = others   # the rest is for the operator
        if prompt_move is None:
            raise SessionError(f"rig {rig.name!r}: placement {placement} also moves "
                               f"{', '.join(others)}, which the positioner does not carry; run from a terminal")
    if prompt_move is None:
        raise SessionError(f"rig {rig.name!r}: placement {placement} needs an operator or a "
                           f"positioner; run the session from a terminal")
    req = MoveRequest(placement, moves)
    on_wait(req)
    answer = prompt_move(req)
    if answer == "ok":
        log("moved", f"operator confirmed placement {placement}")
    return answer, time.time()
