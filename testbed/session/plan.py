"""Plan files (TOML): schema, loading with one-line errors, and checks against a rig and the zoo.

See DESIGN.md, "Plan file". Every table forbids unknown keys so a typo is an error.
"""

from __future__ import annotations

import hashlib
import json
import math
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

    def settings(self) -> list[tuple[float, str | None, str]]:
        """``(eps, source label, target)`` per configuration of this entry: one per ``targets``
        pair (played only on utterances of its source label), else ``(eps, None, target)``."""
        pairs = list(self.targets.items()) or [(None, self.target)]
        return [(eps, s, t) for eps in self.eps for s, t in pairs]

    def attack_id(self, eps: float, extra: dict | None = None, source_label: str | None = None,
                  target: str | None = None) -> str:
        """The id of this entry's configuration with bound ``eps`` (the one place it is written);
        ``extra`` joins the hashed parameters (the resolved ``craft_rig`` path); a ``targets`` pair
        is written ``<source>-to-<target>``."""
        aim = self.target if target is None else target
        if source_label is not None:
            aim = f"{source_label}-to-{aim}"
        aid = f"{self.registry_kind}-{eps:g}-{aim}-{self.source_model}"
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
            for aid in (["none"] if spec.kind == NO_ATTACK else
                        [spec.attack_id(e, extra, src, tgt) for e, src, tgt in spec.settings()]):
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
