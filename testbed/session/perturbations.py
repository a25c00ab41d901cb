"""A session's perturbations: where they live in the store, and crafting the missing ones.

Utterances are crafted in fixed batches (:func:`~testbed.session.crafting.craft_jobs`), so a
run resumed half-way through crafting makes exactly the perturbations an uninterrupted run
would. Batches run on an executor when there is one; perturbations found in a content cache
are copied, not crafted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from testbed.errors import SessionError
from testbed.session.crafting import (
    CraftJob,
    CraftParams,
    CraftRequest,
    cache_keys,
    craft_batch,
    craft_jobs,
    craft_params,
    craft_request,
)
from testbed.session.events import RunEvent
from testbed.session.looped import is_looped
from testbed.session.streaming import is_streaming
from testbed.session.store import safe_name
from testbed.session.trials import TrialSpec, in_the_loop


def perturbation_path(utterance_id: str, attack_id: str) -> str:
    """The store-relative path of the perturbation of ``utterance_id`` under ``attack_id``."""
    return f"perturbations/{safe_name(utterance_id)}__{safe_name(attack_id)}.wav"


class Perturbations:
    """Reads and crafts the perturbations of one session.

    Parameters
    ----------
    store : the session store (or a stand-in with ``attacks``, ``planned``, ``read_utterance``,
        ``read_cached``, ``write_cached``, ``path`` and ``session_id``).
    rig, plan, models : the session's rig and plan and the zoo adapter.
    executor : runs crafting batches elsewhere (``craft(crafter, jobs)`` yielding ``(job, deltas)``).
    cache : a content-addressed cache (``key``, ``get``, ``put``) consulted before crafting.
    emit : receives one ``craft`` :class:`RunEvent` per step of progress.
    should_stop : polled between batches.
    """

    def __init__(self, store, rig, plan, models, *, executor=None, cache=None,
                 emit: Callable[[RunEvent], None] | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.rig = rig
        self.plan = plan
        self.models = models
        self.executor = executor
        self.cache = cache
        self.emit = emit or (lambda e: None)
        self.should_stop = should_stop
        self.attacks = store.attacks()
        self.sr = rig.sample_rate
        self._utts: dict[str, np.ndarray] = {}
        self._params: dict[str, CraftParams] = {}
        self._notes: dict[str, str | None] = {}

    # -- reading ------------------------------------------------------------------
    def utterance(self, utterance_id: str) -> np.ndarray:
        """The clean command, float32 (n_samples,), read once."""
        if utterance_id not in self._utts:
            self._utts[utterance_id] = self.store.read_utterance(utterance_id)
        return self._utts[utterance_id]

    def get(self, utterance_id: str, attack_id: str) -> np.ndarray | None:
        """The crafted perturbation (float32 (n_samples,)), None for no attack."""
        if self.attacks[attack_id].is_none:
            return None
        sig = self.store.read_cached(perturbation_path(utterance_id, attack_id))
        if sig is None:
            raise SessionError(f"{self.store.path}: perturbation for {utterance_id} / {attack_id} is missing; "
                               f"run 'testbed session resume {self.store.session_id}' to craft it")
        return sig

    # -- the one crafting definition --------------------------------------------------
    def params(self, attack_id: str) -> CraftParams:
        """The :class:`CraftParams` of ``attack_id`` in this session."""
        if attack_id not in self._params:
            cfg = self.attacks[attack_id]
            self._params[attack_id] = craft_params(cfg, self.rig, self.plan,
                                                   self.models.model_hash(cfg.source_model))
        return self._params[attack_id]

    def channel_note(self, attack_id: str) -> str | None:
        """For trial notes: which rig and channels ``attack_id`` was crafted through, or None for
        an attack that ignores the channel ("crafted on office-sim through shoebox", ...)."""
        if attack_id not in self._notes:
            from testbed.session.craft_rig import crafting_channels, load_craft_rig, split_params

            cfg = self.attacks[attack_id]
            note = None
            if not cfg.is_none and self.params(attack_id).rig is not None:
                _, path, name = split_params(dict(cfg.params))
                craft = load_craft_rig(path) if path else self.rig
                _, source = crafting_channels(craft)
                note = f"perturbation crafted on {name or craft.name} through {source}, played in {self.rig.name}"
            self._notes[attack_id] = note
        return self._notes[attack_id]

    def request(self, job: CraftJob) -> CraftRequest:
        """The pure inputs of crafting ``job`` (what a worker needs besides the source model)."""
        p = self.params(job.attack_id)
        src = self.models.load(p.source_model)
        sigs = [self.utterance(u) for u, _ in job.chunk]
        return craft_request(p, job, sigs, src.labels, src.clip_samples)

    def keys(self, job: CraftJob) -> list[str]:
        """The content-cache key of each row of ``job``."""
        return cache_keys(self.params(job.attack_id), job, [self.utterance(u) for u, _ in job.chunk],
                          self.cache.key)

    # -- crafting -------------------------------------------------------------------
    def jobs(self, trials: list[TrialSpec]) -> list[CraftJob]:
        """The crafting batches still to make for ``trials`` (perturbations not in the store)."""
        def crafted(cfg) -> bool:   # r6-blackbox: in-the-loop attacks are made by their queries,
            return not cfg.is_none and not in_the_loop(cfg) and not is_streaming(cfg)   # streaming in trials

        wanted = {(t.utterance_id, t.attack_id) for t in trials if crafted(self.attacks[t.attack_id])}
        labels: dict[str, dict[str, str]] = {}
        for t in self.store.planned():
            if crafted(self.attacks[t.attack_id]):
                labels.setdefault(t.attack_id, {})[t.utterance_id] = t.label
        out = []
        whole = {aid for aid, cfg in self.attacks.items() if is_looped(cfg)}   # r6-blackbox: one signal
        for job in craft_jobs(self.plan.seed, labels, whole):
            missing = [u for u, _ in job.chunk if (u, job.attack_id) in wanted
                       and not (self.store.path / perturbation_path(u, job.attack_id)).is_file()]
            if missing:
                out.append(CraftJob(job.attack_id, job.chunk, missing, job.seed))
        return out

    def craft_all(self, trials: list[TrialSpec]) -> int:
        """Craft every perturbation ``trials`` need that is not stored yet; returns how many were
        stored (crafted or copied from the cache)."""
        jobs = self.jobs(trials)
        total = sum(len(j.missing) for j in jobs)
        done = 0
        self.emit(RunEvent("craft", done=done, total=total))
        if self.cache is not None:
            todo = []
            for job in jobs:
                hits = self._from_cache(job)
                if hits is None:
                    todo.append(job)
                    continue
                for uid, d in hits.items():
                    self.store.write_cached(perturbation_path(uid, job.attack_id), d, self.sr)
                done += len(job.missing)
                self.emit(RunEvent("craft", done=done, total=total))
            jobs = todo
        results = self.executor.craft(self, jobs) if self.executor is not None else self._craft_here(jobs)
        for job, deltas in results:
            for (uid, _), d in zip(job.chunk, deltas):
                if uid in job.missing:
                    self.store.write_cached(perturbation_path(uid, job.attack_id), d, self.sr)
            if self.cache is not None:
                for key, d in zip(self.keys(job), deltas):
                    self.cache.put(key, np.asarray(d, dtype=np.float32), self.sr)
            done += len(job.missing)
            self.emit(RunEvent("craft", done=done, total=total))
            if self.should_stop():
                return done
        return done

    def _craft_here(self, jobs: list[CraftJob]) -> Iterator[tuple[CraftJob, list[np.ndarray]]]:
        for job in jobs:
            if self.should_stop():
                return
            module = self.models.load(self.params(job.attack_id).source_model).module
            yield job, list(craft_batch(module, self.request(job)))

    def _from_cache(self, job: CraftJob) -> dict[str, np.ndarray] | None:
        keys = dict(zip((u for u, _ in job.chunk), self.keys(job)))
        out = {}
        for uid in job.missing:
            sig = self.cache.get(keys[uid])
            if sig is None:
                return None
            out[uid] = sig
        return out
