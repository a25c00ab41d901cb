"""``testbed attack craft``: make every perturbation a plan needs, ahead of a session.

The plan is expanded exactly as a session would expand it (same utterances, same fixed
crafting batches and seeds), and the session's own crafting code
(:class:`~testbed.session.perturbations.Perturbations`) runs on a store stand-in, so the perturbations land in the content-addressed cache under the keys a later
``testbed session run`` of the same plan, rig and zoo looks up.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testbed.scale.cache import PerturbationCache


@dataclass
class CraftResult:
    """What ``craft_plan`` did: perturbations needed, crafted now, found in the cache."""

    needed: int = 0
    crafted: int = 0
    cached: int = 0
    cache_root: str = ""
    attacks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(vars(self))


class _PlanStore:
    """The parts of a session store crafting reads, for a plan not yet run."""

    def __init__(self, folder: Path, attacks: dict, planned: list, utterances: dict[str, np.ndarray]) -> None:
        self.path = folder
        self.session_id = "<attack craft>"
        self._attacks = attacks
        self._planned = planned
        self._utts = utterances

    def attacks(self) -> dict:
        return self._attacks

    def planned(self) -> list:
        return self._planned

    def read_utterance(self, utterance_id: str) -> np.ndarray:
        return self._utts[utterance_id]

    def write_cached(self, rel: str, signal: np.ndarray, sample_rate: int) -> None:
        """Nothing to keep besides the content cache."""


class _CountingCache:
    """Wraps a cache to count what was stored (perturbations crafted now)."""

    def __init__(self, cache: PerturbationCache) -> None:
        self.cache = cache
        self.key = cache.key
        self.get = cache.get
        self.puts = 0

    def put(self, key: str, signal: np.ndarray, sample_rate: int = 16000) -> None:
        self.puts += 1
        self.cache.put(key, signal, sample_rate)


def craft_plan(
    plan_path: Path | str,
    rig_path: Path | str,
    *,
    models_root: Path | None = None,
    cache: PerturbationCache | None = None,
    executor=None,
    utterances: list[tuple[str, str, np.ndarray, dict]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CraftResult:
    """Craft (or find in ``cache``) every perturbation of ``plan_path`` on ``rig_path``.

    Parameters
    ----------
    cache : where perturbations go (default :class:`PerturbationCache` at the default root).
    executor : a :class:`~testbed.scale.DaskExecutor`, or None to craft in this process.
    utterances : ``(utterance_id, label, signal, meta)`` instead of the plan's source (as
        :func:`testbed.session.create_session` takes them).
    progress : called with ``(done, total)`` perturbations.
    """
    from testbed.errors import DataError, PlanError, SessionError
    from testbed.session.deps import command_utterances
    from testbed.session.lifecycle import prepare
    from testbed.session.events import RunEvent
    from testbed.session.perturbations import Perturbations
    from testbed.session.trials import attack_configs, expand_trials

    plan, rig, models = prepare(plan_path, rig_path, models_root)
    u = plan.utterances
    try:
        utts = utterances if utterances is not None else command_utterances(
            u.source, list(u.labels), u.per_label, plan.seed)
    except DataError as exc:
        raise PlanError(f"{plan.source}: {exc}") from None
    if not utts:
        raise SessionError(f"{plan.source}: utterances: source {u.source!r} gave no utterances")
    planned = expand_trials(plan, [(uid, lab) for uid, lab, _, _ in utts])
    attacks = {a.attack_id: a for a in attack_configs(plan)}
    cache = cache or PerturbationCache()
    counting = _CountingCache(cache)
    result = CraftResult(cache_root=str(cache.root), attacks=[a for a in attacks if not attacks[a].is_none])

    def on_event(ev: RunEvent) -> None:
        if ev.kind == "craft" and progress is not None:
            progress(ev.done, ev.total)

    with tempfile.TemporaryDirectory(prefix="testbed-craft-") as tmp:
        store = _PlanStore(Path(tmp), attacks, planned, {uid: sig for uid, _, sig, _ in utts})
        crafter = Perturbations(store, rig, plan, models, executor=executor, cache=counting, emit=on_event)
        result.needed = len({(t.utterance_id, t.attack_id) for t in planned if not attacks[t.attack_id].is_none})
        crafter.craft_all(planned)
    result.crafted = counting.puts
    result.cached = result.needed - counting.puts
    return result
