"""The crash-safe session store: ``sessions/<id>/`` with SQLite (WAL) and audio files.

Layout::

    sessions/<id>/
        session.sqlite          meta, attacks, utterances, planned, trials, captures, evaluations, events
        plan.toml rig.toml calibration.toml manifest.json   copies made when the session was created
        utterances/<utt>.wav    the clean commands (float32 WAV, exact)
        perturbations/<key>.wav crafted perturbations (float32 WAV, exact), the craft cache
        audio/<trial:06d>/<mic>.flac               captures (24-bit FLAC)
        audio/<trial:06d>/<speaker>.played.flac    what each speaker was sent
        .lock .running          the writer lock and the "a writer runs" flag (see ``lock``)

One job per module: ``paths`` (the one session lookup), ``audio`` (encoding), ``schema`` (the
database), ``lock`` (the writer lock), ``records`` (what a trial commits), ``commit`` (writing),
``recovery`` (half-written trials), ``reader`` and ``frames`` (the public read API).

Readers (replay's reading, export, analysis, ``session status`` / ``list``, a live monitor) use
:func:`open_reader` / :class:`SessionReader` or :func:`load_evaluations`: read-only SQLite, and
never the writer's lock. The writer uses :class:`SessionStore`. Nothing outside this package
speaks SQL. Importing it pulls in neither the runner, nor ``testbed.audio``, nor torch.
"""

import os  # noqa: F401  (tests inject disk errors through ``testbed.session.store.os``)

from testbed.fileio import atomic_write as write_atomic
from testbed.session.store.audio import flac_bytes, read_verified, wav_float_bytes
from testbed.session.store.frames import COLUMNS, load_evaluations, load_session_meta
from testbed.session.store.lock import writer_running
from testbed.session.store.paths import (
    DB_NAME,
    SESSIONS_ENV,
    is_session,
    known_sessions,
    list_session_dirs,
    resolve_session,
    safe_name,
    sessions_root,
    trial_dir_name,
)
from testbed.session.store.reader import SessionReader, open_reader
from testbed.session.store.records import CaptureRecord, EvalRecord, TrialRecord
from testbed.session.store.schema import SCHEMA_VERSION, DamagedSession
from testbed.session.store.writer import SessionStore

__all__ = [
    "COLUMNS", "DB_NAME", "SCHEMA_VERSION", "DamagedSession", "SESSIONS_ENV", "CaptureRecord", "EvalRecord", "SessionReader",
    "SessionStore", "TrialRecord", "flac_bytes", "is_session", "known_sessions", "list_session_dirs",
    "load_evaluations", "load_session_meta", "open_reader", "read_verified", "resolve_session", "safe_name",
    "sessions_root", "trial_dir_name", "wav_float_bytes", "write_atomic", "writer_running",
]
