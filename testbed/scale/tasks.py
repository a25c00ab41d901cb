"""Task functions: pure functions of arrays and plain configuration that run on a Dask worker.

Each takes :class:`~testbed.scale.worker.ModelRef` s (resolved through the worker's model
cache) and returns arrays or records; nothing here touches a session store. The session's
own functions do the work (:func:`testbed.session.runner.craft_batch`,
:meth:`testbed.session.runner.Runner._run_one`, :func:`testbed.session.runner.evaluate_captures`),
so a task computes exactly what the in-process run computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testbed.scale.worker import ModelRef, setup_torch, worker_backend, worker_model


class _Predictor:
    """The one method of :class:`testbed.session.deps.Models` that evaluation needs."""

    def predict(self, model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from testbed.models import predict

        return predict(model.module, x)


def craft_task(ref: ModelRef, req) -> np.ndarray:
    """Craft one batch (a :class:`~testbed.session.runner.CraftRequest`) on ``ref``;
    returns float32 (B, n_delta_samples)."""
    from testbed.session.runner import craft_batch

    setup_torch()
    return craft_batch(worker_model(ref).module, req)


def evaluate_task(ref: ModelRef, windows: dict[str, tuple[np.ndarray, float]], source: str,
                  sample_rate: int) -> list:
    """Evaluations (:class:`~testbed.session.store.EvalRecord`) of every window by model ``ref``.

    ``windows`` maps a key -> (capture float32 (n_samples,), command start in samples).
    """
    from testbed.session.runner import evaluate_captures

    setup_torch()
    loaded = {ref.name: worker_model(ref)}
    return evaluate_captures(_Predictor(), windows, loaded, source, sample_rate)


@dataclass
class TrialSetup:
    """What every trial task of one session shares (scattered to the workers once)."""

    rig: object
    plan: object
    attacks: dict            # attack_id -> AttackConfig
    eval_refs: list[ModelRef]
    session_id: str


class _ArrayStore:
    """The read side of a session store, served from arrays sent with the task."""

    def __init__(self, setup: TrialSetup, utterances: dict[str, np.ndarray],
                 perturbations: dict[str, np.ndarray]) -> None:
        self.path = Path(f"<worker copy of {setup.session_id}>")
        self.session_id = setup.session_id
        self._attacks = setup.attacks
        self._utts = utterances
        self._perts = perturbations

    def attacks(self) -> dict:
        return self._attacks

    def read_utterance(self, utterance_id: str) -> np.ndarray:
        return self._utts[utterance_id]

    def read_cached(self, rel: str) -> np.ndarray | None:
        return self._perts.get(rel)


def trials_task(setup: TrialSetup, specs: list, utterances: dict[str, np.ndarray],
                perturbations: dict[str, np.ndarray]) -> list:
    """Play, record (simulated rig) and evaluate ``specs``; returns their
    :class:`~testbed.session.store.TrialRecord` s, uncommitted.

    ``utterances`` maps utterance_id -> clean signal; ``perturbations`` maps the session's
    perturbation path -> perturbation, for the (utterance, attack) pairs of ``specs``.
    """
    from testbed.session.runner import Runner

    setup_torch()
    store = _ArrayStore(setup, utterances, perturbations)
    backend = worker_backend(setup.rig, setup.plan.seed)
    runner = Runner(store, setup.rig, setup.plan, _Predictor(), backend=backend)
    loaded = {r.name: worker_model(r) for r in setup.eval_refs}
    return [runner._run_one(spec, backend, loaded) for spec in specs]


def noop_task(x: np.ndarray) -> np.ndarray:
    """Returns its input (for measuring the scheduler's per-task overhead)."""
    return x


def warm_task(ref: ModelRef, req=None) -> int:
    """Load ``ref`` into this worker's cache (and import torch) ahead of timed work, and craft
    ``req`` once if given (first-call allocations); returns the pid."""
    import os

    setup_torch()
    model = worker_model(ref)
    if req is not None:
        from testbed.session.runner import craft_batch

        craft_batch(model.module, req)
    return os.getpid()
