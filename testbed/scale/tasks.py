"""Task functions: pure functions of arrays and plain configuration that run on a Dask worker.

Each takes :class:`~testbed.scale.worker.ModelRef` s (resolved through the worker's model
cache) and returns arrays or records; nothing here touches a session store. The session's
own public functions do the work (:func:`testbed.session.crafting.craft_batch`,
:func:`testbed.session.trial.run_trial`, :func:`testbed.session.evaluation.evaluate_captures`),
so a task computes exactly what the in-process run computes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from testbed.scale.worker import ModelRef, setup_torch, worker_backend, worker_model


class _Predictor:
    """The one method of :class:`testbed.session.deps.Models` that evaluation needs."""

    def predict(self, model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from testbed.models import predict

        return predict(model.module, x)


def craft_task(ref: ModelRef, req) -> np.ndarray:
    """Craft one batch (a :class:`~testbed.session.crafting.CraftRequest`) on ``ref``;
    returns float32 (B, n_delta_samples)."""
    from testbed.session.crafting import craft_batch

    setup_torch()
    return craft_batch(worker_model(ref).module, req)


def evaluate_task(ref: ModelRef, windows: dict[str, tuple[np.ndarray, float]], source: str,
                  sample_rate: int) -> list:
    """Evaluations (:class:`~testbed.session.store.EvalRecord`) of every window by model ``ref``.

    ``windows`` maps a key -> (capture float32 (n_samples,), command start in samples).
    """
    from testbed.session.evaluation import evaluate_captures

    setup_torch()
    loaded = {ref.name: worker_model(ref)}
    return evaluate_captures(_Predictor(), windows, loaded, source, sample_rate)


@dataclass
class TrialSetup:
    """What every trial task of one session shares (scattered to the workers once): the
    session's :class:`~testbed.session.trial.TrialContext` without its evaluator, and the
    models that evaluate."""

    context: object
    eval_refs: list[ModelRef]


def trials_task(setup: TrialSetup, trials: list, seed: int) -> list:
    """Play, record (simulated rig, opened with ``seed``) and evaluate ``trials``
    (:class:`~testbed.session.trial.TrialInput` s); returns their
    :class:`~testbed.session.store.TrialRecord` s, uncommitted."""
    from testbed.session.trial import Evaluator, run_trial

    setup_torch()
    ctx = setup.context
    backend = worker_backend(ctx.rig, seed)
    loaded = {r.name: worker_model(r) for r in setup.eval_refs}
    ctx = replace(ctx, evaluator=Evaluator(_Predictor(), loaded, ctx.rig.sample_rate))
    return [run_trial(t, ctx, backend) for t in trials]


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
        from testbed.session.crafting import craft_batch

        craft_batch(model.module, req)
    return os.getpid()
