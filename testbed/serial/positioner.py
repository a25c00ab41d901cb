"""A GRBL-compatible gantry that moves a loudspeaker between placements.

Room coordinates (metres, the rig's frame) map to machine coordinates (millimetres)
through the rig's ``[positioner] origin_m``: ``x_mm = (x_m - origin_m[0]) * 1000``.
Moves are absolute rapid moves (``G90 G0 X.. Y..``) checked against soft limits from
the room; after each, a zero dwell (``G4 P0``) waits for the planner to empty and the
status is polled (``?``) until the controller is Idle. An
``ALARM:n`` (or an Alarm state) raises :class:`~testbed.errors.PositionerAlarm`, which a
session runner must treat as "halt now": the trial in flight is not recorded and
``session resume`` continues after the operator has cleared the fault.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from testbed.errors import DeviceError, PositionerAlarm, SerialProtocolError
from testbed.serial.grbl_codes import alarm_text, error_text
from testbed.serial.link import POLL_S, SerialLink

log = logging.getLogger("testbed.serial.positioner")

_STATUS = re.compile(r"^<([A-Za-z]+)(?::\d+)?((?:\|[^>]*)?)>$")
#: A move ends within this distance of its target or is reported as not reached, mm.
POSITION_TOLERANCE_MM = 0.5


@dataclass(frozen=True)
class PositionerStatus:
    """One GRBL status report.

    Attributes
    ----------
    state : str
        Idle, Run, Hold, Jog, Alarm, Door, Check, Home, Sleep.
    x_m, y_m : float or None
        Position in room coordinates (metres), when the report had one.
    raw : str
        The report as received.
    """

    state: str
    x_m: float | None
    y_m: float | None
    raw: str

    def as_dict(self) -> dict:
        return asdict(self)


class Positioner(SerialLink):
    """A GRBL controller on a serial port.

    Parameters
    ----------
    port : str
        Serial device path.
    baud : int
        Line speed, bit/s (GRBL: 115200).
    room_size_m : sequence of float
        Room length and width (and height), metres; moves outside [0, length] x [0, width]
        are refused before anything is sent.
    origin_m : (float, float)
        Room position of machine zero, metres.
    timeout_s : float
        Longest wait for one command or one move (including homing), seconds.
    feed_mm_min : float
        Modal feed rate set at connect, mm/min (G0 rapids run at the machine's own max
        rate; the feed applies to any G1 moves a lab adds).
    speaker : str
        Which rig speaker it carries (named in messages).
    poll_s : float
        Interval between ``?`` status requests while a move runs, seconds.
    field : str
        Rig field the port came from, named in errors.
    """

    def __init__(self, port: str, baud: int = 115200, *, room_size_m: Sequence[float],
                 origin_m: Sequence[float] = (0.0, 0.0), timeout_s: float = 60.0,
                 feed_mm_min: float = 3000.0, speaker: str = "adversary", poll_s: float = 0.05,
                 field: str = "positioner.port") -> None:
        super().__init__(port, baud, field=field, max_line_bytes=4096, label="positioner", logger=log)
        self.room_size_m = tuple(float(v) for v in room_size_m)
        self.origin_m = (float(origin_m[0]), float(origin_m[1]))
        self.timeout_s = float(timeout_s)
        self.feed_mm_min = float(feed_mm_min)
        self.speaker = speaker
        self.poll_s = float(poll_s)
        self._wco = (0.0, 0.0)
        self.last_status: PositionerStatus | None = None

    # -- opening ----------------------------------------------------------------
    @classmethod
    def open(cls, cfg, room_size_m: Sequence[float], *, poll_s: float = 0.05) -> "Positioner":
        """Open the positioner of a rig's ``[positioner]`` section and check it answers.

        Parameters
        ----------
        cfg : testbed.rig.schema.Positioner
            ``port``, ``baud``, ``speaker``, ``origin_m``, ``feed_mm_min``, ``timeout_s``.
        room_size_m : sequence of float
            ``rig.room.size_m``.

        Raises
        ------
        DeviceError
            The port does not exist (the message lists those that do) or cannot be opened.
        SerialProtocolError
            Nothing answered a GRBL status request.
        """
        pos = cls(cfg.port, cfg.baud, room_size_m=room_size_m, origin_m=cfg.origin_m,
                  timeout_s=cfg.timeout_s, feed_mm_min=cfg.feed_mm_min, speaker=cfg.speaker,
                  poll_s=poll_s)
        pos.connect()
        return pos

    def connect(self) -> PositionerStatus:
        """Open the port and wait for a status report (GRBL may reset and print its banner first)."""
        self._open_port()
        deadline = time.monotonic() + min(self.timeout_s, 5.0)
        while time.monotonic() < deadline:
            self._write_bytes(b"?")
            for line in self._lines_until(min(deadline, time.monotonic() + 0.5)):
                st = self._parse_status(line)
                if st is not None:
                    self.last_status = st
                    if st.state != "Alarm":
                        self._command(f"G21 G90 F{self.feed_mm_min:g}")
                    return st
        self.close()
        raise SerialProtocolError(f"{self.field}: no GRBL status report from {self.port!r} within "
                                  f"{min(self.timeout_s, 5.0):g} s; is it a GRBL controller at {self.baud} baud?")

    # -- commands -----------------------------------------------------------------
    def status(self) -> PositionerStatus:
        """Ask for one status report (``?``)."""
        self._write_bytes(b"?")
        for line in self._lines_until(time.monotonic() + min(self.timeout_s, 2.0)):
            st = self._handle_async(line, "waiting for a status report")
            if st is not None:
                return st
        raise DeviceError(f"{self.field}: positioner on {self.port} sent no status report within "
                          f"{min(self.timeout_s, 2.0):g} s")

    def home(self) -> None:
        """Run the homing cycle (``$H``) and wait until Idle.

        Raises
        ------
        PositionerAlarm
            Homing failed (``ALARM:n``).
        DeviceError
            ``error:n`` (e.g. homing disabled) or no answer within ``timeout_s``.
        """
        self._command("$H", what="homing")
        self._wait_idle("homing")
        self._command(f"G21 G90 F{self.feed_mm_min:g}")

    def unlock(self) -> None:
        """Clear an alarm lock without homing (``$X``); position may be wrong afterwards."""
        self._command("$X", what="unlocking")

    def check_target(self, x_m: float, y_m: float) -> None:
        """Raise :class:`DeviceError` if (x_m, y_m) is outside the soft limits (the room)."""
        lx, ly = self.room_size_m[0], self.room_size_m[1]
        if not (0.0 <= x_m <= lx and 0.0 <= y_m <= ly):
            raise DeviceError(f"positioner: target ({x_m:.3f}, {y_m:.3f}) m for speaker {self.speaker!r} "
                              f"is outside the soft limits x 0..{lx:g} m, y 0..{ly:g} m (room.size_m); "
                              "fix the placement")

    def move_to(self, x_m: float, y_m: float) -> None:
        """Move the carried speaker to room position (x_m, y_m), metres, and wait until Idle.

        Raises
        ------
        DeviceError
            Outside the soft limits (nothing is sent), ``error:n``, no Idle within
            ``timeout_s``, or the reported position is not the target.
        PositionerAlarm
            ``ALARM:n`` or an Alarm state during the move; halt the session.
        """
        self.check_target(x_m, y_m)
        x_mm = (x_m - self.origin_m[0]) * 1000.0
        y_mm = (y_m - self.origin_m[1]) * 1000.0
        what = f"moving {self.speaker!r} to ({x_m:.3f}, {y_m:.3f}) m"
        self._command(f"G90 G0 X{x_mm:.3f} Y{y_mm:.3f}", what=what)
        self._command("G4 P0", what=what)  # GRBL answers a zero dwell only once the planner is empty
        st = self._wait_idle(what)
        if st.x_m is not None and st.y_m is not None:
            err_mm = 1000.0 * max(abs(st.x_m - x_m), abs(st.y_m - y_m))
            if err_mm > POSITION_TOLERANCE_MM:
                raise DeviceError(f"{self.field}: positioner stopped at ({st.x_m:.3f}, {st.y_m:.3f}) m, "
                                  f"{err_mm:.1f} mm from the target of {what}; check the gantry")

    # -- internals ------------------------------------------------------------------
    def _port_error(self, action: str, exc: BaseException | None) -> Exception:
        if exc is None:
            return DeviceError(f"{self.field}: positioner port {self.port} is not open")
        if action == "writing":
            return DeviceError(f"{self.field}: positioner port {self.port} failed: {exc}")
        return DeviceError(f"{self.field}: positioner port {self.port} disappeared: {exc}; "
                           "check the cable, then resume the session")

    def _xy(self, fields: dict[str, str], key: str, text: str) -> tuple[float, float]:
        """The first two numbers of a status field (``MPos:1.000,2.000,0.000``), mm.

        Raises
        ------
        SerialProtocolError
            Fewer than two numbers, or one that is not finite (GRBL never sends NaN or inf;
            a position that cannot be checked must not pass as reached).
        """
        try:
            x, y = (float(v) for v in fields[key].split(",")[:2])
        except ValueError:
            x = y = float("nan")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise SerialProtocolError(f"{self.field}: positioner on {self.port} sent a status report with "
                                      f"an unreadable {key} ({text[:60]!r})")
        return x, y

    def _parse_status(self, line: bytes) -> PositionerStatus | None:
        text = line.decode("ascii", "replace").strip()
        m = _STATUS.match(text)
        if m is None:
            return None
        fields = dict(f.split(":", 1) for f in m.group(2).split("|") if ":" in f)
        if "WCO" in fields:
            self._wco = self._xy(fields, "WCO", text)
        x_mm = y_mm = None
        if "WPos" in fields:
            x_mm, y_mm = self._xy(fields, "WPos", text)
        elif "MPos" in fields:
            mx, my = self._xy(fields, "MPos", text)
            x_mm, y_mm = mx - self._wco[0], my - self._wco[1]
        to_m = (lambda v, o: None if v is None else v / 1000.0 + o)
        return PositionerStatus(state=m.group(1), x_m=to_m(x_mm, self.origin_m[0]),
                                y_m=to_m(y_mm, self.origin_m[1]), raw=text)

    def _alarm(self, code: str, what: str) -> PositionerAlarm:
        try:
            meaning = alarm_text(int(code))
        except ValueError:
            meaning = "unknown alarm"
        return PositionerAlarm(f"{self.field}: positioner on {self.port} raised ALARM:{code} ({meaning}) "
                               f"while {what}; session halted: clear the fault, home ($H) with "
                               "'testbed positioner check RIG --home', then resume")

    def _handle_async(self, line: bytes, what: str) -> PositionerStatus | None:
        """Act on a line that is not a command reply: alarms raise, status reports are returned."""
        text = line.decode("ascii", "replace").strip()
        if text.startswith("ALARM:"):
            raise self._alarm(text[6:], what)
        st = self._parse_status(line)
        if st is not None:
            self.last_status = st
            if st.state == "Alarm":
                raise PositionerAlarm(f"{self.field}: positioner on {self.port} is in Alarm state while "
                                      f"{what}; session halted: home it ($H) or unlock it ($X), then resume")
            return st
        if text.lower().startswith("grbl"):
            raise DeviceError(f"{self.field}: positioner on {self.port} reset ({text!r}) while {what}; "
                              "its position is lost: home it, then resume")
        if text:
            log.info("positioner %s: %s", self.port, text)
        return None

    def _command(self, gcode: str, what: str | None = None) -> None:
        """Send one line and wait for ``ok``; ``error:n`` -> DeviceError, ``ALARM:n`` -> PositionerAlarm."""
        what = what or f"sending {gcode!r}"
        self._write_bytes(gcode.encode("ascii") + b"\n")
        for line in self._lines_until(time.monotonic() + self.timeout_s):
            text = line.decode("ascii", "replace").strip()
            if text == "ok":
                return
            if text.startswith("error:"):
                code = text[6:]
                meaning = error_text(int(code)) if code.isdigit() else "unknown error"
                raise DeviceError(f"{self.field}: positioner on {self.port} answered error:{code} "
                                  f"({meaning}) to {gcode!r} while {what}")
            self._handle_async(line, what)
        raise DeviceError(f"{self.field}: positioner on {self.port} did not answer {gcode!r} "
                          f"within {self.timeout_s:g} s")

    def _wait_idle(self, what: str) -> PositionerStatus:
        """Poll ``?`` until the state is Idle; alarms raise, Run/Home/Jog/Hold keep waiting."""
        deadline = time.monotonic() + self.timeout_s
        state = "no report"
        while time.monotonic() < deadline:
            self._write_bytes(b"?")
            reply_by = min(deadline, time.monotonic() + 1.0)
            got = None
            while got is None and (left := reply_by - time.monotonic()) > 0:
                for line in self._read_lines(min(left, POLL_S)):  # the whole batch: the last report wins
                    st = self._handle_async(line, what)
                    if st is not None:
                        got = st
            if got is None:
                continue
            state = got.state
            if state == "Idle":
                return got
            time.sleep(self.poll_s)
        raise DeviceError(f"{self.field}: positioner on {self.port} did not reach Idle within "
                          f"{self.timeout_s:g} s while {what} (last state {state})")
