"""Suspenders: conditions that pause a running session instead of recording bad data (issue 23).

Like bluesky's suspenders, each condition is a small object the runner consults between
trials. :meth:`Suspenders.hold` runs before every trial: when a condition trips (a loud room,
a silent DUT, a positioner alarm, too many xruns, a clipping reference mic) it reports a
``pause`` with the reason, keeps polling every ``poll_s``, and reports ``resume`` once every
condition has stayed clear for ``clear_s`` (with ``resume = "manual"``, also once
``testbed session resume ID`` asked for it: :func:`request_resume`). :meth:`Suspenders.reject`
runs after a trial and before its commit: a trial recorded while a condition tripped is not
committed but played again after the pause, so every trial is committed exactly once.

Conditions
----------
:class:`AmbientLevel` : dB(A) SPL at the reference mic in a silent probe recorded before the trial.
:class:`DutAnswers` : the serial DUT answers ``hello``.
:class:`PositionerOk` : the positioner reports no alarm and has not drifted from where it stood.
:class:`XrunRate` : xruns over the last minute (trials and probes) stay at or under a limit.
:class:`ReferenceClipping` : no reference-tier mic clips (in a probe, or in the trial itself).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from testbed.acoustics.weighting import a_weight, rms_dbfs, spl_db
from testbed.errors import SerialProtocolError, SessionError, TestbedError
from testbed.fileio import atomic_write

#: File in a session folder that asks its running, paused writer to resume (``resume = "manual"``).
RESUME_REQUEST = "resume.request"
#: Window of :class:`XrunRate`, seconds.
XRUN_WINDOW_S = 60.0


def request_resume(session_dir: Path | str) -> Path:
    """Ask the paused writer of ``session_dir`` to resume (``testbed session resume`` on a
    running session); it does once its conditions are clear."""
    return atomic_write(Path(session_dir) / RESUME_REQUEST, f"{time.time():.3f}\n")


def resume_running(session: str | Path, sessions_dir: Path | str | None = None,
                   say: Callable[[str], None] = lambda line: None) -> bool:
    """``testbed session resume`` on a session whose writer runs (paused with ``resume = "manual"``):
    ask it to go on (:func:`request_resume`), ``say`` so, and return True; False when nobody runs it."""
    from testbed.session.store import resolve_session, writer_running

    path = resolve_session(session, sessions_dir)
    if not writer_running(path):
        return False
    request_resume(path)
    say(f"asked the running session {path.name} to resume (it does once its conditions are clear)")
    return True


class Condition:
    """One condition. ``check(probe)`` between trials and ``reject(rec)`` after one return the
    reason to pause, or None. ``probe`` is a silent :class:`~testbed.audio.Capture` (or None
    when no condition needs one)."""

    name = "condition"
    needs_probe = False

    def check(self, probe) -> str | None:
        return None

    def reject(self, rec) -> str | None:
        return None

    def placement_changed(self) -> None:
        """The runner set up another placement (things moved on purpose)."""


class AmbientLevel(Condition):
    """The A-weighted level at ``mic`` in the silent probe exceeds ``max_dba`` dB SPL."""

    name = "ambient"
    needs_probe = True

    def __init__(self, mic: str, max_dba: float, dbfs_at_94: float, sample_rate: int) -> None:
        self.mic, self.max_dba, self.dbfs_at_94, self.sample_rate = mic, float(max_dba), float(dbfs_at_94), sample_rate

    def level_dba(self, x: np.ndarray) -> float:
        """dB(A) SPL of ``x`` (float (n_samples,)), skipping the filter's first 20 ms."""
        y = a_weight(np.asarray(x, dtype=np.float64), self.sample_rate)
        return spl_db(rms_dbfs(y[min(len(y) // 4, int(0.02 * self.sample_rate)):]), self.dbfs_at_94)

    def check(self, probe) -> str | None:
        lvl = self.level_dba(probe.mics[self.mic])
        if lvl > self.max_dba:
            return f"ambient {lvl:.1f} dB(A) SPL at mic {self.mic} is above {self.max_dba:g}"
        return None


class DutAnswers(Condition):
    """The DUT on its serial port does not answer ``hello`` (silent), or its port is gone
    (disconnected; the port is reopened on every poll until it answers again)."""

    name = "dut"

    def __init__(self, dut) -> None:
        self.dut = dut

    def check(self, probe) -> str | None:
        try:
            if self.dut.connected:
                self.dut.hello()
            else:
                self.dut.connect()
        except SerialProtocolError as exc:   # the port is there; the firmware is silent
            return f"DUT not answering: {exc}"
        except TestbedError as exc:          # the port failed or vanished: reopen it next time
            self.dut.close()
            return f"DUT disconnected: {exc}"
        return None


class PositionerOk(Condition):
    """The positioner reports an alarm, does not answer, or stands more than ``tolerance_mm``
    from where it stood at the first check after the last placement change (lost position)."""

    name = "positioner"

    def __init__(self, positioner, tolerance_mm: float = 2.0) -> None:
        self.positioner = positioner
        self.tolerance_m = float(tolerance_mm) / 1000.0
        self.reference: tuple[float, float] | None = None

    def placement_changed(self) -> None:
        self.reference = None

    def check(self, probe) -> str | None:
        try:
            st = self.positioner.status()
        except TestbedError as exc:
            return f"positioner: {exc}"
        if st.state == "Alarm":
            return f"positioner alarm ({st.raw.strip()}); clear it (unlock or home) at the controller"
        if st.x_m is None or st.y_m is None:
            return None
        if self.reference is None:
            self.reference = (st.x_m, st.y_m)
            return None
        dist = float(np.hypot(st.x_m - self.reference[0], st.y_m - self.reference[1]))
        if dist > self.tolerance_m:
            return (f"positioner lost its position: at ({st.x_m:.3f}, {st.y_m:.3f}) m, "
                    f"{dist * 1000:.0f} mm from ({self.reference[0]:.3f}, {self.reference[1]:.3f}) m")
        return None


class XrunRate(Condition):
    """More than ``per_min`` xruns in the last minute (trials and probes)."""

    name = "xruns"
    needs_probe = True

    def __init__(self, per_min: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_min, self.clock = float(per_min), clock
        self.seen: deque[tuple[float, int]] = deque()

    def _rate(self, n: int) -> int:
        now = self.clock()
        self.seen.append((now, int(n)))
        while self.seen and self.seen[0][0] < now - XRUN_WINDOW_S:
            self.seen.popleft()
        return sum(k for _, k in self.seen)

    def check(self, probe) -> str | None:
        n = self._rate(probe.facts.xruns)
        return f"{n} xruns in the last minute (limit {self.per_min:g})" if n > self.per_min else None

    def reject(self, rec) -> str | None:
        n = self._rate(rec.xruns)
        if rec.xruns and n > self.per_min:
            return f"{n} xruns in the last minute (limit {self.per_min:g})"
        return None


class ReferenceClipping(Condition):
    """A reference-tier mic clipped. A trial that clipped is redone after the pause once; if it
    clips again (its own playback is too loud) it is committed as it is."""

    name = "clipping"
    needs_probe = True

    def __init__(self, mics: list[str]) -> None:
        self.mics = list(mics)
        self.redone: set[int] = set()

    def _clipped(self, counts: dict[str, int]) -> str | None:
        bad = {m: n for m, n in counts.items() if m in self.mics and n}
        if not bad:
            return None
        return "reference mic clipped: " + ", ".join(f"{m} ({n} samples)" for m, n in bad.items())

    def check(self, probe) -> str | None:
        return self._clipped(dict(probe.facts.clipped_samples))

    def reject(self, rec) -> str | None:
        why = self._clipped({c.mic: c.clipped for c in rec.captures})
        if why is None or rec.trial_id in self.redone:
            return None
        self.redone.add(rec.trial_id)
        return f"trial {rec.trial_id}: {why}"


class Suspenders:
    """The conditions of one run and the pause loop.

    Parameters
    ----------
    options : the effective :class:`testbed.rig.schema.Suspenders`.
    conditions : the conditions to check.
    probe : ``probe(placement) -> Capture``: a silent recording of ``options.probe_s``.
    clock, sleep : monotonic seconds and a sleep (tests pass a fake pair).
    resume_requested : polled while paused with ``resume = "manual"``; True once the operator asked.
    """

    def __init__(self, options, conditions: list[Condition], probe: Callable | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 resume_requested: Callable[[], bool] = lambda: False) -> None:
        self.options, self.conditions, self.probe = options, conditions, probe
        self.clock, self.sleep, self.resume_requested = clock, sleep, resume_requested
        self._placement: object = object()
        self.pending: str | None = None   # why the last trial was rejected

    @classmethod
    def build(cls, options, rig, calibration, *, backend, dut=None, positioner=None,
              session_dir: Path | None = None, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> "Suspenders | None":
        """The conditions ``options`` switches on for ``rig``; None when none is on.

        Raises
        ------
        SessionError
            A condition cannot be checked on this rig (no SPL calibration for the ambient mic,
            no serial DUT, no positioner, no reference mic).
        """
        if options is None or not options.any:
            return None
        from testbed.session.levels import spl_reference

        conds: list[Condition] = []
        refs = [m for m, mic in rig.mics.items() if mic.tier == "reference"]
        if options.ambient_max_dba is not None:
            mic = options.ambient_mic or (refs[0] if refs else None)
            if mic is None:
                raise SessionError(f"suspenders.ambient_max_dba: rig {rig.name!r} has no mic with tier "
                                   f"'reference'; set suspenders.ambient_mic")
            ref94, _, why = spl_reference(rig, calibration)
            if mic not in ref94:
                why = why or "not in the calibration profile"
                raise SessionError(f"suspenders.ambient_max_dba: mic {mic!r} has no SPL calibration ({why}); "
                                   f"run 'testbed calibrate RIG --what spl'")
            conds.append(AmbientLevel(mic, options.ambient_max_dba, ref94[mic], rig.sample_rate))
        if options.dut:
            if dut is None:
                raise SessionError(f"suspenders.dut: rig {rig.name!r} has no serial DUT (dut.transport = 'serial')")
            conds.append(DutAnswers(dut))
        if options.positioner:
            if positioner is None:
                raise SessionError(f"suspenders.positioner: no positioner is open for rig {rig.name!r} "
                                   f"(it needs a [positioner] on a physical rig)")
            conds.append(PositionerOk(positioner, options.position_tolerance_mm))
        if options.xruns_per_min is not None:
            conds.append(XrunRate(options.xruns_per_min, clock))
        if options.clipping:
            if not refs:
                raise SessionError(f"suspenders.clipping: rig {rig.name!r} has no mic with tier 'reference'")
            conds.append(ReferenceClipping(refs))

        def probe(placement):
            return backend.run_trial({}, options.probe_s, placement=placement)

        request = Path(session_dir) / RESUME_REQUEST if session_dir is not None else None

        def resume_requested() -> bool:
            if request is None or not request.exists():
                return False
            request.unlink(missing_ok=True)
            return True

        if request is not None:
            request.unlink(missing_ok=True)   # a request left from an earlier run asks nothing of this one
        return cls(options, conds, probe, clock=clock, sleep=sleep, resume_requested=resume_requested)

    # -- the runner's two hooks ---------------------------------------------------------
    def reject(self, rec) -> str | None:
        """Why ``rec`` (an uncommitted trial) must not be committed but redone after a pause; None: commit."""
        for c in self.conditions:
            why = c.reject(rec)
            if why:
                self.pending = why
                return why
        return None

    def hold(self, placement, *, on_pause: Callable[[str], None], on_resume: Callable[[str], None],
             should_stop: Callable[[], bool]) -> bool:
        """Wait until every condition is clear; False when ``should_stop()`` turned true meanwhile.

        Checks once; when a condition trips (or the last trial was rejected) calls ``on_pause(reason)``,
        polls until all have been clear for ``clear_s`` (and, manual resume, the operator asked)
        and calls ``on_resume(message)``.
        """
        if placement != self._placement:
            self._placement = placement
            for c in self.conditions:
                c.placement_changed()
        reasons = [self.pending] if self.pending else self._check(placement)
        self.pending = None
        if not reasons:
            return True
        reason = "; ".join(reasons)
        self.resume_requested()      # only a request made during this pause counts
        on_pause(reason)
        opts = self.options
        clear_since: float | None = None
        asked = False
        while True:
            if should_stop():
                return False
            self.sleep(opts.poll_s)
            if should_stop():
                return False
            now_reasons = self._check(placement)
            now = self.clock()
            if opts.resume == "manual" and not asked:
                asked = self.resume_requested()
            if now_reasons:
                clear_since = None
                continue
            clear_since = now if clear_since is None else clear_since
            if now - clear_since < opts.clear_s or (opts.resume == "manual" and not asked):
                continue
            how = "resumed by the operator" if opts.resume == "manual" else "resumed"
            on_resume(f"{how}: clear for {now - clear_since:.1f} s after: {reason}")
            return True

    def _check(self, placement) -> list[str]:
        probe = None
        if any(c.needs_probe for c in self.conditions):
            try:
                probe = self.probe(placement)
            except TestbedError as exc:
                return [f"audio device: {exc}"]
        return [why for c in self.conditions if (why := c.check(probe))]
