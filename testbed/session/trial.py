"""One trial, as data flowing one way: :func:`run_trial` plays a :class:`TrialInput`, captures
every mic, scores the captures and returns an uncommitted :class:`TrialRecord`.

It touches no store and keeps no state: the same input, context and backend give the same
record in this process and on a Dask worker, and a resumed run records what an
uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from testbed.audio import Playback
from testbed.errors import DeviceError
from testbed.rig import Rig, geometry_table
from testbed.session.audibility import trial_audibility
from testbed.session.deps import LoadedModel
from testbed.session.evaluation import evaluate_captures, serial_evaluation
from testbed.session.levels import trial_levels
from testbed.session.looped import looped_playback
from testbed.session.store import CaptureRecord, EvalRecord, TrialRecord
from testbed.session.timing import TrialTiming, snr_db, spr_db, trial_timing
from testbed.session.trials import TrialSpec

#: Noise indices of a trial's first attempts: ``trial_id * NOISE_STRIDE + attempt`` (as sessions
#: recorded so far used); later attempts take indices above :data:`OVERFLOW_BASE`, so no two
#: (trial, attempt) pairs ever share the simulator's noise.
NOISE_STRIDE = 16
OVERFLOW_BASE = 1 << 48


def noise_index(trial_id: int, attempt: int) -> int:
    """The simulator's ``trial_index`` for ``attempt`` (1-based) of ``trial_id``: one integer per
    pair, the same on every run."""
    if 0 < attempt < NOISE_STRIDE:
        return trial_id * NOISE_STRIDE + attempt
    return OVERFLOW_BASE + trial_id * (1 << 16) + attempt


@dataclass(frozen=True)
class TrialInput:
    """A planned trial with its signals: ``clean`` float32 (n_samples,) for the user speaker,
    ``delta`` float32 (n_samples,) for the adversary speaker, or None for no attack; ``notes``
    join the trial's notes (which channels the perturbation was crafted through)."""

    spec: TrialSpec
    clean: np.ndarray
    delta: np.ndarray | None
    notes: tuple[str, ...] = ()
    #: r6-blackbox: play ``delta`` as a loop whose phase is ``spec.delay_ms`` (universal kinds)
    loop: bool = False
    #: r6-blackbox: a streaming adversary, ``heard float32 (n,) -> perturbation float32 (n,)``
    #: (see :mod:`testbed.session.streaming`); ``delta`` is then made in the trial
    stream: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Evaluator:
    """Scores capture windows with loaded models (``models`` has ``predict(model, x)``)."""

    models: object
    loaded: Mapping[str, LoadedModel]
    sample_rate: int

    def __call__(self, windows: dict[str, tuple[np.ndarray, float]], source: str = "live") -> list[EvalRecord]:
        return evaluate_captures(self.models, windows, dict(self.loaded), source, self.sample_rate)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a session shares.

    ``mics`` are recorded and stored; ``delay_reference`` is ``"playback"`` or ``"arrival"``;
    ``preroll_s`` / ``tail_s`` the silence recorded before / after; ``retries`` how often an
    attempt with xruns or a device error is played again; ``evaluator`` scores the captures.
    """

    rig: Rig
    mics: tuple[str, ...]
    delay_reference: str
    preroll_s: float
    tail_s: float
    retries: int
    calibration: object | None = None
    evaluator: Evaluator | None = None

    @classmethod
    def of(cls, rig: Rig, plan, calibration: object | None = None,
           evaluator: Evaluator | None = None) -> TrialContext:
        """The context of ``plan`` (a :class:`~testbed.session.plan.Plan`) on ``rig``."""
        tail = plan.timing.tail_s if plan.timing.tail_s is not None else rig.hardware.tail_s
        return cls(rig, tuple(plan.mics(rig)), plan.sweep.delay_reference, plan.timing.preroll_s,
                   tail, plan.timing.retries, calibration, evaluator)


@dataclass
class _Take:
    cap: object
    attempts: int
    dut_result: object | None


def _play(trial: TrialInput, ctx: TrialContext, timing: TrialTiming, plays: dict, backend, dut,
          on_retry: Callable[[int, str], None]) -> _Take:
    """Play until an attempt has no xruns or the retries are spent; the DUT listens to each."""
    rig, spec = ctx.rig, trial.spec
    attempts, cap, pending_dut = 0, None, None
    last_exc: Exception | None = None
    while attempts <= ctx.retries:
        attempts += 1
        pending_dut = None
        if dut is not None and rig.is_physical:   # the DUT listens with its own mic
            pending_dut = dut.begin(f"{spec.trial_id}-{attempts}", timing.record_s * 1e3)
        if hasattr(backend, "trial_index"):
            # the simulator's noise follows the trial, so a resumed run equals an uninterrupted one
            backend.trial_index = noise_index(spec.trial_id, attempts)
        try:
            cap = backend.run_trial(plays, timing.record_s, placement=spec.placement)
        except DeviceError as exc:
            last_exc, cap, why = exc, None, str(exc)
        else:
            if cap.facts.xruns == 0:
                break
            why = f"{cap.facts.xruns} xrun(s)"
        if attempts <= ctx.retries:
            on_retry(attempts, why)
    dut_result = dut.finish(pending_dut) if pending_dut is not None else None
    if cap is None:
        raise DeviceError(f"trial {spec.trial_id}: {last_exc} (after {attempts} attempts)")
    if dut is not None and pending_dut is None:   # simulated rig: inject what the DUT mic captured
        dut_result = dut.evaluate(f"{spec.trial_id}-{attempts}", cap.mics[rig.dut.mic],
                                  sample_rate=rig.sample_rate)
    return _Take(cap, attempts, dut_result)


def run_trial(trial: TrialInput, ctx: TrialContext, backend, dut=None,
              clock: Callable[[], float] = time.time,
              on_retry: Callable[[int, str], None] | None = None) -> TrialRecord:
    """Play ``trial`` on ``backend``, record ``ctx.mics``, score them; the record is not committed.

    Parameters
    ----------
    backend : an open :class:`~testbed.audio.AudioBackend`.
    dut : a :class:`testbed.serial.DutClient`, or None; its answer joins the evaluations.
    clock : wall-clock seconds for ``started_at`` / ``finished_at``.
    on_retry : called with ``(attempt, why)`` before an attempt is played again.

    Raises
    ------
    DeviceError
        Every attempt failed on the device, or the backend left out a mic.
    """
    rig, spec, clean, delta = ctx.rig, trial.spec, trial.clean, trial.delta
    delay_ms, loop_facts, reference = spec.delay_ms, None, ctx.delay_reference
    if trial.loop and delta is not None:   # r6-blackbox: a universal loop, at phase delay_ms
        delta, delay_ms, loop_facts = looped_playback(delta, spec.delay_ms, len(clean), rig.sample_rate)
    if trial.stream is not None:           # r6-blackbox: the adversary responds to what it heard
        delta, delay_ms, loop_facts = _streamed(trial, ctx, backend)
        trial, reference = replace(trial, delta=delta), "playback"
    timing = trial_timing(rig, spec.placement, len(clean), 0 if delta is None else len(delta),
                          delay_ms, reference, preroll_s=ctx.preroll_s, tail_s=ctx.tail_s,
                          calibration=ctx.calibration)
    user, adv = rig.user_speaker, rig.adversary_speaker
    plays = {user: Playback(clean, timing.offsets_samples[user])}
    if delta is not None:
        plays[adv] = Playback(delta, timing.offsets_samples[adv])
    started = clock()
    take = _play(trial, ctx, timing, plays, backend, dut, on_retry or (lambda a, w: None))
    cap = take.cap
    missing = [m for m in ctx.mics if m not in cap.mics]
    if missing:
        raise DeviceError(f"backend {getattr(backend, 'name', '?')}: returned no capture for mic(s) "
                          f"{', '.join(missing)}")
    failed = cap.facts.xruns > 0
    facts = cap.facts.as_dict() if hasattr(cap.facts, "as_dict") else dict(vars(cap.facts))
    realised = dict(facts.get("realised_offsets_samples") or {}) or dict(timing.offsets_samples)
    captures, windows = _captures(trial, ctx, timing, cap, facts, realised)
    evaluations = ctx.evaluator(windows, "live") if ctx.evaluator is not None else []
    if take.dut_result is not None:
        evaluations.append(serial_evaluation(dut.info, take.dut_result, rig.dut.mic))
        facts["dut"] = take.dut_result.as_dict()
    adv_pos = rig.positions(spec.placement)[adv] if adv is not None else None
    facts["record_s"] = timing.record_s
    facts["planned_offsets_samples"] = dict(timing.offsets_samples)
    facts["command_start_samples"] = {mic: float(st) for mic, (_, st) in windows.items()}
    facts["dut_mic"] = rig.dut.mic
    # issue 23: the command's, perturbation's and ambient level at each mic, dBFS and dB SPL
    facts.update(trial_levels(rig, ctx.calibration, {s: p.signal for s, p in plays.items()}, facts,
                              {c.mic: c.signal for c in captures}, int(min(realised.values()) if realised else 0)))
    for key in ("source_rms_dbfs", "source_rms_dbfs_a"):   # now in facts["levels"]
        facts.pop(key, None)
    # issue 24: how audible the perturbation was, at the speaker and at each mic
    heard = trial_audibility(rig, plays, ctx.mics, spec.placement, backend, facts.get("levels") or {})
    if heard is not None:
        facts["audibility"] = heard
    if trial.notes:
        facts["notes"] = list(facts.get("notes") or []) + list(trial.notes)
    if loop_facts is not None:
        facts["streaming" if trial.stream is not None else "loop"] = loop_facts
    played = {name: (p.signal, p.offset_samples) for name, p in plays.items()}
    return TrialRecord(
        trial_id=spec.trial_id, captures=captures, evaluations=evaluations, played=played,
        realised_delay_ms=_realised_delay_ms(trial, ctx, timing, realised),
        xruns=int(cap.facts.xruns), failed=failed,
        error=f"{cap.facts.xruns} xrun(s) on every one of {take.attempts} attempts" if failed else None,
        attempts=take.attempts, started_at=started, finished_at=clock(),
        adv_pos_m=tuple(adv_pos) if adv_pos is not None else None, facts=facts)


def _streamed(trial: TrialInput, ctx: TrialContext, backend) -> tuple[np.ndarray, float, dict]:
    """Pass one of a streaming trial: the command alone, heard at the DUT mic from the moment the
    adversary starts listening (``spec.delay_ms`` before the user speaks); returns the adversary's
    response (float32 (lead + n,)), its start minus the user's in ms, and facts for the record."""
    rig, spec, clean = ctx.rig, trial.spec, trial.clean
    lead = max(0, int(round(spec.delay_ms * rig.sample_rate / 1000.0)))
    n_adv = lead + len(clean)
    delay_ms = -1000.0 * lead / rig.sample_rate
    timing = trial_timing(rig, spec.placement, len(clean), n_adv, delay_ms, "playback", preroll_s=ctx.preroll_s,
                          tail_s=ctx.tail_s, calibration=ctx.calibration)
    if hasattr(backend, "trial_index"):   # the simulator: the same moment, so the same noise
        backend.trial_index = noise_index(spec.trial_id, 1)
    cap = backend.run_trial({rig.user_speaker: Playback(clean, timing.offsets_samples[rig.user_speaker])},
                            timing.record_s, placement=spec.placement)
    start = int(round(timing.offsets_samples[rig.adversary_speaker]))
    heard = np.zeros(n_adv, dtype=np.float32)
    seg = np.asarray(cap.mics[rig.dut.mic], dtype=np.float32)[start:start + n_adv]
    heard[: len(seg)] = seg
    delta = np.asarray(trial.stream(heard), dtype=np.float32).reshape(-1)[:n_adv]
    return delta, delay_ms, {"lead_samples": lead, "heard_rms_dbfs": float(
        10.0 * np.log10(np.mean(np.square(heard, dtype=np.float64)) + 1e-20))}


