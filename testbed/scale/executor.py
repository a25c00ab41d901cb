"""Running a session's crafting, simulated trials and replay chunks on a Dask cluster.

:class:`DaskExecutor` is what :class:`~testbed.session.Runner` (``executor=``) and
:func:`~testbed.session.replay_session` (``executor=``) call. It splits the work into tasks
(one crafting batch; a chunk of trials; a chunk of captures for one model), scatters each
model once per job as plain data, and yields results as tasks complete. The caller, in this
process, writes them: the session store stays single-writer.

A worker lost mid-job is replaced transparently: Dask runs its tasks again elsewhere, and
each task's result is yielded exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from testbed.scale import tasks
from testbed.scale.cluster import ClusterError, n_slots
from testbed.scale.worker import ModelRef, model_ref

#: Trial chunks per task slot (more chunks: smoother progress and load balance).
CHUNKS_PER_SLOT = 4
MAX_TRIALS_PER_TASK = 32


class DaskExecutor:
    """Runs session work on ``client``'s workers.

    Parameters
    ----------
    client : a connected ``distributed.Client`` (see :func:`testbed.scale.open_client`).
    trials_per_task : trials per simulated-trial task (default: about four tasks per worker
        thread, at most ``MAX_TRIALS_PER_TASK``).
    """

    def __init__(self, client, trials_per_task: int | None = None) -> None:
        self.client = client
        self.trials_per_task = trials_per_task
        self._scattered: dict[str, object] = {}
        self.tasks_done = 0
        self.dashboard: str | None = None

    # -- plumbing -------------------------------------------------------------------
    def _scatter(self, ref: ModelRef):
        # keyed by hash and name: two views of one ensemble (lm-slr8@k1, @k2) share weights
        if ref.key not in self._scattered:
            self._scattered[ref.key] = self.client.scatter(ref, broadcast=True, hash=False)
        return self._scattered[ref.key]

    def _as_completed(self, futures: dict) -> Iterator[tuple[object, object]]:
        """``(tag, result)`` per future as each completes; the rest are cancelled if the caller stops."""
        from distributed import KilledWorker, as_completed

        try:
            for fut in as_completed(list(futures)):
                try:
                    result = fut.result()
                except KilledWorker:
                    raise ClusterError("--cluster: a task's workers died too many times (out of memory?); "
                                       "what was committed so far is kept; fix the workers and resume") from None
                self.tasks_done += 1
                yield futures[fut], result
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)

    # -- crafting -----------------------------------------------------------------------
    def craft(self, perturbations, jobs: list) -> Iterator[tuple[object, list[np.ndarray]]]:
        """``(CraftJob, deltas)`` per crafting batch, as batches finish (``perturbations`` is the
        session's :class:`~testbed.session.perturbations.Perturbations`)."""
        futures = {}
        for job in jobs:
            req = perturbations.request(job)
            ref = self._scatter(model_ref(perturbations.models, req.source_model))
            futures[self.client.submit(tasks.craft_task, ref, req, pure=False)] = job
        for job, deltas in self._as_completed(futures):
            yield job, list(deltas)

    def craft_requests(self, models, requests: list) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, deltas float32 (B, n))`` per :class:`~testbed.session.crafting.CraftRequest`."""
        futures = {}
        for i, req in enumerate(requests):
            ref = self._scatter(model_ref(models, req.source_model))
            futures[self.client.submit(tasks.craft_task, ref, req, pure=False)] = i
        yield from self._as_completed(futures)

    # -- simulated trials ---------------------------------------------------------------
    def run_trials(self, runner, specs: list) -> Iterator[object]:
        """:class:`~testbed.session.store.TrialRecord` of each of ``specs`` (simulated rig), as chunks finish."""
        if runner.rig.dut.transport == "serial":
            raise ClusterError(f"--cluster: rig {runner.rig.name!r} evaluates on a serial DUT attached to "
                               f"this machine; run it with --cluster none")
        setup = tasks.TrialSetup(runner.trial_context(),
                                 [model_ref(runner.models, m) for m in runner.eval_models])
        setup_f = self.client.scatter(setup, broadcast=True, hash=False)
        size = self.trials_per_task or max(1, min(MAX_TRIALS_PER_TASK, math.ceil(
            len(specs) / (CHUNKS_PER_SLOT * n_slots(self.client)))))
        futures = {}
        for i in range(0, len(specs), size):
            chunk = [runner.trial_input(s) for s in specs[i:i + size]]
            futures[self.client.submit(tasks.trials_task, setup_f, chunk, runner.plan.seed, pure=False)] = i
        for _, records in self._as_completed(futures):
            yield from records

    # -- replay -------------------------------------------------------------------------
    def evaluate(self, models, model_names: list[str], chunks: Iterable[dict], source: str,
                 sample_rate: int) -> Iterator[tuple[int, str, list]]:
        """``(chunk_index, model, evaluations)`` per (chunk of capture windows, model), as tasks finish."""
        refs = {m: self._scatter(model_ref(models, m)) for m in model_names}
        futures = {}
        for ci, windows in enumerate(chunks):
            # the windows travel inside the task (not scattered), so a task whose worker dies
            # can run again elsewhere
            for m in model_names:
                futures[self.client.submit(tasks.evaluate_task, refs[m], windows, source, sample_rate,
                                           pure=False)] = (ci, m)
        for (ci, m), evals in self._as_completed(futures):
            yield ci, m, evals


def open_executor(spec, option: str = "--cluster"):
    """Context manager: a :class:`DaskExecutor` on the cluster ``spec`` names (a
    :class:`~testbed.scale.ClusterSpec` or its text), or None for ``none``.

    The executor's ``dashboard`` attribute holds the Dask dashboard address, if any.
    """
    import contextlib

    from testbed.scale.cluster import ClusterSpec, dashboard_link, open_client, parse_cluster

    if not isinstance(spec, ClusterSpec):
        spec = parse_cluster(spec, option)

    @contextlib.contextmanager
    def _open():
        with open_client(spec, option) as client:
            if client is None:
                yield None
                return
            ex = DaskExecutor(client)
            ex.dashboard = dashboard_link(client)
            yield ex

    return _open()
