"""The session runner: craft perturbations once, then play, record, evaluate and commit each trial.

The runner never prints. It reports through callbacks (``on_event`` for the live view,
``prompt_move`` for an operator moving a speaker on a physical rig) and stops cleanly
between trials when ``should_stop()`` turns true. Every committed trial is final; a
trial interrupted before its commit is discarded by the next run's recovery and redone.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from testbed.audio import Playback, open_backend
from testbed.errors import DeviceError, SessionError
from testbed.rig import Rig, geometry_table
from testbed.session.deps import LoadedModel, Models, make_attack
from testbed.session.plan import Plan
from testbed.session.store import CaptureRecord, EvalRecord, SessionStore, TrialRecord, safe_name
from testbed.session.timing import eval_window, snr_db, spr_db, trial_timing
from testbed.session.trials import AttackConfig, TrialSpec

#: Utterances crafted together in one attack batch.
CRAFT_BATCH = 16


@dataclass(frozen=True)
class MoveRequest:
    """Ask the operator (or a positioner) to move things to a placement."""

    placement: str
    moves: dict[str, tuple[float, float, float]]     # speaker/mic name -> position_m

    def describe(self) -> str:
        """One line for the operator, e.g. "Move adversary to P2 (x=3.5 m, y=2.5 m, z=1 m)"."""
        parts = [f"{name} to {self.placement} (x={p[0]:g} m, y={p[1]:g} m, z={p[2]:g} m)"
                 for name, p in self.moves.items()]
        return "Move the " + "; the ".join(parts) if parts else f"Set up placement {self.placement}"


@dataclass
class RunStats:
    """Running figures for the live view."""

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


@dataclass
class TrialEvent:
    """What the runner reports after each committed trial."""

    spec: TrialSpec
    attack: AttackConfig
    failed: bool
    error: str | None
    predictions: dict[str, str | None]        # model -> prediction on the DUT mic
    stats: RunStats


@dataclass
class RunResult:
    """How a run ended: ``reason`` is finished | stopped | quit | skipped."""

    reason: str
    stats: RunStats
    skipped_placements: list[str] = field(default_factory=list)


def _stable_int(*parts: object) -> int:
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "little")


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
    on_event : called with a :class:`TrialEvent` after each committed trial, and with a
        ``(stage, done, total)`` tuple while crafting perturbations.
    should_stop : polled between trials; True ends the run cleanly (resumable).
    executor : runs crafting batches and (simulated rigs only) trials elsewhere, e.g. a
        :class:`testbed.scale.DaskExecutor`; it has ``craft(runner, jobs)`` yielding
        ``(CraftJob, deltas)`` and ``run_trials(runner, specs)`` yielding
        :class:`TrialRecord` objects in any order. This process still commits every trial.
    craft_cache : a content-addressed perturbation cache (``key(...)``, ``get(key)``,
        ``put(key, signal)``, e.g. :class:`testbed.scale.PerturbationCache`) consulted before
        crafting and filled after, so perturbations made ahead (``testbed attack craft``) are reused.
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
        on_event: Callable[[object], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        executor=None,
        craft_cache=None,
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
        self.craft_cache = craft_cache
        self.sr = rig.sample_rate
        self.mics = plan.mics(rig)
        self.eval_models = plan.eval_models(rig)
        self.attacks = store.attacks()
        self.tail_s = plan.timing.tail_s if plan.timing.tail_s is not None else rig.hardware.tail_s
        self._utt_cache: dict[str, np.ndarray] = {}

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
        try:
            store.recover()
            pending = store.pending()
            stats.total = len(store.planned())
            stats.done = stats.total - len(pending)
            store.event("started", f"{len(pending)} of {stats.total} trials pending")
            if not pending:
                store.event("finished", "nothing left to run")
                return RunResult("finished", stats)
            loaded = {m: self.models.load(m) for m in self.eval_models}
            self.craft_all(pending)
            if self.should_stop():
                store.event("stopped", "stopped by the operator before the first trial")
                return RunResult("stopped", stats)
            if self.executor is not None:
                result = self._run_trials_elsewhere(pending, stats)
                store.event(result.reason, f"{stats.done} of {stats.total} trials done")
                return result
            backend = self._backend or open_backend(self.rig, self.calibration, seed=self.plan.seed)
            opened = self._open_devices(pending)
            try:
                result = self._run_trials(pending, backend, loaded, stats)
            finally:
                if self._backend is None:
                    backend.close()
                for dev in opened:
                    dev.close()
            store.event(result.reason if result.reason != "skipped" else "stopped",
                        f"{stats.done} of {stats.total} trials done"
                        + (f"; skipped placements {', '.join(result.skipped_placements)}"
                           if result.skipped_placements else ""))
            return result
        except KeyboardInterrupt:
            store.event("interrupted", f"interrupted; {stats.done} of {stats.total} trials done")
            raise
        except SessionError:
            raise
        except Exception as exc:  # record why the run died, then let it surface
            store.event("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            store.unlock()

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

    # -- crafting ---------------------------------------------------------------
    def perturbation_path(self, utterance_id: str, attack_id: str) -> str:
        return f"perturbations/{safe_name(utterance_id)}__{safe_name(attack_id)}.wav"

    def utterance(self, utterance_id: str) -> np.ndarray:
        if utterance_id not in self._utt_cache:
            self._utt_cache[utterance_id] = self.store.read_utterance(utterance_id)
        return self._utt_cache[utterance_id]

    def perturbation(self, utterance_id: str, attack_id: str) -> np.ndarray | None:
        """The cached perturbation (float32 (n_samples,)), None for no attack."""
        if self.attacks[attack_id].is_none:
            return None
        sig = self.store.read_cached(self.perturbation_path(utterance_id, attack_id))
        if sig is None:
            raise SessionError(f"{self.store.path}: perturbation for {utterance_id} / {attack_id} is missing; "
                               f"run 'testbed session resume {self.store.session_id}' to craft it")
        return sig

    def craft_all(self, trials: list[TrialSpec]) -> int:
        """Craft every perturbation ``trials`` need that is not cached yet; returns how many.

        Utterances are crafted in fixed batches (sorted ids of the whole plan, ``CRAFT_BATCH`` at a
        time, seeded per batch), so a run resumed half-way through crafting makes exactly the
        perturbations an uninterrupted run would. Batches run on ``executor`` when there is one;
        perturbations found in ``craft_cache`` are copied, not crafted.
        """
        wanted = {(t.utterance_id, t.attack_id) for t in trials if not self.attacks[t.attack_id].is_none}
        labels: dict[str, dict[str, str]] = {}
        for t in self.store.planned():
            if not self.attacks[t.attack_id].is_none:
                labels.setdefault(t.attack_id, {})[t.utterance_id] = t.label

        def cached(uid: str, aid: str) -> bool:
            return (self.store.path / self.perturbation_path(uid, aid)).is_file()

        jobs = []
        for job in craft_jobs(self.plan.seed, labels):
            missing = [u for u, _ in job.chunk if (u, job.attack_id) in wanted and not cached(u, job.attack_id)]
            if missing:
                jobs.append(CraftJob(job.attack_id, job.chunk, missing, job.seed))
        total = sum(len(j.missing) for j in jobs)
        done = 0
        self.on_event(("craft", done, total))
        if self.craft_cache is not None:
            todo = []
            for job in jobs:
                hits = self._from_cache(job)
                if hits is None:
                    todo.append(job)
                    continue
                for uid, d in hits.items():
                    self.store.write_cached(self.perturbation_path(uid, job.attack_id), d, self.sr)
                done += len(job.missing)
                self.on_event(("craft", done, total))
            jobs = todo
        if self.executor is not None:
            results = self.executor.craft(self, jobs)
        else:
            results = self._craft_here(jobs)
        for job, deltas in results:
            for (uid, _), d in zip(job.chunk, deltas):
                if uid in job.missing:
                    self.store.write_cached(self.perturbation_path(uid, job.attack_id), d, self.sr)
            if self.craft_cache is not None:
                self._to_cache(job, deltas)
            done += len(job.missing)
            self.on_event(("craft", done, total))
            if self.should_stop():
                return done
        return done

    def _craft_here(self, jobs: list["CraftJob"]):
        for job in jobs:
            if self.should_stop():
                return
            yield job, self._craft(self.attacks[job.attack_id], job)

    def craft_request(self, cfg: AttackConfig, job: "CraftJob") -> "CraftRequest":
        """The pure inputs of crafting one batch: clips, label indices, kind, bound and parameters."""
        src = self.models.load(cfg.source_model)
        sigs = [self.utterance(u) for u, _ in job.chunk]
        # the model takes exactly one clip, and the DUT is scored on the clip that starts with the
        # command: a longer utterance is attacked on its first clip_samples (the perturbation
        # then covers what the DUT hears), a shorter one is zero-padded
        n = src.clip_samples
        x = np.zeros((len(sigs), n), dtype=np.float32)
        for i, s in enumerate(sigs):
            x[i, : min(len(s), n)] = s[:n]
        y = np.array([src.labels.index(lab) for _, lab in job.chunk], dtype=np.int64)
        target = None
        if cfg.target != "untargeted":
            target = np.full_like(y, src.labels.index(cfg.target))
        params = dict(cfg.params)
        params.setdefault("seed", job.seed)
        if cfg.kind.startswith("ota-"):
            delays = self.plan.sweep.delay_ms
            params.setdefault("rig", self.rig)
            params.setdefault("mics", [self.rig.dut.mic])
            params.setdefault("delay_ms", (min(delays), max(delays)))
        return CraftRequest(cfg.kind, float(cfg.eps), cfg.source_model, src.model_hash, x, y, target, params)

    def _craft(self, cfg: AttackConfig, job: "CraftJob") -> list[np.ndarray]:
        req = self.craft_request(cfg, job)
        return list(craft_batch(self.models.load(cfg.source_model).module, req))

    def _cache_keys(self, job: "CraftJob") -> list[str]:
        cfg = self.attacks[job.attack_id]
        src_hash = self.models.model_hash(cfg.source_model)
        desc = {k: v for k, v in cfg.as_dict().items() if k != "attack_id"}
        if cfg.kind.startswith("ota-"):   # the channel is part of the attack
            desc["rig"] = self.rig.model_dump(mode="json")
            desc["mics"] = [self.rig.dut.mic]
            desc["delay_ms"] = [min(self.plan.sweep.delay_ms), max(self.plan.sweep.delay_ms)]
        return [self.craft_cache.key(self.utterance(uid), desc, src_hash, job.seed, i)
                for i, (uid, _) in enumerate(job.chunk)]

    def _from_cache(self, job: "CraftJob") -> dict[str, np.ndarray] | None:
        keys = dict(zip((u for u, _ in job.chunk), self._cache_keys(job)))
        out = {}
        for uid in job.missing:
            sig = self.craft_cache.get(keys[uid])
            if sig is None:
                return None
            out[uid] = sig
        return out

    def _to_cache(self, job: "CraftJob", deltas) -> None:
        for key, d in zip(self._cache_keys(job), deltas):
            self.craft_cache.put(key, np.asarray(d, dtype=np.float32), self.sr)

    # -- trials -------------------------------------------------------------------
    def _run_trials(self, pending: list[TrialSpec], backend, loaded: dict[str, LoadedModel],
                    stats: RunStats) -> RunResult:
        current: object = object()   # no placement set up yet
        confirmed_at: float | None = None
        skipped: list[str] = []
        for spec in pending:
            if self.should_stop():
                return RunResult("stopped", stats, skipped)
            if spec.placement in skipped:
                continue
            if spec.placement != current:
                answer, confirmed_at = self._set_placement(spec.placement)
                if answer == "quit":
                    return RunResult("quit", stats, skipped)
                if answer == "skip":
                    skipped.append(spec.placement)
                    self.store.event("skipped", f"placement {spec.placement} skipped by the operator")
                    continue
                current = spec.placement
            rec = self._run_one(spec, backend, loaded)
            rec.placement_confirmed_at = confirmed_at
            t0 = time.perf_counter()
            self.store.commit_trial(rec, self.sr)
            stats.store_s += time.perf_counter() - t0
            stats.audio_s += float(rec.facts.get("record_s", 0.0))
            self._account(stats, spec, rec)
            cfg = self.attacks[spec.attack_id]
            preds = {e.model: e.prediction for e in rec.evaluations if e.mic == self.rig.dut.mic}
            self.on_event(TrialEvent(spec, cfg, rec.failed, rec.error, preds, stats))
        return RunResult("skipped" if skipped else "finished", stats, skipped)

    def _run_trials_elsewhere(self, pending: list[TrialSpec], stats: RunStats) -> RunResult:
        """Simulated trials computed by ``executor``; each result is committed here, once."""
        for rec in self.executor.run_trials(self, pending):
            t0 = time.perf_counter()
            self.store.commit_trial(rec, self.sr)
            stats.store_s += time.perf_counter() - t0
            stats.audio_s += float(rec.facts.get("record_s", 0.0))
            spec = self._spec(rec.trial_id)
            self._account(stats, spec, rec)
            preds = {e.model: e.prediction for e in rec.evaluations if e.mic == self.rig.dut.mic}
            self.on_event(TrialEvent(spec, self.attacks[spec.attack_id], rec.failed, rec.error, preds, stats))
            if self.should_stop():
                return RunResult("stopped", stats)
        return RunResult("finished", stats)

    def _spec(self, trial_id: int) -> TrialSpec:
        if not hasattr(self, "_specs"):
            self._specs = {t.trial_id: t for t in self.store.planned()}
        return self._specs[trial_id]

    def _set_placement(self, placement: str | None) -> tuple[str, float | None]:
        if placement is None or not self.rig.is_physical:
            return "ok", None
        moves = dict(self.rig.placements[placement])
        if self.positioner is not None:
            spk = self.rig.positioner.speaker if self.rig.positioner else self.rig.adversary_speaker
            if spk in moves:
                x, y, _ = moves[spk]
                self.positioner.move_to(x, y)
                self.store.event("moved", f"positioner moved {spk} to {placement} (x={x:g} m, y={y:g} m)")
            others = {k: v for k, v in moves.items() if k != spk}
            if not others:
                return "ok", time.time()
            moves = others   # the rest is for the operator
            if self.prompt_move is None:
                raise SessionError(f"rig {self.rig.name!r}: placement {placement} also moves "
                                   f"{', '.join(others)}, which the positioner does not carry; run from a terminal")
        if self.prompt_move is None:
            raise SessionError(f"rig {self.rig.name!r}: placement {placement} needs an operator or a "
                               f"positioner; run the session from a terminal")
        answer = self.prompt_move(MoveRequest(placement, moves))
        if answer == "ok":
            self.store.event("moved", f"operator confirmed placement {placement}")
        return answer, time.time()

    def _run_one(self, spec: TrialSpec, backend, loaded: dict[str, LoadedModel]) -> TrialRecord:
        rig = self.rig
        cfg = self.attacks[spec.attack_id]
        clean = self.utterance(spec.utterance_id)
        delta = self.perturbation(spec.utterance_id, spec.attack_id)
        timing = trial_timing(rig, spec.placement, len(clean), 0 if delta is None else len(delta),
                              spec.delay_ms, self.plan.sweep.delay_reference,
                              preroll_s=self.plan.timing.preroll_s, tail_s=self.tail_s,
                              calibration=self.calibration)
        user, adv = rig.user_speaker, rig.adversary_speaker
        plays = {user: Playback(clean, timing.offsets_samples[user])}
        if delta is not None:
            plays[adv] = Playback(delta, timing.offsets_samples[adv])
        started = time.time()
        attempts, cap = 0, None
        last_exc: Exception | None = None
        while attempts <= self.plan.timing.retries:
            attempts += 1
            pending_dut = None
            if self.dut is not None and rig.is_physical:   # the DUT listens with its own mic
                pending_dut = self.dut.begin(f"{spec.trial_id}-{attempts}", timing.record_s * 1e3)
            if hasattr(backend, "trial_index"):
                # the simulator's noise follows the trial, so a resumed run equals an uninterrupted one
                backend.trial_index = spec.trial_id * 16 + attempts
            try:
                cap = backend.run_trial(plays, timing.record_s, placement=spec.placement)
            except DeviceError as exc:
                last_exc = exc
                cap = None
                continue
            if cap.facts.xruns == 0:
                break
        dut_result = None
        if self.dut is not None:
            if pending_dut is not None:
                dut_result = self.dut.finish(pending_dut)
            else:   # simulated rig: inject what the DUT mic captured
                dut_result = self.dut.evaluate(f"{spec.trial_id}-{attempts}", cap.mics[rig.dut.mic],
                                               sample_rate=self.sr)
        if cap is None:
            raise DeviceError(f"trial {spec.trial_id}: {last_exc} (after {attempts} attempts)")
        failed = cap.facts.xruns > 0
        error = f"{cap.facts.xruns} xrun(s) on every one of {attempts} attempts" if failed else None
        missing = [m for m in self.mics if m not in cap.mics]
        if missing:
            raise DeviceError(f"backend {getattr(backend, 'name', '?')}: returned no capture for mic(s) "
                              f"{', '.join(missing)}")

        facts = cap.facts.as_dict() if hasattr(cap.facts, "as_dict") else dict(vars(cap.facts))
        realised = dict(facts.get("realised_offsets_samples") or {}) or dict(timing.offsets_samples)
        geo = geometry_table(rig, spec.placement)
        delays = timing.path_delay_samples
        realised_delay_ms = None
        if delta is not None:
            r_user = realised.get(user, timing.offsets_samples[user])
            r_adv = realised.get(adv, timing.offsets_samples[adv])
            rel = r_adv - r_user
            if self.plan.sweep.delay_reference == "arrival":
                rel += delays[adv][rig.dut.mic] - delays[user][rig.dut.mic]
            realised_delay_ms = rel / self.sr * 1e3
        user_start = realised.get(user, timing.offsets_samples[user])
        noise_n = int(min(realised.values()) if realised else 0)

        captures: list[CaptureRecord] = []
        windows: dict[str, np.ndarray] = {}
        arrivals = dict(facts.get("arrival_offsets_samples") or {})
        for mic in self.mics:
            sig = np.asarray(cap.mics[mic], dtype=np.float32)
            start = float((arrivals.get(user) or {}).get(mic, user_start + delays[user][mic]))
            windows[mic] = (sig, start)
            g_u = geo[user][mic]
            g_a = geo[adv][mic] if adv is not None else None
            arrival = None
            if delta is not None:
                adv_arr = (arrivals.get(adv) or {}).get(mic, realised.get(adv, 0.0) + delays[adv][mic])
                arrival = (float(adv_arr) - start) / self.sr * 1e3
            captures.append(CaptureRecord(
                mic=mic, signal=sig, clipped=int((facts.get("clipped_samples") or {}).get(mic, 0)),
                peak_dbfs=(facts.get("mic_peak_dbfs") or {}).get(mic),
                rms_dbfs=(facts.get("mic_rms_dbfs") or {}).get(mic),
                spr_db=spr_db(rig, clean, delta, g_u.distance_m, g_a.distance_m if g_a else None),
                snr_db=snr_db(sig, noise_n, start, len(clean)),
                arrival_delay_ms=arrival,
                dist_user_m=g_u.distance_m, dist_adv_m=g_a.distance_m if g_a else None,
                angle_user_deg=g_u.angle_deg, angle_adv_deg=g_a.angle_deg if g_a else None))

        evaluations = self.evaluate(windows, loaded, "live")
        if dut_result is not None:
            evaluations.append(self._serial_eval(dut_result))
            facts["dut"] = dut_result.as_dict()
        adv_pos = rig.positions(spec.placement)[adv] if adv is not None else None
        facts["record_s"] = timing.record_s
        facts["planned_offsets_samples"] = dict(timing.offsets_samples)
        facts["command_start_samples"] = {mic: float(st) for mic, (_, st) in windows.items()}
        facts["dut_mic"] = rig.dut.mic
        played = {user: (clean, plays[user].offset_samples)}
        if delta is not None:
            played[adv] = (delta, plays[adv].offset_samples)
        return TrialRecord(
            trial_id=spec.trial_id, captures=captures, evaluations=evaluations, played=played,
            realised_delay_ms=realised_delay_ms, xruns=int(cap.facts.xruns), failed=failed, error=error,
            attempts=attempts, started_at=started, finished_at=time.time(),
            adv_pos_m=tuple(adv_pos) if adv_pos is not None else None, facts=facts)

    def _serial_eval(self, res) -> EvalRecord:
        info = self.dut.info
        labels = list(info.labels) if info is not None else []
        scores = {lab: float(v) for lab, v in zip(labels, res.scores or [])}
        return EvalRecord(mic=self.rig.dut.mic, model=info.model if info is not None else "dut",
                          model_hash=None, eval_source="serial", prediction=res.label if res.ok else None,
                          score_top=max(scores.values()) if scores and res.ok else None, scores=scores)

    def evaluate(self, windows: dict[str, tuple[np.ndarray, float]], loaded: dict[str, LoadedModel],
                 source: str) -> list[EvalRecord]:
        """Evaluate each capture window with each model (one batch per model)."""
        return evaluate_captures(self.models, windows, loaded, source, self.sr)

    def _account(self, stats: RunStats, spec: TrialSpec, rec: TrialRecord) -> None:
        stats.done += 1
        stats.committed_this_run += 1
        stats.failed += int(rec.failed)
        stats.xruns += rec.xruns
        stats.clipped_trials += int(any(c.clipped for c in rec.captures))
        for e in rec.evaluations:
            if e.mic == self.rig.dut.mic:
                wrong_n = stats.errors.setdefault(e.model, [0, 0])
                wrong_n[0] += int(e.prediction != spec.label)
                wrong_n[1] += 1


@dataclass(frozen=True)
class CraftJob:
    """One crafting batch: ``chunk`` (utterance_id, label) pairs crafted together with ``seed``;
    ``missing`` lists the utterance ids whose perturbation is wanted."""

    attack_id: str
    chunk: list[tuple[str, str]]
    missing: list[str]
    seed: int


@dataclass
class CraftRequest:
    """Everything crafting one batch needs besides the source model: arrays and plain config.

    ``x`` float32 (B, n_samples) clips, ``y`` int64 (B,) label indices, ``target`` int64 (B,)
    or None; ``params`` the attack's hyper-parameters including ``seed``.
    """

    kind: str
    eps: float
    source_model: str
    source_hash: str | None
    x: np.ndarray
    y: np.ndarray
    target: np.ndarray | None
    params: dict


def craft_jobs(plan_seed: int, labels: dict[str, dict[str, str]]) -> list[CraftJob]:
    """The fixed crafting batches of a plan: per attack id (sorted), its utterances sorted by id,
    ``CRAFT_BATCH`` at a time, each seeded from the plan seed, the attack id and the batch's ids.

    ``labels`` maps attack_id -> {utterance_id: label}; every utterance is marked missing.
    """
    out = []
    for aid in sorted(labels):
        items = sorted(labels[aid].items())
        for i in range(0, len(items), CRAFT_BATCH):
            chunk = items[i:i + CRAFT_BATCH]
            uids = [u for u, _ in chunk]
            out.append(CraftJob(aid, chunk, uids, _stable_int(plan_seed, aid, *uids)))
    return out


def craft_batch(module, req: CraftRequest) -> np.ndarray:
    """Craft one batch on ``module`` (the source model); returns float32 (B, n_delta_samples)."""
    import torch

    target = torch.from_numpy(req.target) if req.target is not None else None
    attack = make_attack(req.kind, module, req.eps, **req.params)
    delta = attack.perturb(torch.from_numpy(req.x), torch.from_numpy(req.y), target)
    return delta.detach().cpu().numpy().astype(np.float32)


def evaluate_captures(models: Models, windows: dict[str, tuple[np.ndarray, float]],
                      loaded: dict[str, LoadedModel], source: str, sample_rate: int) -> list[EvalRecord]:
    """Evaluations of every ``(capture, start)`` in ``windows`` by every model in ``loaded``.

    ``windows`` maps mic -> (capture float32 (n_samples,), start of the command in samples).
    """
    out: list[EvalRecord] = []
    mics = list(windows)
    for name, m in loaded.items():
        n = m.clip_samples
        if m.sample_rate != sample_rate:
            from scipy.signal import resample_poly

            g = np.gcd(m.sample_rate, sample_rate)
            xs = [resample_poly(eval_window(s, st, int(np.ceil(n * sample_rate / m.sample_rate))),
                                m.sample_rate // g, sample_rate // g)[:n] for s, st in windows.values()]
            x = np.stack([np.pad(v, (0, n - len(v))) for v in xs]).astype(np.float32)
        else:
            x = np.stack([eval_window(s, st, n) for s, st in windows.values()])
        pred, probs = models.predict(m, x)
        for i, mic in enumerate(mics):
            p = probs[i]
            out.append(EvalRecord(mic=mic, model=name, model_hash=m.model_hash, eval_source=source,
                                  prediction=m.labels[int(pred[i])], score_top=float(p[int(pred[i])]),
                                  scores={lab: round(float(v), 6) for lab, v in zip(m.labels, p)}))
    return out