def _realised_delay_ms(trial: TrialInput, ctx: TrialContext, timing: TrialTiming,
                       realised: dict[str, float]) -> float | None:
    """Adversary start minus user start as played (at the DUT mic for ``"arrival"``), ms."""
    if trial.delta is None:
        return None
    rig = ctx.rig
    user, adv = rig.user_speaker, rig.adversary_speaker
    delays = timing.path_delay_samples
    rel = realised.get(adv, timing.offsets_samples[adv]) - realised.get(user, timing.offsets_samples[user])
    if ctx.delay_reference == "arrival":
        rel += delays[adv][rig.dut.mic] - delays[user][rig.dut.mic]
    return rel / rig.sample_rate * 1e3


def _captures(trial: TrialInput, ctx: TrialContext, timing: TrialTiming, cap, facts: dict,
              realised: dict[str, float]) -> tuple[list[CaptureRecord], dict[str, tuple[np.ndarray, float]]]:
    """One :class:`CaptureRecord` per mic with its geometry and levels, and the windows to score
    (mic -> (capture, command start in samples))."""
    rig, clean, delta = ctx.rig, trial.clean, trial.delta
    user, adv = rig.user_speaker, rig.adversary_speaker
    sr = rig.sample_rate
    geo = geometry_table(rig, trial.spec.placement)
    delays = timing.path_delay_samples
    user_start = realised.get(user, timing.offsets_samples[user])
    noise_n = int(min(realised.values()) if realised else 0)
    arrivals = dict(facts.get("arrival_offsets_samples") or {})
    captures: list[CaptureRecord] = []
    windows: dict[str, tuple[np.ndarray, float]] = {}
    for mic in ctx.mics:
        sig = np.asarray(cap.mics[mic], dtype=np.float32)
        start = float((arrivals.get(user) or {}).get(mic, user_start + delays[user][mic]))
        windows[mic] = (sig, start)
        g_u = geo[user][mic]
        g_a = geo[adv][mic] if adv is not None else None
        arrival = None
        if delta is not None:
            adv_arr = (arrivals.get(adv) or {}).get(mic, realised.get(adv, 0.0) + delays[adv][mic])
            arrival = (float(adv_arr) - start) / sr * 1e3
        captures.append(CaptureRecord(
            mic=mic, signal=sig, clipped=int((facts.get("clipped_samples") or {}).get(mic, 0)),
            peak_dbfs=(facts.get("mic_peak_dbfs") or {}).get(mic),
            rms_dbfs=(facts.get("mic_rms_dbfs") or {}).get(mic),
            spr_db=spr_db(rig, clean, delta, g_u.distance_m, g_a.distance_m if g_a else None),
            snr_db=snr_db(sig, noise_n, start, len(clean)),
            arrival_delay_ms=arrival,
            dist_user_m=g_u.distance_m, dist_adv_m=g_a.distance_m if g_a else None,
            angle_user_deg=g_u.angle_deg, angle_adv_deg=g_a.angle_deg if g_a else None))
    return captures, windows
