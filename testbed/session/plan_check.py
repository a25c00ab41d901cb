"""Checking a parsed plan against its rig and the model zoo: every name it uses exists, every
attack parameter is within the attack's declared bounds, and its data source can be read.
Each problem is one :class:`~testbed.errors.PlanError` line naming the plan's field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.errors import PlanError
from testbed.rig.schema import Rig
from testbed.session.plan import FOLDER_SOURCES, NO_ATTACK, Plan, through_channel

def check_plan(
    plan: Plan,
    rig: Rig,
    model_labels: dict[str, list[str]] | None,
    attack_kinds: list[str] | None = None,
    attack_params: dict[str, list[str]] | None = None,
    attack_bounds: Callable[[str, str, Any], str | None] | None = None,
) -> None:
    """Check ``plan`` against ``rig`` and the zoo; raise one-line :class:`PlanError`.

    Parameters
    ----------
    model_labels : ``{model name: labels}`` for every model in the zoo, or None to skip
        the model checks (no zoo yet, e.g. a dry run on a fresh workspace).
    attack_kinds : the attack registry's kinds, or None to skip that check.
    attack_params : ``{kind: accepted hyper-parameter names}``, or None to skip that check.
    attack_bounds : ``(kind, parameter, value) -> problem or None`` by the bounds each attack
        declares (:func:`testbed.session.deps.attack_param_problem`), or None to skip that check.
    """
    src = plan.source or "<plan>"
    _check_source(src, plan.utterances.source)
    for i, p in enumerate(plan.sweep.placements):
        if p not in rig.placements:
            raise PlanError(f"{src}: sweep.placements[{i}]: rig {rig.name!r} has no placement {p!r} "
                            f"(have: {', '.join(rig.placements) or 'none'})")
    for i, m in enumerate(plan.sweep.mics):
        if m not in rig.mics:
            raise PlanError(f"{src}: sweep.mics[{i}]: rig {rig.name!r} has no mic {m!r} "
                            f"(have: {', '.join(rig.mics)})")
    sus = plan.suspenders
    if sus is not None and sus.ambient_mic is not None and sus.ambient_mic not in rig.mics:
        raise PlanError(f"{src}: suspenders.ambient_mic: rig {rig.name!r} has no mic {sus.ambient_mic!r} "
                        f"(have: {', '.join(rig.mics)})")
    has_attack = any(a.kind != NO_ATTACK for a in plan.attacks)
    if has_attack and rig.adversary_speaker is None:
        raise PlanError(f"{src}: attacks: rig {rig.name!r} has no speaker with role 'adversary'")
    models = plan.eval_models(rig)
    if not models:
        raise PlanError(f"{src}: evaluate.models: no models to evaluate (and rig dut.models is empty)")
    for i, a in enumerate(plan.attacks):
        # -- targeted command injection (issue 24): the matrix needs no rig or zoo to be checked ------
        if a.targets and a.target != "untargeted":
            raise PlanError(f"{src}: attacks[{i}].targets: give either target = {a.target!r} or a targets "
                            "matrix, not both")
        for s_lab in a.targets:
            if s_lab not in plan.utterances.labels:
                raise PlanError(f"{src}: attacks[{i}].targets.{s_lab}: no utterances of {s_lab!r} are played "
                                f"(utterances.labels: {', '.join(plan.utterances.labels)})")
        # -- end of the targeted-injection checks ------------------------------------------------------
        if attack_kinds is not None and a.kind != NO_ATTACK:
            kind = a.registry_kind
            if kind not in attack_kinds:
                what = "over-the-air attack" if a.over_the_air else "attack kind"
                raise PlanError(f"{src}: attacks[{i}].kind: unknown {what} {kind!r} "
                                f"(have: {', '.join(sorted(attack_kinds))}, none)")
            accepted = (attack_params or {}).get(kind)
            given = list(a.params) + (["steps"] if a.steps is not None else [])
            for p in given:
                if accepted is not None and p not in accepted:
                    where = "steps" if p == "steps" and p not in a.params else f"params.{p}"
                    raise PlanError(f"{src}: attacks[{i}].{where}: attack {kind!r} takes no parameter {p!r} "
                                    f"(accepted: {', '.join(accepted)})")
            for name, value in a.params.items() if attack_bounds is not None else ():
                problem = attack_bounds(kind, name, value)
                if problem is not None:
                    raise PlanError(f"{src}: attacks[{i}].params.{name}: {problem} (attack {kind!r})")
        if a.kind != NO_ATTACK and a.source_model is None:
            raise PlanError(f"{src}: attacks[{i}].source_model: required for attack {a.kind!r}")
        if a.craft_rig is not None:  # r1-follow
            from testbed.session.craft_check import check_craft_rig

            check_craft_rig(plan, i, a, rig, through_channel(a.registry_kind))
    if model_labels is None:
        return
    field = "evaluate.models" if plan.evaluate.models else f"{rig.source or 'rig'}: dut.models"
    for i, m in enumerate(models):
        if m not in model_labels:
            raise PlanError(f"{src}: {field}[{i}]: unknown model {m!r} "
                            f"(zoo has: {', '.join(sorted(model_labels)) or 'nothing; run testbed models build'})")
    for i, a in enumerate(plan.attacks):
        if a.source_model is not None and a.source_model not in model_labels:
            raise PlanError(f"{src}: attacks[{i}].source_model: unknown model {a.source_model!r} "
                            f"(zoo has: {', '.join(sorted(model_labels)) or 'nothing'})")
        if a.target != "untargeted" and a.source_model in model_labels:
            if a.target not in model_labels[a.source_model]:
                raise PlanError(f"{src}: attacks[{i}].target: label {a.target!r} is not one of "
                                f"{a.source_model}'s labels ({', '.join(model_labels[a.source_model])})")
        # -- targeted command injection (issue 24) --------------------------------------------------
        for s_lab, t_lab in a.targets.items():
            for lab, where in ((s_lab, s_lab), (t_lab, s_lab)):
                if a.source_model in model_labels and lab not in model_labels[a.source_model]:
                    raise PlanError(f"{src}: attacks[{i}].targets.{where}: label {lab!r} is not one of "
                                    f"{a.source_model}'s labels ({', '.join(model_labels[a.source_model])})")
        # -- end of the targeted-injection checks ------------------------------------------------------
    needed = models + [a.source_model for a in plan.attacks if a.source_model]
    for j, lab in enumerate(plan.utterances.labels):
        for m in needed:
            if lab not in model_labels[m]:
                raise PlanError(f"{src}: utterances.labels[{j}]: label {lab!r} is not one of model "
                                f"{m!r}'s labels ({', '.join(model_labels[m])})")


def _check_source(src: object, source: str) -> None:
    """Refuse an utterance source that is not ``synthetic`` or names a folder that does not exist
    (a dry run must say so, not only ``session run``)."""
    if source == "synthetic":
        return
    for prefix in FOLDER_SOURCES:
        if source.startswith(prefix):
            folder = Path(source[len(prefix):])
            if not folder.is_dir():
                raise PlanError(f"{src}: utterances.source: {folder} is not a folder "
                                f"(from {source!r}; relative paths are from the working directory)")
            return
    raise PlanError(f"{src}: utterances.source: unknown source {source!r} "
                    f"(use synthetic, {', '.join(p + 'PATH' for p in FOLDER_SOURCES)})")
