"""Plan files (TOML): schema, loading with one-line errors, and checks against a rig and the zoo.

See DESIGN.md, "Plan file". Every table forbids unknown keys so a typo is an error.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from testbed.errors import PlanError
from testbed.names import check_model_name, check_name
from testbed.rig.loader import format_validation_error, read_toml
from testbed.rig.schema import Rig, Suspenders

#: Attack kinds a plan may name before the attack registry is consulted ("none" = clean playback).
NO_ATTACK = "none"
#: Registry kinds that attack through the rig's channel start with this prefix ("ota-pgd").
OTA_PREFIX = "ota-"
#: Default largest number of trials a plan may expand to (``max_trials`` raises it).
MAX_TRIALS = 100_000
#: Utterance sources that name a folder: ``<prefix>PATH``.
FOLDER_SOURCES = ("speech-commands:", "folder:", "ambient:")


def registry_kind(kind: str, over_the_air: bool) -> str:
    """The attack registry's kind for a plan's ``kind`` and ``over_the_air`` flag
    (``pgd`` over the air -> ``ota-pgd``); the one place this mapping is written."""
    return f"{OTA_PREFIX}{kind}" if over_the_air and not kind.startswith(OTA_PREFIX) else kind


def through_channel(kind: str) -> bool:
    """True when a registry ``kind`` crafts through the rig's channel (needs rig, mics, delays)."""
    return kind.startswith(OTA_PREFIX)


class _Strict(BaseModel):
    # allow_inf_nan=False: TOML has nan and inf; no plan number may be either
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _finite_tree(v: Any, where: str = "") -> None:
    """Raise ValueError naming the first nan/inf float anywhere in ``v`` (dicts and lists walked)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{where}: must be a finite number, got {v}" if where else f"must be finite, got {v}")
    if isinstance(v, dict):
        for k, x in v.items():
            _finite_tree(x, f"{where}.{k}" if where else str(k))
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _finite_tree(x, f"{where}[{i}]")


def _names(v: list[str], check=check_name) -> list[str]:
    for i, n in enumerate(v):
        try:
            check(n)
        except ValueError as exc:
            raise ValueError(f"[{i}] {exc}") from None
    return v


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
    # -- r1-follow: craft through another rig (see testbed.session.craft_rig) --
    craft_rig: str | None = Field(None, min_length=1, description=(
        "over-the-air kinds: craft through this rig's channels (a simulated or measured twin; "
        "path relative to the plan file) and play in the session's rig"))

    @field_validator("params")
    @classmethod
    def _finite_params(cls, v: dict[str, Any]) -> dict[str, Any]:
        _finite_tree(v)
        return v

    @field_validator("source_model")
    @classmethod
    def _model_name(cls, v: str | None) -> str | None:
        return v if v is None else check_model_name(v)

    def attack_id(self, eps: float, extra: dict | None = None) -> str:
        """The id of this entry's configuration with bound ``eps`` (the one place it is written);
        ``extra`` joins the hashed parameters (the resolved ``craft_rig`` path)."""
        aid = f"{self.registry_kind}-{eps:g}-{self.target}-{self.source_model}"
        if self.steps is not None:
            aid += f"-s{self.steps}"
        hashed = {**self.params, **(extra or {})}
        if hashed:
            h = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()
            aid += f"-{h[:6]}"
        return aid

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

    @field_validator("placements", "mics")
    @classmethod
    def _safe_names(cls, v: list[str]) -> list[str]:
        return _names(v)

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

    @field_validator("models")
    @classmethod
    def _model_names(cls, v: list[str]) -> list[str]:
        return _names(v, check_model_name)


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
    max_trials: int = Field(MAX_TRIALS, ge=1, le=100_000_000,
                            description="refuse a plan that expands to more trials than this")
    description: str = ""
    utterances: Utterances
    attacks: list[AttackSpec] = Field(default_factory=lambda: [AttackSpec(kind=NO_ATTACK)])
    sweep: Sweep = Field(default_factory=Sweep)
    evaluate: Evaluate = Field(default_factory=Evaluate)
    timing: Timing = Field(default_factory=Timing)
    suspenders: Suspenders | None = Field(None, description="pause conditions; override the rig's [suspenders]")

    source: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v, "")

    def attack_ids(self) -> list[str]:
        """The distinct attack configuration ids, in plan order (``"none"`` for clean playback)."""
        out: dict[str, None] = {}
        for spec in self.attacks:
            extra = {"craft_rig": spec.craft_rig} if spec.craft_rig is not None else None
            for aid in (["none"] if spec.kind == NO_ATTACK else [spec.attack_id(e, extra) for e in spec.eps]):
                out.setdefault(aid)
        return list(out)

    def trial_count(self, n_utterances: int | None = None) -> int:
        """How many trials the plan expands to, computed without building them: utterances
        (default ``labels x per_label``) x attack configs x delays x placements x repetitions."""
        n_u = len(self.utterances.labels) * self.utterances.per_label if n_utterances is None else n_utterances
        return (n_u * len(self.attack_ids()) * len(self.sweep.delay_ms) * len(self.placements())
                * self.repetitions)

    def check_size(self, n_utterances: int | None = None) -> int:
        """The trial count, or :class:`PlanError` naming it when it is above ``max_trials``."""
        n = self.trial_count(n_utterances)
        if n > self.max_trials:
            n_u = len(self.utterances.labels) * self.utterances.per_label if n_utterances is None else n_utterances
            raise PlanError(
                f"{self.source or '<plan>'}: max_trials: the plan expands to {n:,} trials ({n_u} utterances x "
                f"{len(self.attack_ids())} attack configs x {len(self.sweep.delay_ms)} delays x "
                f"{len(self.placements())} placements x {self.repetitions} repetitions), above "
                f"max_trials = {self.max_trials:,}; shrink the sweep or raise max_trials")
        return n

    def eval_models(self, rig: Rig) -> list[str]:
        """The models every capture is evaluated with."""
        return list(self.evaluate.models or rig.dut.models)

    def mics(self, rig: Rig) -> list[str]:
        """The mics recorded and stored, in rig order when not given."""
        return list(self.sweep.mics or rig.mics)

    def placements(self) -> list[str | None]:
        """Placements to visit; ``[None]`` means the rig's own positions."""
        return list(self.sweep.placements) or [None]

    def suspender_options(self, rig: Rig) -> Suspenders | None:
        """The rig's ``[suspenders]`` with this plan's keys over them; None when neither has any."""
        if rig.suspenders is None and self.suspenders is None:
            return None
        keys = {}
        for part in (rig.suspenders, self.suspenders):
            if part is not None:
                keys.update({k: getattr(part, k) for k in part.model_fields_set})
        return Suspenders(**keys)


def parse_plan(data: dict, source: Path | str = "<plan>") -> Plan:
    """Validate an already-parsed plan mapping (from TOML)."""
    source = Path(source)
    try:
        plan = Plan.model_validate({**data, "source": source})
    except ValidationError as err:
        raise PlanError(format_validation_error(source, err)) from None
    plan.check_size()
    return plan


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
