"""Expanding a plan into attack configurations and trials, in a fixed seeded order.

A plan expands to ``utterance x attack config x delay x placement x repetition``.
Trials are grouped by placement (in plan order) so a physical rig needs one move
per placement; inside a placement the order is shuffled with the plan's seed, so
a slow drift of the room does not line up with one delay or one bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from testbed.session.plan import NO_ATTACK, Plan

#: Reserved ``AttackConfig.params`` entries of an attack crafted through another rig (the plan's
#: ``craft_rig``): its resolved path and its name (see :mod:`testbed.session.craft_rig`).
CRAFT_RIG_KEY = "craft_rig"
CRAFT_RIG_NAME_KEY = "craft_rig_name"


def craft_rig_path(plan: Plan, craft_rig: str) -> Path:
    """A plan's ``craft_rig`` resolved against the plan file's folder (the working folder without one)."""
    p = Path(craft_rig).expanduser()
    if not p.is_absolute() and plan.source is not None:
        p = Path(plan.source).parent / p
    return p.resolve()


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
        extra = None
        if spec.craft_rig is not None:  # the rig crafted through joins the id and the params
            from testbed.rig import load_rig

            path = craft_rig_path(plan, spec.craft_rig)
            params[CRAFT_RIG_KEY] = str(path)
            params[CRAFT_RIG_NAME_KEY] = load_rig(path).name
            extra = {CRAFT_RIG_KEY: str(path)}
        for eps, source_label, target in spec.settings():   # one config per targets pair
            aid = spec.attack_id(eps, extra, source_label, target)
            if aid in seen:
                continue
            seen.add(aid)
            out.append(AttackConfig(aid, kind, float(eps), target, spec.source_model,
                                    spec.over_the_air, params, source_label))
    return out + query_configs(out)   # the query trials of in-the-loop black-box attacks


def expand_trials(plan: Plan, utterances: list[tuple[str, str]]) -> list[TrialSpec]:
    """The plan's trials in execution order.

    Parameters
    ----------
    utterances : ``(utterance_id, label)`` pairs in the order the data source gave them.

    Returns
    -------
    trials with ``trial_id`` 0..n-1 in execution order; the same plan and utterances
    always give the same list.

    Raises
    ------
    PlanError
        The plan would expand to more than its ``max_trials`` (counted before any list is built).
    """
    plan.check_size(len(utterances))
    configs = attack_configs(plan)
    combos = [
        (u, lab, c.attack_id, float(d), r)
        for (u, lab) in utterances
        for c in configs
        if not is_query_config(c) and (c.source_label is None or c.source_label == lab)
        for d in plan.sweep.delay_ms
        for r in range(plan.repetitions)
    ]
    out: list[TrialSpec] = []
    for k, placement in enumerate(plan.placements()):
        if k == 0:   # r6-blackbox: in-the-loop queries, in query order, where the adversary first stands
            for u, lab, aid, d, r in query_combos(configs, utterances, plan.sweep.delay_ms):
                out.append(TrialSpec(len(out), u, lab, aid, d, placement, r))
        rng = np.random.default_rng([plan.seed, k])
        for i in rng.permutation(len(combos)):
            u, lab, aid, d, r = combos[int(i)]
            out.append(TrialSpec(len(out), u, lab, aid, d, placement, r))
    return out


# -- r6-blackbox: black-box attacks with the DUT in the loop (testbed.session.blackbox) -------------
#: Attack ids of query trials end with this.
QUERIES_SUFFIX = "-queries"


def in_the_loop(cfg: AttackConfig) -> bool:
    """True for an attack (or its query configuration) answered by the session's DUT
    (``params.oracle = "dut"``): its perturbation comes from queries played as trials."""
    return cfg.params.get("oracle") == "dut"


def is_query_config(cfg: AttackConfig) -> bool:
    """True for the ``<attack id>-queries`` configuration that holds an attack's query trials."""
    return in_the_loop(cfg) and cfg.attack_id.endswith(QUERIES_SUFFIX)


def query_configs(configs: list[AttackConfig]) -> list[AttackConfig]:
    """One ``-queries`` configuration per in-the-loop attack of ``configs``."""
    return [AttackConfig(c.attack_id + QUERIES_SUFFIX, c.kind, c.eps, c.target, c.source_model,
                         c.over_the_air, dict(c.params))
            for c in configs if in_the_loop(c) and not is_query_config(c)]


#: OTANES's defaults for the parameters that size its query budget (the store, and so analysis,
#: imports this module: it may not import the attacks; tests/session/test_session_blackbox.py checks
#: these against ``OTANES.queries_per_example``)
OTANES_BUDGET_DEFAULTS = {"iterations": 20, "population": 32, "eot_samples": 1, "max_queries": None}


def planned_queries(params: dict) -> int:
    """DUT queries one utterance costs for ota-nes hyper-parameters ``params``: iterations that
    fit ``max_queries`` x population x eot_samples. Bad values raise PlanError."""
    from testbed.errors import PlanError

    p = {**OTANES_BUDGET_DEFAULTS, **{k: v for k, v in params.items() if k in OTANES_BUDGET_DEFAULTS}}
    for k, v in p.items():
        if not (v is None and k == "max_queries") and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise PlanError(f"attacks: params.{k}: must be a positive integer, got {v!r}")
    cost = p["population"] * p["eot_samples"]
    rounds = p["iterations"] if p["max_queries"] is None else min(p["iterations"], p["max_queries"] // cost)
    return rounds * cost


def query_combos(configs: list[AttackConfig], utterances: list[tuple[str, str]],
                 delays_ms: list[float]) -> list[tuple[str, str, str, float, int]]:
    """``(utterance_id, label, query attack id, delay_ms, query index)`` of every planned query;
    query ``k`` is played at ``delays_ms[k % len(delays_ms)]``."""
    out = []
    for c in configs:
        if not is_query_config(c):
            continue
        n = planned_queries(c.params)
        out += [(u, lab, c.attack_id, float(delays_ms[k % len(delays_ms)]), k)
                for (u, lab) in utterances for k in range(n)]
    return out
# -- end r6-blackbox ----------------------------------------------------------------------------


def placement_changes(trials: list[TrialSpec]) -> int:
    """How many times the placement changes along ``trials`` (moves an operator makes)."""
    return sum(1 for a, b in zip(trials, trials[1:]) if a.placement != b.placement)
