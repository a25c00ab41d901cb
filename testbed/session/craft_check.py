"""Checking a plan's ``craft_rig`` (the rig an over-the-air attack is crafted through) against
the session's rig: one :class:`~testbed.errors.PlanError` line naming the field.

Kept apart from :mod:`testbed.session.craft_rig` so that checking a plan imports no
calibration code.
"""

from __future__ import annotations

from pathlib import Path

from testbed.errors import PlanError, RigError
from testbed.rig import load_rig


def check_craft_rig(plan, index: int, spec, rig, over_the_air: bool) -> None:
    """Check ``attacks[index].craft_rig`` of ``plan`` against the session's ``rig``;
    ``over_the_air``: the attack's registry kind crafts through a channel.

    Raises
    ------
    PlanError
        The attack does not go over the air, the file is not a valid rig, it has no
        adversary speaker, or its sample rate differs from the session rig's.
    """
    src = plan.source or "<plan>"
    where = f"{src}: attacks[{index}].craft_rig"
    if not over_the_air:
        raise PlanError(f"{where}: only over-the-air attacks craft through a rig's channels "
                        f"(set over_the_air = true for {spec.kind!r})")
    path = Path(spec.craft_rig).expanduser()
    if not path.is_absolute() and plan.source is not None:
        path = Path(plan.source).parent / path
    try:
        craft = load_rig(path)  # a measured rig's IR files (and noise recording) are read here too
    except RigError as exc:
        raise PlanError(f"{where}: {exc}") from None
    if craft.adversary_speaker is None:
        raise PlanError(f"{where}: rig {craft.name!r} ({path}) has no speaker with role 'adversary'")
    if int(craft.sample_rate) != int(rig.sample_rate):
        raise PlanError(f"{where}: rig {craft.name!r} runs at {craft.sample_rate} Hz, the session's rig "
                        f"{rig.name!r} at {rig.sample_rate} Hz (a perturbation is played at the rate it was crafted)")
