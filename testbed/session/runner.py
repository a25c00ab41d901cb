"""The session runner: it only schedules, retries and commits.

A run is data flowing one way: the plan's pending :class:`TrialSpec` s (from the store) get
their perturbations (:mod:`testbed.session.perturbations`), each becomes a
:class:`~testbed.session.trial.TrialInput`, :func:`~testbed.session.trial.run_trial` turns it
into a :class:`TrialRecord` (here, or on an executor's workers), and the runner commits it.

The runner never prints. It reports every step as one :class:`~testbed.session.events.RunEvent`
(start, craft, pause, retry, trial, failure, stop) through ``on_event``, asks an operator to
move a speaker through ``prompt_move``, and stops cleanly between trials when ``should_stop()``
turns true. Every committed trial is final; a trial interrupted before its commit is discarded
by the next run's recovery and redone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.audio import open_backend
from testbed.errors import SessionError
from testbed.rig import Rig
from testbed.session.blackbox import BlackBoxLoop  # r6-blackbox
from testbed.session.crafting import CRAFT_BATCH, CraftJob, CraftRequest, craft_batch, craft_jobs
from testbed.session.deps import Models
from testbed.session.evaluation import evaluate_captures
from testbed.session.disturbance import take_injection
from testbed.session.events import RunEvent
from testbed.session.perturbations import Perturbations
from testbed.session.placement import MoveRequest, set_placement
from testbed.session.looped import is_looped  # r6-blackbox
from testbed.session.streaming import is_streaming, prepare_predictors  # r6-blackbox
from testbed.session.plan import Plan
from testbed.session.store import SessionStore, TrialRecord
from testbed.session.trial import Evaluator, TrialContext, TrialInput, run_trial
from testbed.session.trials import TrialSpec

# re-exported: replay, the scale tasks and the bench import these from here
__all__ = ["CRAFT_BATCH", "CraftJob", "CraftRequest", "MoveRequest", "RunResult", "RunStats", "Runner",
           "craft_batch", "craft_jobs", "evaluate_captures"]


@dataclass
class RunStats:
    """Running figures of one run (the live view reads them from each :class:`RunEvent`)."""

    done: int = 0
    total: int = 0
    committed_this_run: int = 0
    failed: int = 0
    xruns: int = 0
    clipped_trials: int = 0
    errors: dict[str, list[int]] = field(default_factory=dict)    # model -> [wrong, n] on the DUT mic
    store_s: float = 0.0            # time spent committing (FLAC + fsync + transaction)
    audio_s: float = 0.0            # seconds of audio recorded (per trial, not per mic)

    def error_rate(self, model: str) -> float | None:
        wrong, n = self.errors.get(model, (0, 0))
        return wrong / n if n else None

    def account(self, rec: TrialRecord, label: str, dut_mic: str) -> None:
        """Count committed trial ``rec`` (its command was ``label``)."""
        self.done += 1
        self.committed_this_run += 1
        self.failed += int(rec.failed)
        self.xruns += rec.xruns
        self.clipped_trials += int(any(c.clipped for c in rec.captures))
        self.audio_s += float(rec.facts.get("record_s", 0.0))
        for e in rec.evaluations:
            if e.mic == dut_mic:
                wrong_n = self.errors.setdefault(e.model, [0, 0])
                wrong_n[0] += int(e.prediction != label)
                wrong_n[1] += 1

    def event(self, kind: str, **fields) -> RunEvent:
        """A :class:`RunEvent` of ``kind`` carrying these figures."""
        return RunEvent(kind, done=self.done, total=self.total, failed_trials=self.failed, xruns=self.xruns,
                        clipped_trials=self.clipped_trials,
                        errors={m: (w, n) for m, (w, n) in self.errors.items()}, **fields)


@dataclass
class RunResult:
    """How a run ended: ``reason`` is finished | stopped | quit | skipped."""

    reason: str
    stats: RunStats
    skipped_placements: list[str] = field(default_factory=list)


class Runner:
    """Runs the pending trials of one session.

    Parameters
    ----------
    store : the open session store (the runner takes its lock).
    rig, plan : the session's rig and plan (as stored in the session).
    models : the zoo adapter used to load source and evaluation models.
    backend : an open :class:`~testbed.audio.AudioBackend`; default: ``open_backend(rig)``.
    calibration : the rig's calibration profile or None.
    prompt_move : on physical rigs without a positioner, called with a :class:`MoveRequest`;
        returns ``"ok"``, ``"skip"`` (skip that placement's trials this run) or ``"quit"``.
    positioner : a :class:`testbed.serial.Positioner` (``move_to(x_m, y_m)``) carrying one speaker;
        default: opened from the rig's ``[positioner]`` when a physical rig has one.
    dut : a :class:`testbed.serial.DutClient`; default: opened from ``[dut.serial]`` when the rig's
        ``dut.transport`` is ``"serial"``. Its answers are stored with ``eval_source = "serial"``.
    on_event : called with every :class:`~testbed.session.events.RunEvent` of the run: ``start``
        first, ``stop`` last, one ``trial`` per committed trial.
    should_stop : polled between trials; True ends the run cleanly (resumable).
    executor : runs crafting batches and (simulated rigs only) trials elsewhere, e.g. a
        :class:`testbed.scale.DaskExecutor`; it has ``craft(perturbations, jobs)`` yielding
        ``(CraftJob, deltas)`` and ``run_trials(runner, specs)`` yielding
        :class:`TrialRecord` objects in any order. This process still commits every trial.
    craft_cache : a content-addressed perturbation cache (``key(...)``, ``get(key)``,
        ``put(key, signal)``, e.g. :class:`testbed.scale.PerturbationCache`) consulted before
        crafting and filled after, so perturbations made ahead (``testbed attack craft``) are reused.
    suspend_clock : ``(clock, sleep)`` for the suspenders' pause loop (tests); default real time.
        The suspenders themselves come from the rig's and the plan's ``[suspenders]``
        (:mod:`testbed.session.suspenders`): they pause the run (``pause`` / ``resume`` events).
    """

    def __init__(
        self,
        store: SessionStore,
        rig: Rig,
        plan: Plan,
        models: Models,
        *,
        backend=None,
        calibration: object | None = None,
        prompt_move: Callable[[MoveRequest], str] | None = None,
        positioner=None,
        dut=None,
        on_event: Callable[[RunEvent], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        executor=None,
        craft_cache=None,
        suspend_clock: tuple[Callable[[], float], Callable[[float], None]] | None = None,
    ) -> None:
        self.store = store
        self.rig = rig
        self.plan = plan
        self.models = models
        self.calibration = calibration
        self._backend = backend
        self.prompt_move = prompt_move
        self.positioner = positioner
        self.dut = dut
        self.on_event = on_event or (lambda e: None)
        self.should_stop = should_stop
        self.executor = executor
        self.sr = rig.sample_rate
        self.eval_models = plan.eval_models(rig)
        self.perturbations = Perturbations(store, rig, plan, models, executor=executor, cache=craft_cache,
                                           emit=self.on_event, should_stop=should_stop)
        self.attacks = self.perturbations.attacks
        self._specs: dict[int, TrialSpec] | None = None
        self.suspend_clock = suspend_clock
        self._streams: dict = {}   # r6-blackbox: streaming attack id -> predictor

    # -- public ---------------------------------------------------------------
    def run(self) -> RunResult:
        """Craft what is missing, then run every pending trial; returns how the run ended."""
        store = self.store
        if self.executor is not None and self.rig.is_physical:
            raise SessionError(f"--cluster: rig {self.rig.name!r} is physical ({self.rig.backend}): its trials "
                               f"run where the speakers are; use --cluster none (perturbations can be crafted "
                               f"ahead with 'testbed attack craft PLAN --rig RIG --cluster ...')")
        store.lock()
        stats = RunStats()
        started, reason, message = False, "error", None
        try:
            store.recover()
            pending = store.pending()
            stats.total = len(store.planned())
            stats.done = stats.total - len(pending)
            store.event("started", f"{len(pending)} of {stats.total} trials pending")
            self.on_event(stats.event("start", message=f"{len(pending)} of {stats.total} trials pending"))
            started = True
            result, message = self._run(pending, stats)
            reason = result.reason
            store.event(reason if reason != "skipped" else "stopped", message)
            return result
        except KeyboardInterrupt:
            reason = "interrupted"
            message = f"interrupted; {stats.done} of {stats.total} trials done"
            store.event("interrupted", message)
            raise
        except Exception as exc:  # record why the run died, then let it surface
            message = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, SessionError):
                store.event("error", message)
            if started:
                self.on_event(stats.event("failure", message=message))
            raise
        finally:
            store.unlock()
            if started:
                self.on_event(stats.event("stop", reason=reason, message=message))

    def trial_context(self, evaluator: Evaluator | None = None) -> TrialContext:
        """What every trial of this session shares (``evaluator`` scores the captures)."""
        return TrialContext.of(self.rig, self.plan, self.calibration, evaluator)

    def trial_input(self, spec: TrialSpec) -> TrialInput:
        """``spec`` with its command and its (already crafted) perturbation."""
        p = self.perturbations
        note = p.channel_note(spec.attack_id)
        notes = (note,) if note else ()
        cfg = self.attacks[spec.attack_id]
        if is_streaming(cfg):   # the adversary responds in the trial
            return TrialInput(spec, p.utterance(spec.utterance_id), None, notes, stream=self._streams[spec.attack_id])
        return TrialInput(spec, p.utterance(spec.utterance_id), p.get(spec.utterance_id, spec.attack_id), notes,
                          loop=is_looped(cfg))

    # -- scheduling ---------------------------------------------------------------
    def _run(self, pending: list[TrialSpec], stats: RunStats) -> tuple[RunResult, str]:
        """Craft, then run ``pending`` here or on the executor; the result and a line for the log."""
        if not pending:
            return RunResult("finished", stats), "nothing left to run"
        loaded = {m: self.models.load(m) for m in self.eval_models}
        # r6-blackbox: the query trials of in-the-loop attacks are played by BlackBoxLoop
        loop = BlackBoxLoop.query_trials(self, pending)
        pending = [t for t in pending if t not in loop]
        self.perturbations.craft_all(pending)
        streaming = [t.attack_id for t in pending if is_streaming(self.attacks[t.attack_id])]
        if self.should_stop():
            return RunResult("stopped", stats), "stopped by the operator before the first trial"
        if self.executor is not None:
            if loop or streaming or BlackBoxLoop.needed(self, pending):
                raise SessionError("--cluster: black-box attacks with the DUT in the loop (oracle = 'dut') and "
                                   "streaming attacks play here; use --cluster none")
            result = self._run_elsewhere(pending, stats)
        else:
            backend = self._backend or open_backend(self.rig, self.calibration, seed=self.plan.seed)
            opened = self._open_devices(loop + pending)
            try:
                ctx = self.trial_context(Evaluator(self.models, loaded, self.sr))
                self._streams = prepare_predictors(self, streaming)
                if not BlackBoxLoop(self, backend, ctx, stats).run(loop + pending):
                    return RunResult("stopped", stats), f"stopped by the operator; {stats.done} of {stats.total} trials done"
                result = self._run_here(pending, backend, ctx, stats)
            finally:
                if self._backend is None:
                    backend.close()
                for dev in opened:
                    dev.close()
        skipped = result.skipped_placements
        return result, (f"{stats.done} of {stats.total} trials done"
                        + (f"; skipped placements {', '.join(skipped)}" if skipped else ""))

    def _open_devices(self, pending: list[TrialSpec]) -> list:
        """Open the serial DUT and the positioner the rig names, when not given; returns what was opened."""
        opened = []
        rig = self.rig
        if self.dut is None and rig.dut.transport == "serial":
            from testbed.serial import DutClient

            self.dut = DutClient.open(rig.dut.serial)
            opened.append(self.dut)
        moves = {t.placement for t in pending} - {None}
        if self.positioner is None and rig.positioner is not None and rig.is_physical and moves:
            from testbed.serial import Positioner

            self.positioner = Positioner.open(rig.positioner, rig.room.size_m)
            opened.append(self.positioner)
            self.positioner.home()
        return opened

    def _run_here(self, pending: list[TrialSpec], backend, ctx: TrialContext, stats: RunStats) -> RunResult:
        current: object = object()   # no placement set up yet
        confirmed_at: float | None = None
        skipped: list[str] = []
        sus = self._suspenders(backend)
        for spec in pending:
            if self.should_stop():
                return RunResult("stopped", stats, skipped)
            if spec.placement in skipped:
                continue
            if spec.placement != current:
                answer, confirmed_at = set_placement(
                    self.rig, spec.placement, positioner=self.positioner, prompt_move=self.prompt_move,
                    log=self.store.event, on_wait=lambda req: self.on_event(
                        stats.event("pause", placement=req.placement, message=req.describe())))
                if answer == "quit":
                    return RunResult("quit", stats, skipped)
                if answer == "skip":
                    skipped.append(spec.placement)
                    msg = f"placement {spec.placement} skipped by the operator"
                    self.store.event("skipped", msg)
                    self.on_event(stats.event("pause", placement=spec.placement, message=msg))
                    continue
                current = spec.placement

            def retry(attempt: int, why: str, spec: TrialSpec = spec) -> None:
                self.on_event(stats.event("retry", attempt=attempt, message=why, **self._describe(spec)))

            take_injection(self.store.path, backend, self.store.event)   # `testbed session inject`
            # -- suspenders (issue 23): pause while a condition trips; a rejected trial is played again
            rec = None
            while rec is None:
                if sus is not None and not sus.hold(spec.placement, should_stop=self.should_stop,
                                                    **self._pause_hooks(stats, spec)):
                    return RunResult("stopped", stats, skipped)
                rec = run_trial(self.trial_input(spec), ctx, backend, self.dut, on_retry=retry)
                if sus is not None and sus.reject(rec):
                    rec = None
            # -- end suspenders
            rec.placement_confirmed_at = confirmed_at
            self._commit(rec, spec, stats)
        return RunResult("skipped" if skipped else "finished", stats, skipped)

    def _run_elsewhere(self, pending: list[TrialSpec], stats: RunStats) -> RunResult:
        """Simulated trials computed by ``executor``; each result is committed here, once."""
        for rec in self.executor.run_trials(self, pending):
            self._commit(rec, self._spec(rec.trial_id), stats)
            if self.should_stop():
                return RunResult("stopped", stats)
        return RunResult("finished", stats)

    # -- suspenders (issue 23) ----------------------------------------------------------------
    def _suspenders(self, backend):
        from testbed.session.suspenders import Suspenders

        clock = dict(zip(("clock", "sleep"), self.suspend_clock)) if self.suspend_clock else {}
        return Suspenders.build(self.plan.suspender_options(self.rig), self.rig, self.calibration, backend=backend,
                                dut=self.dut, positioner=self.positioner, session_dir=self.store.path, **clock)

    def _pause_hooks(self, stats: RunStats, spec: TrialSpec) -> dict:
        def on_pause(reason: str) -> None:
            self.store.event("paused", reason)
            self.on_event(stats.event("pause", message=reason, **self._describe(spec)))

        def on_resume(message: str) -> None:
            self.store.event("resumed", message)
            self.on_event(stats.event("resume", message=message, **self._describe(spec)))

        return {"on_pause": on_pause, "on_resume": on_resume}

    # -- committing: the one path every record takes ---------------------------------
    def _commit(self, rec: TrialRecord, spec: TrialSpec, stats: RunStats) -> None:
        t0 = time.perf_counter()
        self.store.commit_trial(rec, self.sr)
        stats.store_s += time.perf_counter() - t0
        stats.account(rec, spec.label, self.rig.dut.mic)
        dut = [e for e in rec.evaluations if e.mic == self.rig.dut.mic]
        self.on_event(stats.event(
            "trial", predictions={e.model: e.prediction for e in dut},
            correct={e.model: e.prediction == spec.label for e in dut},
            failed=rec.failed, attempt=rec.attempts, message=rec.error, **self._describe(spec)))

    def _describe(self, spec: TrialSpec) -> dict:
        cfg = self.attacks[spec.attack_id]
        return dict(trial_id=spec.trial_id, label=spec.label, attack=spec.attack_id, attack_kind=cfg.kind,
                    eps=cfg.eps, delay_ms=spec.delay_ms, placement=spec.placement)

    def _spec(self, trial_id: int) -> TrialSpec:
        if self._specs is None:
            self._specs = {t.trial_id: t for t in self.store.planned()}
        return self._specs[trial_id]
