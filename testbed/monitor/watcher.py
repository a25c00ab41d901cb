"""Follows one session: notices a change cheaply, and rebuilds the snapshot only then.

A change is a commit by the writer (SQLite's ``PRAGMA data_version`` on the watcher's read-only
connection) or a change in whether a writer runs (the store's non-blocking probe, never its lock).
The server asks every :data:`POLL_S`; every connected page shares the same snapshot, whose
running figures (error counts, totals, last trials) are read incrementally: only what was
committed since the last snapshot. Rebuilding is
rationed so that it takes at most :data:`BUDGET` of the time (never delaying a page by more than
:data:`MAX_WAIT_S`), which keeps a fast simulated run's cost of being watched small.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from testbed.monitor.follow import TrialFollower
from testbed.monitor.rates import ErrorCounter
from testbed.monitor.snapshot import PictureCache, snapshot_json
from testbed.session.store import SessionReader, writer_running
from testbed.session.store import live

#: Seconds between two looks at the session (the page updates within about this after a commit).
POLL_S = 0.25
#: Largest share of wall-clock time spent rebuilding snapshots while a run commits quickly.
BUDGET = 0.01
#: ... but a change is never held back longer than this, seconds.
MAX_WAIT_S = 1.25


class SessionWatcher:
    """The latest snapshot of session folder ``path`` as JSON text, rebuilt when the store changes.

    Thread-safe; the database is opened read-only (``SessionReader``) for the watcher's lifetime.
    """

    def __init__(self, path: Path | str, budget: float = BUDGET):
        self.path = Path(path)
        self.budget = budget
        self._lock = threading.Lock()
        self._reader: SessionReader | None = None
        self._token: tuple | None = None
        self._json: str | None = None
        self._version = 0
        self._next_build = 0.0
        self._pictures = PictureCache()
        self._errors = ErrorCounter()
        self._follower = TrialFollower()
        self.builds = 0          # snapshots built so far (tests and the bench read it)
        self.build_s = 0.0       # CPU seconds spent building them

    def token(self) -> tuple:
        """What changes when the session does: the database's data version and whether a writer runs."""
        with self._lock:
            return self._token_now()

    def _token_now(self) -> tuple:
        return live.data_version(self._open()), writer_running(self.path)

    def current(self) -> tuple[int, str]:
        """``(version, snapshot JSON)``; the version goes up each time a changed snapshot is built."""
        with self._lock:
            tok = self._token_now()
            now = time.monotonic()
            if self._json is None or (tok != self._token and now >= self._next_build):
                t0 = time.thread_time()     # CPU time: waiting for the GIL is not a cost to ration
                text = snapshot_json(self._open(), pictures=self._pictures, errors=self._errors,
                                     follower=self._follower)
                cost = time.thread_time() - t0
                self.builds += 1
                self.build_s += cost
                self._next_build = now + min(MAX_WAIT_S, cost / self.budget - cost)
                self._token = tok
                self._version += 1
                self._json = text
            return self._version, self._json

    def replay(self, upto_index: int) -> str:
        """The snapshot as it was after the first ``upto_index`` committed trials, as JSON text."""
        with self._lock:
            return snapshot_json(self._open(), upto_index=upto_index, pictures=self._pictures)

    def _open(self) -> SessionReader:
        if self._reader is None:
            self._reader = SessionReader(self.path)
        return self._reader

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
