"""Host side of the DUT protocol: handshake, arming, audio injection, answers, reconnects.

A session runner uses it in one of two ways::

    client = DutClient.open(rig.dut.serial)          # opens the port, says hello
    # the DUT hears the audio itself (its own microphone):
    pending = client.begin(trial_id, window_ms=1500)  # arm, wait for the acknowledgement
    capture = backend.run_trial(plays, record_s)      # the speakers play meanwhile
    result = client.finish(pending)                   # wait for the DUT's answer
    # or the host hands it the DUT-mic capture (simulated rigs, firmware test modes):
    result = client.evaluate(trial_id, capture.mics[rig.dut.mic], sample_rate=rig.sample_rate)

Device trouble during a trial (no answer, an error from the DUT, the port vanishing)
never raises: the :class:`TrialResult` says what happened and the session goes on.
Only :meth:`DutClient.open` and :meth:`DutClient.hello` raise, when there is no DUT to
talk to at all.
"""

from __future__ import annotations

import logging
import time
from math import gcd

import numpy as np

from testbed.errors import DeviceError, SerialProtocolError
from testbed.serial.link import SerialLink, exc_text, short_repr
from testbed.serial.messages import DutLineError, one_line, read_dut_line
from testbed.serial.protocol import (
    DutInfo,
    PendingTrial,
    TrialId,
    TrialResult,
    arm_msg,
    audio_msg,
    encode,
    hello_msg,
)

log = logging.getLogger("testbed.serial.dut")

#: Notes kept per trial; more are counted in one last note.
MAX_NOTES = 20
#: Answered trial ids remembered, to tell a duplicate answer from an out-of-order one.
_REMEMBER = 1000


def _same_trial(got: object, trial: TrialId) -> bool:
    """True when ``got`` is ``trial`` itself (1 and "1" differ; checked lines hold no floats or booleans)."""
    return got is not None and type(got) is type(trial) and got == trial


class _Disconnected(Exception):
    """The port went away under us (read/write failed)."""


