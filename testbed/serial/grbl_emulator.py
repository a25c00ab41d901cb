"""A GRBL 1.1 stand-in on a pty: homing, absolute/relative rapid moves that take time,
``?`` status reports, ``G4 P0`` buffer sync, alarm lock-out, and alarms on demand.

It lets a session with ``[positioner]`` run (and fail the way a real gantry fails)
without the gantry: the serial tests use it, and so can a session runner's tests::

    port = PtyPort(tmp_path / "ttyGRBL")
    emu = GrblEmulator(port, alarm_on_move=2)      # the 2nd move hits a hard limit
    with emu.running():
        ...  # rig [positioner] port = str(port.path)
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator

from testbed.serial.dut_emulator import ByteStream

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
_WORD = re.compile(r"([A-Z])\s*([-+]?[0-9]*\.?[0-9]+)")


class GrblEmulator:
    """Serves GRBL's line protocol on ``stream``.

    Parameters
    ----------
    stream : ByteStream
        Device end of the link.
    start_in_alarm : bool
        Boot locked in Alarm state, as GRBL does with homing enabled.
    speed_mm_s : float
        Rapid speed, mm/s (moves take distance / speed seconds).
    homing_s : float
        How long ``$H`` takes, seconds.
    alarm_on_move : int or None
        Raise ``ALARM:<alarm_code>`` halfway through this move (1-based count of moves).
    alarm_code : int
        The alarm to raise (1 = hard limit).
    travel_mm : (float, float)
        Machine travel; a target beyond it raises ALARM:2 (soft limit), as GRBL with $20=1.
    """

    def __init__(self, stream: ByteStream, *, start_in_alarm: bool = False, speed_mm_s: float = 5000.0,
                 homing_s: float = 0.05, alarm_on_move: int | None = None, alarm_code: int = 1,
                 travel_mm: tuple[float, float] = (10000.0, 10000.0)) -> None:
        self.stream = stream
        self.speed_mm_s = speed_mm_s
        self.homing_s = homing_s
        self.alarm_on_move = alarm_on_move
        self.alarm_code = alarm_code
        self.travel_mm = travel_mm
        self.state = "Alarm" if start_in_alarm else "Idle"
        self.pos = [0.0, 0.0, 0.0]
        self.relative = False
        self.lines: list[str] = []  # every line received, for assertions
        self.moves: list[tuple[float, float]] = []  # every move target accepted, mm
        self._start = self._target = (0.0, 0.0)
        self._t0 = self._t1 = 0.0
        self._alarm_at: float | None = None
        self._pending_ok = 0
        self._homing_until: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- motion model ---------------------------------------------------------------
    def _where(self, now: float) -> tuple[float, float]:
        if self.state != "Run" or self._t1 <= self._t0:
            return self.pos[0], self.pos[1]
        f = min(1.0, max(0.0, (now - self._t0) / (self._t1 - self._t0)))
        return (self._start[0] + f * (self._target[0] - self._start[0]),
                self._start[1] + f * (self._target[1] - self._start[1]))

    def _tick(self, now: float) -> None:
        if self.state == "Run" and self._alarm_at is not None and now >= self._alarm_at:
            self.pos[0], self.pos[1] = self._where(now)
            self.state, self._alarm_at, self._pending_ok = "Alarm", None, 0
            self._send(f"ALARM:{self.alarm_code}")
        elif self.state == "Run" and now >= self._t1:
            self.pos[0], self.pos[1] = self._target
            self.state = "Idle"
            for _ in range(self._pending_ok):
                self._send("ok")
            self._pending_ok = 0
        if self.state == "Home" and self._homing_until is not None and now >= self._homing_until:
            self.pos = [0.0, 0.0, 0.0]
            self.state, self._homing_until = "Idle", None
            self._send("ok")

    def status_line(self, now: float | None = None) -> str:
        x, y = self._where(time.monotonic() if now is None else now)
        return f"<{self.state}|MPos:{x:.3f},{y:.3f},{self.pos[2]:.3f}|FS:0,0>"

    # -- protocol -----------------------------------------------------------------------
    def _send(self, text: str) -> None:
        self.stream.write(text.encode("ascii") + b"\r\n")

    def _line(self, text: str, now: float) -> None:
        self.lines.append(text)
        up = text.strip().upper()
        if not up:
            self._send("ok")
        elif up == "$H":
            self.state, self._homing_until = "Home", now + self.homing_s
        elif up == "$X":
            if self.state == "Alarm":
                self.state = "Idle"
                self._send("[MSG:Caution: Unlocked]")
            self._send("ok")
        elif up.startswith("$"):
            self._send("ok")
        elif self.state == "Alarm":
            self._send("error:9")
        else:
            self._gcode(up, now)

    def _gcode(self, up: str, now: float) -> None:
        words = _WORD.findall(up)
        if not words or _WORD.sub("", up).strip():
            self._send("error:20" if words else "error:1")
            return
        target = list(self._where(now))
        moving = dwell = False
        for letter, value in words:
            v = float(value)
            if letter == "G":
                if v == 90:
                    self.relative = False
                elif v == 91:
                    self.relative = True
                elif v in (0, 1):
                    moving = True
                elif v == 4:
                    dwell = True
                elif v not in (17, 21, 54, 94):
                    self._send("error:20")
                    return
            elif letter in "XY":
                i = "XY".index(letter)
                target[i] = target[i] + v if self.relative else v
                moving = True
            elif letter not in "FPZ":
                self._send("error:20")
                return
        if dwell:
            if self.state == "Run":
                self._pending_ok += 1
            else:
                self._send("ok")
            return
        if moving and ("X" in up or "Y" in up):
            if not (0 <= target[0] <= self.travel_mm[0] and 0 <= target[1] <= self.travel_mm[1]):
                self.state = "Alarm"
                self._send("ALARM:2")
                return
            self.moves.append((target[0], target[1]))
            self._start = self._where(now)
            self.pos[0], self.pos[1] = self._start
            self._target = (target[0], target[1])
            dist = max(abs(self._target[0] - self._start[0]), abs(self._target[1] - self._start[1]))
            self._t0, self._t1 = now, now + dist / self.speed_mm_s
            self.state = "Run"
            self._alarm_at = (now + (self._t1 - now) / 2) if len(self.moves) == self.alarm_on_move else None
        self._send("ok")

    def serve(self, stop: threading.Event | None = None) -> None:
        """Answer until ``stop`` is set."""
        stop = stop or self._stop
        self.stream.write(BANNER)
        if self.state == "Alarm":
            self._send("[MSG:'$H'|'$X' to unlock]")
        buf = bytearray()
        while not stop.is_set():
            data = self.stream.read(0.005)
            now = time.monotonic()
            for b in data:
                if b == ord("?"):
                    self._tick(now)
                    self._send(self.status_line(now))
                elif b == 0x18:  # soft reset
                    self.state = "Alarm" if self.state == "Run" else self.state
                    self.stream.write(BANNER)
                elif b == ord("\n"):
                    self._line(buf.decode("ascii", "replace").rstrip("\r"), now)
                    buf.clear()
                else:
                    buf.append(b)
            self._tick(time.monotonic())

    @contextlib.contextmanager
    def running(self) -> Iterator["GrblEmulator"]:
        """Serve in a daemon thread for the duration of a ``with`` block."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve, args=(self._stop,), daemon=True,
                                        name="grbl-emulator")
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
