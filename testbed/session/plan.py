"""Plan files (TOML): schema, loading with one-line errors, and checks against a rig and the zoo.

See DESIGN.md, "Plan file". Every table forbids unknown keys so a typo is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from testbed.errors import PlanError
from testbed.rig.loader import format_validation_error, read_toml
from testbed.rig.schema import Rig

#: Attack kinds a plan may name before the attack registry is consulted ("none" = clean playback).
NO_ATTACK = "none"
#: Registry kinds that attack through the rig's channel start with this prefix ("ota-pgd").
OTA_PREFIX = "ota-"


def registry_kind(kind: str, over_the_air: bool) -> str:
    """The attack registry's kind for a plan's ``kind`` and ``over_the_air`` flag
    (``pgd`` over the air -> ``ota-pgd``); the one place this mapping is written."""
    return f"{OTA_PREFIX}{kind}" if over_the_air and not kind.startswith(OTA_PREFIX) else kind


def through_channel(kind: str) -> bool:
    """True when a registry ``kind`` crafts through the rig's channel (needs rig, mics, delays)."""
    return kind.startswith(OTA_PREFIX)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Utterances(_Strict):
    """Which spoken commands the user speaker plays."""

    source: str = Field("synthetic", description="synthetic | speech-commands:PATH | folder:PATH")
    labels: list[str] = Field(min_length=1)
    per_label: int = Field(1, ge=1, le=10000)


class AttackSpec(_Strict):
    """One ``[[attacks]]`` entry; ``eps`` may be a list (one attack config per value)."""

    kind: str
    eps: list[float] = Field(default_factory=lambda: [0.0])
    steps: int | None = Field(None, ge=1, le=100000)
    source_model: str | None = None
    target: str = "untargeted"
    over_the_air: bool = False
    params: dict[str, Any] = Field(default_factory=dict, description="extra attack hyper-parameters")
    # -- targeted command injection (issue 24): {source label = target label}; each pair becomes
    # its own attack config, played only on utterances of its source label (session/trials.py)
    targets: dict[str, str] = Field(default_factory=dict, description="source label -> target label matrix")

    @field_validator("targets")
    @classmethod
    def _pairs(cls, v: dict[str, str]) -> dict[str, str]:
        for src, tgt in v.items():
            if src == tgt or tgt == "untargeted":
                raise ValueError(f"{src!r} = {tgt!r}: a pair must aim a command at another label")
        return v
    # -- end of the targeted-injection field -------------------------------------------------------

    @field_validator("eps", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, float)) else v

    @property
    def registry_kind(self) -> str:
        """The attack registry's kind this entry uses (see :func:`registry_kind`)."""
        return registry_kind(self.kind, self.over_the_air)

    @field_validator("eps")
    @classmethod
    def _bounds(cls, v: list[float]) -> list[float]:
        for e in v:
            if not (0.0 <= e <= 1.0):
                raise ValueError(f"eps must be in [0, 1] (PCM full scale), got {e}")
        return v


class Sweep(_Strict):
    delay_ms: list[float] = Field(default_factory=lambda: [0.0])
    delay_reference: Literal["playback", "arrival"] = "playback"
    placements: list[str] = Field(default_factory=list, description="default: the rig's own positions")
    mics: list[str] = Field(default_factory=list, description="default: every mic")

    @field_validator("delay_ms", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, float)) else v

    @field_validator("delay_ms")
    @classmethod
    def _range(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one delay")
        for d in v:
            if abs(d) > 10000:
                raise ValueError(f"delay must be within +-10000 ms, got {d}")
        return v


class Evaluate(_Strict):
    models: list[str] = Field(default_factory=list, description="default: the rig's dut.models")


class Timing(_Strict):
    """How long each trial records around the playback."""

    preroll_s: float = Field(0.1, ge=0.0, le=5.0, description="silence before the first playback (noise floor)")
    tail_s: float | None = Field(None, ge=0.0, le=10.0, description="default: the rig's hardware.tail_s")
    retries: int = Field(2, ge=0, le=20, description="re-runs of a trial that had xruns")


class Plan(_Strict):
    """A whole plan."""

    name: str = Field(min_length=1)
    seed: int = 0
    repetitions: int = Field(1, ge=1, le=10000)
    description: str = ""
    utterances: Utterances
    attacks: list[AttackSpec] = Field(default_factory=lambda: [AttackSpec(kind=NO_ATTACK)])
    sweep: Sweep = Field(default_factory=Sweep)
    evaluate: Evaluate = Field(default_factory=Evaluate)
    timing: Timing = Field(default_factory=Timing)

    source: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not all(c.isalnum() or c in "-_." for c in v):
            raise ValueError(f"use letters, digits, '-', '_' or '.' only, got {v!r}")
        return v

    def eval_models(self, rig: Rig) -> list[str]:
        """The models every capture is evaluated with."""
        return list(self.evaluate.models or rig.dut.models)

    def mics(self, rig: Rig) -> list[str]:
        """The mics recorded and stored, in rig order when not given."""
        return list(self.sweep.mics or rig.mics)

    def placements(self) -> list[str | None]:
        """Placements to visit; ``[None]`` means the rig's own positions."""
        return list(self.sweep.placements) or [None]


def parse_plan(data: dict, source: Path | str = "<plan>") -> Plan:
    """Validate an already-parsed plan mapping (from TOML)."""
    source = Path(source)
    try:
        return Plan.model_validate({**data, "source": source})
    except ValidationError as err:
        raise PlanError(format_validation_error(source, err)) from None


def load_plan(path: Path | str) -> Plan:
    """Load and validate a plan file on its own (no rig or zoo checks).

    Raises
    ------
    PlanError
        One line naming the file and the field path of the first problem.
    """
    path = Path(path)
    return parse_plan(read_toml(path, PlanError), path)


def check_plan(
    plan: Plan,
    rig: Rig,
    model_labels: dict[str, list[str]] | None,
    attack_kinds: list[str] | None = None,
    attack_params: dict[str, list[str]] | None = None,
) -> None:
    """Check ``plan`` against ``rig`` and the zoo; raise one-line :class:`PlanError`.

    Parameters
    ----------
    model_labels : ``{model name: labels}`` for every model in the zoo, or None to skip
        the model checks (no zoo yet, e.g. a dry run on a fresh workspace).
    attack_kinds : the attack registry's kinds, or None to skip that check.
    attack_params : ``{kind: accepted hyper-parameter names}``, or None to skip that check.
    """
    src = plan.source or "<plan>"
    for i, p in enumerate(plan.sweep.placements):
        if p not in rig.placements:
            raise PlanError(f"{src}: sweep.placements[{i}]: rig {rig.name!r} has no placement {p!r} "
                            f"(have: {', '.join(rig.placements) or 'none'})")
    for i, m in enumerate(plan.sweep.mics):
        if m not in rig.mics:
            raise PlanError(f"{src}: sweep.mics[{i}]: rig {rig.name!r} has no mic {m!r} "
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
        if a.kind != NO_ATTACK and a.source_model is None:
            raise PlanError(f"{src}: attacks[{i}].source_model: required for attack {a.kind!r}")
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