class DutClient(SerialLink):
    """A device under test that reports its own predictions over a serial port.

    Parameters
    ----------
    port : str
        Serial device path (``/dev/ttyACM0``, a ``/dev/serial/by-id`` link, a pty).
    baud : int
        Line speed, bit/s.
    timeout_s : float
        How long to wait for an answer beyond the listening window and the audio
        transfer time, seconds.
    reconnect_s : float
        How long to keep trying to reopen the port after it disappears, seconds.
    field : str
        The rig field the port came from, named in errors.

    Notes
    -----
    Not thread-safe: one session thread talks to one DUT.
    """

    def __init__(self, port: str, baud: int = 115200, timeout_s: float = 2.0, *,
                 reconnect_s: float = 5.0, field: str = "dut.serial.port") -> None:
        super().__init__(port, baud, field=field, label="DUT", logger=log, write_timeout_s=timeout_s)
        self.timeout_s = float(timeout_s)
        self.reconnect_s = float(reconnect_s)
        self.info: DutInfo | None = None
        self._answered: dict[TrialId, None] = {}
        self._early: dict[TrialId, dict] = {}  # answers that came before their arm acknowledgement

    # -- opening ------------------------------------------------------------------
    @classmethod
    def open(cls, cfg, *, reconnect_s: float = 5.0) -> "DutClient":
        """Open the port of a rig's ``[dut.serial]`` section and do the handshake.

        Parameters
        ----------
        cfg : testbed.rig.schema.DutSerial
            ``port``, ``baud``, ``timeout_s``.
        reconnect_s : float
            See the class parameters.

        Raises
        ------
        DeviceError
            The port does not exist (the message lists the ones that do), is busy, or is
            not ours to open.
        SerialProtocolError
            Nothing answered ``hello`` in time, or the answer was malformed.
        """
        client = cls(cfg.port, cfg.baud, cfg.timeout_s, reconnect_s=reconnect_s)
        client.connect()
        return client

    def connect(self) -> DutInfo:
        """Open the port and do the handshake (see :meth:`open`)."""
        self._open_port(flush_input=True)
        return self.hello()

    def hello(self) -> DutInfo:
        """Ask the DUT who it is (``{"cmd":"hello"}``) and remember the answer.

        Raises
        ------
        SerialProtocolError
            No valid ``hello`` answer within ``timeout_s``.
        DeviceError
            The port is gone.
        """
        notes: list[str] = []
        try:
            info = self._handshake(self.timeout_s, notes)
        except _Disconnected as exc:
            raise DeviceError(f"{self.field}: DUT port {self.port!r} failed during the handshake ({exc})") from None
        if isinstance(info, str):
            raise SerialProtocolError(f"{self.field}: {info}")
        self.info = info
        return info

    # -- trials --------------------------------------------------------------------
    def begin(self, trial: TrialId, window_ms: float) -> PendingTrial:
        """Arm the DUT for ``trial``: it listens for ``window_ms`` from now.

        Waits for the ``{"armed": trial}`` acknowledgement (at most ``timeout_s``), so
        playback started after this call is heard. Never raises for device trouble; a
        failure is carried in the returned :class:`PendingTrial`.
        """
        notes: list[str] = []
        if self._ser is None:
            why = self._reconnect(notes)
            if why is not None:
                return PendingTrial(trial, window_ms, time.monotonic(), why, notes)
        try:
            self._write(arm_msg(trial, window_ms))
            msg = self._await(trial, "armed", time.monotonic() + self.timeout_s, notes)
        except _Disconnected as exc:
            return PendingTrial(trial, window_ms, time.monotonic(),
                                self._after_disconnect("while arming", exc, notes), notes)
        now = time.monotonic()
        if msg is None:
            return PendingTrial(trial, window_ms, now,
                                f"no answer to 'arm' from the DUT on {self.port} within {self.timeout_s:g} s", notes)
        if "error" in msg:
            return PendingTrial(trial, window_ms, now, f"DUT refused to arm: {one_line(msg['error'])}", notes)
        return PendingTrial(trial, window_ms, now, None, notes)

    def finish(self, pending: PendingTrial, pcm: np.ndarray | None = None,
               sample_rate: int | None = None) -> TrialResult:
        """Wait for the answer to an armed trial, sending the audio first if given.

        Parameters
        ----------
        pending : PendingTrial
            From :meth:`begin`.
        pcm : ndarray of float32, shape (n_samples,), or None
            The capture to inject (``{"cmd":"audio"}``); None when the DUT hears the
            playback through its own microphone.
        sample_rate : int or None
            Rate of ``pcm`` in Hz; resampled to the DUT's rate if that differs.

        Returns
        -------
        TrialResult
            ``ok`` with the prediction, or not ``ok`` with the reason.
        """
        trial, notes = pending.trial, pending.notes
        if pending.failure is not None:
            self._remember(trial)
            return self._finalise(TrialResult.failed(trial, pending.failure, notes))
        t0 = pending.armed_at
        try:
            if pcm is not None:
                msg_out = audio_msg(trial, *self._to_dut_rate(pcm, sample_rate))
                line = encode(msg_out)
                t0 = time.monotonic()
                self._write_bytes(line)
                budget = self.timeout_s + len(line) * 10.0 / self.baud
            else:
                listened = time.monotonic() - pending.armed_at
                budget = self.timeout_s + max(0.0, pending.window_ms / 1000.0 - listened)
            msg = self._await(trial, "result", time.monotonic() + budget, notes)
        except _Disconnected as exc:
            self._remember(trial)
            return self._finalise(TrialResult.failed(
                trial, self._after_disconnect("during the trial", exc, notes), notes))
        self._remember(trial)
        if msg is None:
            return self._finalise(TrialResult.failed(
                trial, f"no answer from the DUT on {self.port} within {budget:.3g} s", notes))
        if "refused" in msg:
            return self._finalise(TrialResult.failed(trial, msg["refused"], notes))
        if "error" in msg:
            return self._finalise(TrialResult.failed(trial, f"DUT error: {one_line(msg['error'])}", notes))
        return self._finalise(self._parse_result(msg, trial, (time.monotonic() - t0) * 1000.0, notes))

    def evaluate(self, trial: TrialId, pcm: np.ndarray | None, window_ms: float | None = None,
                 sample_rate: int = 16000) -> TrialResult:
        """Arm, inject ``pcm`` (if given) and wait for the answer: one whole trial.

        Parameters
        ----------
        trial : int or str
            Trial id.
        pcm : ndarray of float32, shape (n_samples,), or None
            The DUT-mic capture to inject; None if the DUT listens itself (then the
            playback must happen elsewhere during ``window_ms``: prefer
            :meth:`begin` / :meth:`finish`).
        window_ms : float or None
            Listening window; default the duration of ``pcm``.
        sample_rate : int
            Rate of ``pcm``, Hz.
        """
        if window_ms is None:
            if pcm is None:
                raise ValueError("evaluate: window_ms is required when pcm is None")
            window_ms = 1000.0 * len(pcm) / sample_rate
        return self.finish(self.begin(trial, window_ms), pcm, sample_rate)

    # -- internals -----------------------------------------------------------------
    def _to_dut_rate(self, pcm: np.ndarray, sample_rate: int | None) -> tuple[np.ndarray, int]:
        x = np.asarray(pcm, dtype=np.float32).reshape(-1)
        want = self.info.sample_rate if self.info is not None else None
        if sample_rate is None or want is None or want == sample_rate:
            return x, int(sample_rate or want or 16000)
        from scipy.signal import resample_poly

        g = gcd(int(want), int(sample_rate))
        return resample_poly(x, want // g, sample_rate // g).astype(np.float32), int(want)

    def _parse_result(self, msg: dict, trial: TrialId, rt_ms: float, notes: list[str]) -> TrialResult:
        """A checked answer (:func:`~testbed.serial.messages.read_dut_line`) as a TrialResult."""
        label, scores, lat = msg.get("label"), msg.get("scores", []), msg.get("latency_ms")
        labels = self.info.labels if self.info is not None else None
        if labels is not None and label not in labels:
            return TrialResult.failed(trial, f"DUT answered label {short_repr(label)}, which is not one of "
                                             f"the labels it announced", notes)
        if labels is not None and scores and len(scores) != len(labels):
            notes.append(f"DUT sent {len(scores)} scores for {len(labels)} labels; dropped")
            scores = []
        return TrialResult(trial=trial, ok=True, label=label, scores=[float(s) for s in scores],
                           latency_ms=None if lat is None else float(lat), round_trip_ms=rt_ms, notes=notes)

    @staticmethod
    def _finalise(result: TrialResult) -> TrialResult:
        if len(result.notes) > MAX_NOTES:
            extra = len(result.notes) - MAX_NOTES
            result.notes = result.notes[:MAX_NOTES] + [f"... and {extra} more"]
        if not result.ok:
            log.warning("trial %s failed: %s", result.trial, result.reason)
        return result

    def _remember(self, trial: TrialId) -> None:
        self._answered[trial] = None
        while len(self._answered) > _REMEMBER:
            del self._answered[next(iter(self._answered))]

    def _write(self, msg: dict) -> None:
        self._write_bytes(encode(msg))

    def _port_error(self, action: str, exc: BaseException | None) -> Exception:
        # device trouble never raises out of a trial: the caller turns this into a failed result
        return _Disconnected("port is closed" if exc is None else exc_text(exc))

    def _handshake(self, timeout_s: float, notes: list[str]) -> DutInfo | str:
        """Send hello (up to three times) and wait; a DutInfo, or the reason there is none."""
        deadline = time.monotonic() + timeout_s
        tries = 3
        for k in range(tries):
            self._write(hello_msg())
            for line in self._lines_until(time.monotonic() + (deadline - time.monotonic()) / (tries - k)):
                try:
                    msg = read_dut_line(line)
                except DutLineError as exc:
                    if b'"hello"' in line:
                        return f"the DUT on {self.port} sent a malformed hello: {exc}"
                    msg = None
                if msg is None or "hello" not in msg:
                    log.info("DUT %s: ignored %s while waiting for hello", self.port, short_repr(line))
                    continue
                try:
                    return DutInfo.from_hello(msg["hello"], self.port)
                except ValueError as exc:
                    return f"the DUT on {self.port} sent a malformed hello: {exc}"
        return (f"no answer to 'hello' from {self.port} within {timeout_s:g} s; is the DUT firmware "
                f"running and the baud rate ({self.baud}) right?")

    def _reconnect(self, notes: list[str]) -> str | None:
        """Reopen the port and redo the handshake within ``reconnect_s``; None, or why not."""
        self.close()
        t0 = time.monotonic()
        deadline = t0 + self.reconnect_s
        last = "port missing"
        while time.monotonic() < deadline:
            try:
                self._open_port()
            except DeviceError as exc:
                last = str(exc)
                time.sleep(0.05)
                continue
            try:
                info = self._handshake(max(0.2, min(self.timeout_s, deadline - time.monotonic())), notes)
            except _Disconnected as exc:
                last = str(exc)
                continue
            if isinstance(info, str):
                last = info
                continue
            if self.info is not None and info.model != self.info.model:
                notes.append(f"DUT now runs model {info.model!r} (was {self.info.model!r})")
            self.info = info
            notes.append(f"reconnected to the DUT on {self.port} after {time.monotonic() - t0:.2f} s")
            log.warning("DUT %s: reconnected after %.2f s", self.port, time.monotonic() - t0)
            return None
        self.close()
        log.warning("DUT %s: not back after %.3g s (%s)", self.port, self.reconnect_s, last)
        return f"DUT port {self.port} is gone and did not come back within {self.reconnect_s:g} s"

    def _after_disconnect(self, when: str, exc: Exception, notes: list[str]) -> str:
        log.warning("DUT %s: disconnected %s (%s)", self.port, when, exc)
        why = self._reconnect(notes)
        head = f"DUT port {self.port} disconnected {when} ({exc})"
        return f"{head}; reconnected" if why is None else f"{head}; {why}"

    def _await(self, trial: TrialId, want: str, deadline: float, notes: list[str]) -> dict | None:
        """Read lines until the message we ``want`` ('armed' | 'result') for ``trial`` arrives.

        Returns that message (or a ``{"error": ...}`` one for this trial), or None at the
        deadline. Everything else is logged, noted and ignored.
        """
        if want == "result" and trial in self._early:
            return self._early.pop(trial)
        for line in self._lines_until(deadline):
            try:
                msg = read_dut_line(line)
            except DutLineError as exc:
                if _same_trial(exc.trial, trial):
                    refused = {"refused": f"DUT answer for trial {trial!r} refused: {exc}"}
                    if want == "result":
                        return refused
                    self._early[trial] = refused   # answered (badly) before acknowledging
                    return {"armed": trial}
                log.warning("DUT %s: refused %s: %s", self.port, short_repr(line), exc)
                notes.append(f"refused a DUT line {short_repr(line, 40)}: {exc}")
                continue
            if msg is None:
                self._garbled(line, notes)
                continue
            if "log" in msg and len(msg) == 1:
                log.debug("DUT %s says: %s", self.port, msg["log"])
                continue
            if "hello" in msg:
                notes.append("DUT sent an unsolicited hello (did it restart?)")
                continue
            if "armed" in msg:
                if _same_trial(msg["armed"], trial) and want == "armed":
                    return msg
                notes.append(f"ignored a stale arm acknowledgement for trial {msg['armed']!r}")
                continue
            if "trial" in msg:
                got = msg["trial"]
                if _same_trial(got, trial) and "error" in msg:
                    return msg
                if _same_trial(got, trial) and "label" in msg:
                    if want == "result":
                        return msg
                    # answered before acknowledging: take it as armed and keep the answer
                    self._early[trial] = msg
                    return {"armed": trial}
                if got in self._answered:
                    what = f"a second answer for trial {got!r}"
                else:
                    what = f"an out-of-order answer for trial {got!r} (waiting for {trial!r})"
                log.warning("DUT %s: ignored %s", self.port, what)
                notes.append(f"ignored {what}")
                continue
            if "error" in msg:
                notes.append(f"DUT reported an error: {one_line(msg['error'])}")
                continue
            notes.append(f"ignored an unexpected message {short_repr(str(msg), 40)}")
        return None
