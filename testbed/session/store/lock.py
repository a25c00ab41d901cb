"""The session's writer lock, and a probe that tells readers whether a writer runs.

Two ``flock`` files, so a reader can never make a writer's lock attempt fail:

- ``.lock``: the writer lock proper. Only writers touch it (exclusive, non-blocking: a second
  writer is refused at once). Readers never open it.
- ``.running``: held exclusively by the writer for as long as it holds ``.lock``. A reader asks
  "is a writer running?" by trying a *shared*, non-blocking lock on it and letting go at once.
  The writer takes ``.running`` only after it owns ``.lock`` and retries for a while if a reader
  happens to hold its shared lock at that instant, so a probe delays a writer by microseconds at
  most and never refuses it.

The OS drops both locks when the writer dies, even on ``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path
from typing import IO

from testbed.errors import SessionError

LOCK_NAME = ".lock"
RUNNING_NAME = ".running"
#: How long a writer that owns ``.lock`` waits for readers' probes to let go of ``.running``, s.
RUNNING_WAIT_S = 30.0


class WriterLock:
    """The writer lock of session folder ``folder`` (one per :class:`SessionStore`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock: IO | None = None
        self._running: IO | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock is not None

    def acquire(self, session_id: str) -> None:
        """Take the lock now or raise; a no-op when already held.

        Raises
        ------
        SessionError
            Another process (or another store object) holds it.
        """
        if self._lock is not None:
            return
        fh = open(self.folder / LOCK_NAME, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise SessionError(f"{self.folder}: session {session_id!r} is in use by another "
                               f"testbed process; wait for it to finish or stop it") from None
        try:
            self._running = _hold_running(self.folder / RUNNING_NAME)
        except BaseException:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
            raise
        self._lock = fh

    def release(self) -> None:
        """Let go of the lock (``.running`` first, so no reader sees a writer that is gone)."""
        for fh in (self._running, self._lock):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
        self._running = self._lock = None


def _hold_running(path: Path) -> IO:
    fh = open(path, "a+")
    deadline = time.monotonic() + RUNNING_WAIT_S
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() > deadline:   # a reader cannot hold it this long: a stuck process
                fh.close()
                raise SessionError(f"{path}: another process keeps holding this file; "
                                   f"find it with 'fuser {path}' and stop it") from None
            time.sleep(0.0005)


def writer_running(folder: Path) -> bool:
    """Whether a writer holds session ``folder``'s lock right now (never blocks, never takes it)."""
    try:
        fh = open(Path(folder) / RUNNING_NAME, "rb")
    except OSError:   # never locked yet (or unreadable): nobody runs it
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False
