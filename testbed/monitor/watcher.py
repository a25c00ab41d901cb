"""Follows one session folder: notices a change cheaply, and rebuilds the snapshot only then.

A change is anything that moves the database files (``session.sqlite`` and its WAL: size and
mtime) or whether a writer runs (asked with the store's non-blocking probe, never its lock).
Polled every :data:`POLL_S` by the server; every connected page shares the same snapshot.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

from testbed.monitor.snapshot import PictureCache, build_snapshot
from testbed.session.store import DB_NAME, SessionReader, writer_running

#: Seconds between two looks at the session's files (the page updates within about this).
POLL_S = 0.25


class SessionWatcher:
    """The latest snapshot of session folder ``path`` as JSON text, rebuilt when the store changes.

    Thread-safe; the database is opened read-only (``SessionReader``) for the watcher's lifetime.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._reader: SessionReader | None = None
        self._token: tuple | None = None
        self._json: str | None = None
        self._version = 0
        self._pictures = PictureCache()
        self.builds = 0          # snapshots built so far (tests and the bench read it)

    def token(self) -> tuple:
        """What changes when the session does: db and WAL (mtime_ns, size), and whether a writer runs."""
        parts = []
        for name in (DB_NAME, DB_NAME + "-wal"):
            try:
                st = os.stat(self.path / name)
                parts.append((st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append(None)
        return (*parts, writer_running(self.path))

    def current(self) -> tuple[int, str]:
        """``(version, snapshot JSON)``; the version goes up each time the session changed."""
        tok = self.token()
        with self._lock:
            if tok != self._token or self._json is None:
                snap = build_snapshot(self._open(), pictures=self._pictures)
                text = json.dumps(finite(snap), allow_nan=False)
                self._token = tok
                self.builds += 1
                if text != self._json:
                    self._version += 1
                    self._json = text
            return self._version, self._json

    def replay(self, upto_index: int) -> str:
        """The snapshot as it was after the first ``upto_index`` committed trials, as JSON text."""
        with self._lock:
            snap = build_snapshot(self._open(), upto_index=upto_index, pictures=self._pictures)
        return json.dumps(finite(snap), allow_nan=False)

    def _open(self) -> SessionReader:
        if self._reader is None:
            self._reader = SessionReader(self.path)
        return self._reader

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def finite(o):
    """``o`` with every NaN or infinite float replaced by None (JSON has neither), numpy scalars as Python's."""
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    if hasattr(o, "item") and not isinstance(o, (str, bytes)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
