"""The session database: its schema and how a connection to it is opened.

Writers open it read-write in WAL mode with ``synchronous=FULL``; readers open it with
SQLite's ``mode=ro`` URI, so a reader can never write, and never waits for or blocks a writer.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from testbed.errors import SessionError

SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS events(
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);
"""


def connect(db: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to the session database ``db`` in autocommit mode (transactions are explicit).

    Raises
    ------
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
    except sqlite3.Error as exc:
        raise SessionError(f"{db}: cannot open the session database: {exc}") from None
    return conn


def init_schema(conn: sqlite3.Connection) -> None:
    """Create the tables of a new session database."""
    conn.executescript(SCHEMA)
