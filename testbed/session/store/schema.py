"""The session database: its schema and how a connection to it is opened.

Writers open it read-write in WAL mode with ``synchronous=FULL``; readers open it with
SQLite's ``mode=ro`` URI, so a reader can never write, and never waits for or blocks a writer.
Both run ``PRAGMA quick_check`` on open: a damaged database is refused with one
:class:`DamagedSession` line naming the session, never a raw ``DatabaseError``.

Schema versions: 1, the first; 2 adds :data:`EVAL_UNIQUE` (one evaluation per trial, mic, model,
weights hash and source) and the ``cached`` table (the sha256 of each cached perturbation).
:func:`migrate` brings a version-1 database to 2 when a writer opens it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from testbed.errors import SessionError

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attacks(
    attack_id TEXT PRIMARY KEY, kind TEXT NOT NULL, eps REAL NOT NULL, target TEXT NOT NULL,
    source_model TEXT, over_the_air INTEGER NOT NULL, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS utterances(
    utterance_id TEXT PRIMARY KEY, label TEXT NOT NULL, path TEXT NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS planned(
    trial_id INTEGER PRIMARY KEY, utterance_id TEXT NOT NULL, label TEXT NOT NULL,
    attack_id TEXT NOT NULL, delay_ms REAL NOT NULL, placement TEXT, repetition INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trials(
    trial_id INTEGER PRIMARY KEY REFERENCES planned(trial_id),
    realised_delay_ms REAL, xruns INTEGER NOT NULL DEFAULT 0, clipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, error TEXT, attempts INTEGER NOT NULL DEFAULT 1,
    started_at REAL, finished_at REAL, placement_confirmed_at REAL,
    adv_x_m REAL, adv_y_m REAL, adv_z_m REAL, facts TEXT NOT NULL DEFAULT '{}', audio_dir TEXT);
CREATE TABLE IF NOT EXISTS captures(
    trial_id INTEGER NOT NULL REFERENCES trials(trial_id), mic TEXT NOT NULL, path TEXT NOT NULL,
    sha256 TEXT NOT NULL, n_samples INTEGER NOT NULL, clipped INTEGER NOT NULL DEFAULT 0,
    peak_dbfs REAL, rms_dbfs REAL, spr_db REAL, snr_db REAL, arrival_delay_ms REAL,
    dist_user_m REAL, dist_adv_m REAL, angle_user_deg REAL, angle_adv_deg REAL,
    PRIMARY KEY(trial_id, mic));
CREATE TABLE IF NOT EXISTS played(
    trial_id INTEGER NOT NULL REFERENCES trials(trial_id), speaker TEXT NOT NULL, path TEXT NOT NULL,
    sha256 TEXT NOT NULL, offset_samples REAL NOT NULL, PRIMARY KEY(trial_id, speaker));
CREATE TABLE IF NOT EXISTS evaluations(
    eval_id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INTEGER NOT NULL REFERENCES trials(trial_id),
    mic TEXT NOT NULL, model TEXT NOT NULL, model_hash TEXT, eval_source TEXT NOT NULL,
    prediction TEXT, score_top REAL, scores TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS evaluations_trial ON evaluations(trial_id);
CREATE UNIQUE INDEX IF NOT EXISTS evaluations_unique
    ON evaluations(trial_id, mic, model, IFNULL(model_hash, ''), eval_source);
CREATE TABLE IF NOT EXISTS cached(path TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);
"""


#: The unique index of schema version 2: no evaluation is stored twice.
EVAL_UNIQUE = "evaluations_unique"
#: How many problems ``quick_check`` reports at most (the first is shown).
_QUICK_CHECK_MAX = 3


class DamagedSession(SessionError):
    """A session database that SQLite cannot read or whose ``quick_check`` fails.

    ``reason`` is the short why (for ``session list``'s ``damaged`` rows).
    """

    def __init__(self, db: Path, reason: str):
        self.db = Path(db)
        self.reason = reason
        sid = self.db.parent.name
        super().__init__(f"{self.db}: session {sid!r} is damaged ({reason}); it cannot be read or resumed: "
                         f"restore its folder from a backup, or move it out of {self.db.parent.parent}/")


def connect(db: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to the session database ``db`` in autocommit mode (transactions are explicit),
    checked with ``PRAGMA quick_check``.

    Raises
    ------
    DamagedSession
        The file is not a SQLite database or ``quick_check`` finds damage.
    SessionError
        The database cannot be opened.
    """
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        _close(locals().get("conn"))
        if Path(db).is_file() and "unable to open" not in str(exc):
            raise DamagedSession(db, str(exc)) from None
        raise SessionError(f"{db}: cannot open the session database: {exc}") from None
    except sqlite3.Error as exc:
        _close(locals().get("conn"))
        raise SessionError(f"{db}: cannot open the session database: {exc}") from None
    check(conn, db)
    return conn


def check(conn: sqlite3.Connection, db: Path) -> None:
    """``PRAGMA quick_check`` of an open database; closes it and raises :class:`DamagedSession` if bad."""
    try:
        rows = conn.execute(f"PRAGMA quick_check({_QUICK_CHECK_MAX})").fetchall()
        problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
        reason = f"quick_check: {problems[0]}" if problems else None
    except sqlite3.Error as exc:
        reason = str(exc)
    if reason is not None:
        _close(conn)
        raise DamagedSession(db, " ".join(reason.split()))


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error:
            pass


def init_schema(conn: sqlite3.Connection) -> None:
    """Create the tables of a new session database."""
    conn.executescript(SCHEMA)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring an older session database to :data:`SCHEMA_VERSION` (the writer, on open).

    Version 1 -> 2: duplicate evaluations (a replay run twice) are deleted, keeping the first of
    each (trial, mic, model, weights hash, source), then :data:`EVAL_UNIQUE` is created. One
    immediate transaction; returns how many duplicates were deleted (0 when already current).
    """
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name IN ('cached', ?)",
                                         (EVAL_UNIQUE,))}
    if "cached" not in names:
        conn.execute("CREATE TABLE IF NOT EXISTS cached(path TEXT PRIMARY KEY, sha256 TEXT NOT NULL)")
    if EVAL_UNIQUE in names:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        gone = conn.execute(
            "DELETE FROM evaluations WHERE eval_id NOT IN (SELECT MIN(eval_id) FROM evaluations "
            "GROUP BY trial_id, mic, model, IFNULL(model_hash, ''), eval_source)").rowcount
        conn.execute(f"CREATE UNIQUE INDEX {EVAL_UNIQUE} ON evaluations"
                     "(trial_id, mic, model, IFNULL(model_hash, ''), eval_source)")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT INTO events(time, kind, message) VALUES (?, 'migrated', ?)",
                     (time.time(), f"schema {SCHEMA_VERSION}: unique evaluations; deleted {gone} duplicate(s)",))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return gone
