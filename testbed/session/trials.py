"""Expanding a plan into attack configurations and trials, in a fixed seeded order.

A plan expands to ``utterance x attack config x delay x placement x repetition``.
Trials are grouped by placement (in plan order) so a physical rig needs one move
per placement; inside a placement the order is shuffled with the plan's seed, so
a slow drift of the room does not line up with one delay or one bound.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from testbed.session.plan import NO_ATTACK, Plan


@dataclass(frozen=True)
class AttackConfig:
    """One attack configuration: a kind with one bound, one target and one source model."""

    attack_id: str
    kind: str                     # registry kind actually used ("ota-pgd" for over_the_air pgd)
    eps: float
    target: str                   # "untargeted" or a label
    source_model: str | None
    over_the_air: bool
    params: dict
    #: targeted injection (issue 24): played only on utterances of this label; None = all
    source_label: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def is_none(self) -> bool:
        return self.kind == NO_ATTACK


@dataclass(frozen=True)
class TrialSpec:
    """One planned trial (before it is run)."""

    trial_id: int
    utterance_id: str
    label: str
    attack_id: str
    delay_ms: float
    placement: str | None
    repetition: int

    def as_dict(self) -> dict:
        return asdict(self)


def attack_configs(plan: Plan) -> list[AttackConfig]:
    """Every attack configuration of ``plan`` (one per ``[[attacks]]`` entry and eps value)."""
    out: list[AttackConfig] = []
    seen: set[str] = set()
    for spec in plan.attacks:
        if spec.kind == NO_ATTACK:
            cfg = AttackConfig("none", NO_ATTACK, 0.0, "untargeted", None, False, {})
            if cfg.attack_id not in seen:
                seen.add(cfg.attack_id)
                out.append(cfg)
            continue
        kind = spec.registry_kind
        params = dict(spec.params)
        if spec.steps is not None:
            params["steps"] = spec.steps
        for eps, source_label, target in _eps_and_pairs(spec):  # issue 24: one config per pair
            aid = f"{kind}-{eps:g}-{target}-{spec.source_model}"
            if source_label is not None:
                aid = f"{kind}-{eps:g}-{source_label}-to-{target}-{spec.source_model}"
            if spec.steps is not None:
                aid += f"-s{spec.steps}"
            if spec.params:
                h = hashlib.sha256(json.dumps(spec.params, sort_keys=True, default=str).encode()).hexdigest()
                aid += f"-{h[:6]}"
            if aid in seen:
                continue
            seen.add(aid)
            out.append(AttackConfig(aid, kind, float(eps), target, spec.source_model,
                                    spec.over_the_air, params, source_label))
    return out


def _eps_and_pairs(spec) -> list[tuple[float, str | None, str]]:
    """``(eps, source label, target)`` per config of an ``[[attacks]]`` entry: its ``targets``
    matrix (issue 24) gives one per pair, else ``(eps, None, spec.target)``."""
    pairs = list(spec.targets.items()) or [(None, spec.target)]
    return [(eps, s, t) for eps in spec.eps for s, t in pairs]


def expand_trials(plan: Plan, utterances: list[tuple[str, str]]) -> list[TrialSpec]:
    """The plan's trials in execution order.

    Parameters
    ----------
    utterances : ``(utterance_id, label)`` pairs in the order the data source gave them.

    Returns
    -------
    trials with ``trial_id`` 0..n-1 in execution order; the same plan and utterances
    always give the same list.
    """
    configs = attack_configs(plan)
    combos = [
        (u, lab, c.attack_id, float(d), r)
        for (u, lab) in utterances
        for c in configs
        if c.source_label is None or c.source_label == lab
        for d in plan.sweep.delay_ms
        for r in range(plan.repetitions)
    ]
    out: list[TrialSpec] = []
    for k, placement in enumerate(plan.placements()):
        rng = np.random.default_rng([plan.seed, k])
        for i in rng.permutation(len(combos)):
            u, lab, aid, d, r = combos[int(i)]
            out.append(TrialSpec(len(out), u, lab, aid, d, placement, r))
    return out


def placement_changes(trials: list[TrialSpec]) -> int:
    """How many times the placement changes along ``trials`` (moves an operator makes)."""
    return sum(1 for a, b in zip(trials, trials[1:]) if a.placement != b.placement)
