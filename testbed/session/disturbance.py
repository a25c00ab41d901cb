"""Disturbing a running simulated session on purpose: a door slam or a loud room played into the
simulated mics, so an operator can rehearse what the suspenders do (pause, then resume) before a
week of recordings in the real room.

``testbed session inject ID --noise-dbspl 85`` writes a request file into the session folder;
the running writer takes it before its next trial and plays the sound into the simulated room
(:meth:`testbed.audio.sim.SimBackend.inject`) for that many captures, pre-rolls included.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from testbed.errors import SessionError
from testbed.fileio import atomic_write

#: File in a session folder that asks its running writer to play a disturbance.
INJECT_REQUEST = "inject.request"
KINDS = ("noise", "tone")


def request_injection(session_dir: Path | str, level_dbspl: float, captures: int = 3, kind: str = "noise",
                      freq_hz: float = 1000.0) -> Path:
    """Ask the running writer of ``session_dir`` to play ``kind`` at ``level_dbspl`` dB SPL (at the
    mics) for its next ``captures`` captures. SessionError for a value it could not play."""
    if not (isinstance(level_dbspl, (int, float)) and math.isfinite(level_dbspl) and 0 < level_dbspl <= 140):
        raise SessionError(f"--noise-dbspl: {level_dbspl!r} is not a level in (0, 140] dB SPL")
    if not (isinstance(captures, int) and 1 <= captures <= 10_000):
        raise SessionError(f"--captures: {captures!r} is not a whole number from 1 to 10000")
    if kind not in KINDS:
        raise SessionError(f"--kind: {kind!r} is not one of {', '.join(KINDS)}")
    if not (math.isfinite(freq_hz) and 20 <= freq_hz <= 20_000):
        raise SessionError(f"--freq-hz: {freq_hz!r} is not in 20 to 20000 Hz")
    doc = {"level_dbspl": float(level_dbspl), "captures": int(captures), "kind": kind,
           "freq_hz": float(freq_hz), "asked_at": time.time()}
    return atomic_write(Path(session_dir) / INJECT_REQUEST, json.dumps(doc))


def inject_running(session: str | Path, sessions_dir: Path | str | None, level_dbspl: float, captures: int = 3,
                   kind: str = "noise", freq_hz: float = 1000.0) -> Path:
    """:func:`request_injection` for session ``session``, refused (SessionError) when no writer runs it."""
    from testbed.session.store import resolve_session, writer_running

    path = resolve_session(session, sessions_dir)
    if not writer_running(path):
        raise SessionError(f"{path}: the session is not running; a disturbance is played into a running "
                           f"simulated session")
    return request_injection(path, level_dbspl, captures, kind, freq_hz)


def take_injection(session_dir: Path | str, backend, log: Callable[[str, str], None]) -> str | None:
    """Play a pending request into ``backend`` (its ``inject``), log it and return what was done;
    None when nothing was asked. A request to a backend that cannot play one is logged and dropped."""
    path = Path(session_dir) / INJECT_REQUEST
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        level, captures = float(doc["level_dbspl"]), int(doc["captures"])
        kind, freq = str(doc.get("kind", "noise")), float(doc.get("freq_hz", 1000.0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{path.name}: unreadable disturbance request ({exc}); ignored"
        path.unlink(missing_ok=True)
        log("error", msg)
        return msg
    path.unlink(missing_ok=True)
    inject = getattr(backend, "inject", None)
    if inject is None:
        msg = f"disturbance request ignored: the {getattr(backend, 'name', 'hardware')} backend plays no test sound"
        log("injected", msg)
        return msg
    inject(level, captures, kind=kind, freq_hz=freq)
    what = f"a {freq:g} Hz tone" if kind == "tone" else "noise"
    msg = f"operator's disturbance: {what} at {level:g} dB SPL for the next {captures} capture(s)"
    log("injected", msg)
    return msg
