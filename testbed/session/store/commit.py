"""Writing a session: creating its folder, committing a trial, appending evaluations and events.

A trial is committed by writing its files into ``audio/.tmp-...``, fsyncing them, renaming the
folder into place and then running ONE ``BEGIN IMMEDIATE`` transaction. A folder without its row
is a half-written trial that :mod:`~testbed.session.store.recovery` deletes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from testbed.fileio import atomic_write, fsync_dir
from testbed.names import name_problem
from testbed.session.store.audio import flac_bytes, sha256_hex, wav_float_bytes
from testbed.session.store.paths import contained, safe_name
from testbed.session.store.records import EvalRecord, TrialRecord
from testbed.session.store.schema import SCHEMA_VERSION, init_schema
from testbed.session.trials import AttackConfig, TrialSpec

#: The steps of a trial commit, in order; :data:`STEP_HOOK` is called with each as it completes.
STEPS = ("written", "fsynced", "renamed", "begun", "inserted", "committed")
#: Fault-injection hook (tests only): ``STEP_HOOK(step)`` after each of :data:`STEPS`; a test
#: kills the process there to prove a crash at any step loses and duplicates nothing.
STEP_HOOK: Callable[[str], None] | None = None

#: What a mic or speaker name must look like to become a file name inside a trial's folder.

_EVAL_INSERT = ("INSERT INTO evaluations(trial_id, mic, model, model_hash, eval_source, prediction, score_top, "
                "scores, created_at) VALUES (?,?,?,?,?,?,?,?,?)")


def populate_new(db: sqlite3.Connection, folder: Path, *, meta: dict, attacks: list[AttackConfig],
                 utterances: list[tuple[str, str, np.ndarray | None, dict]], planned: list[TrialSpec],
                 sample_rate: int) -> None:
    """Schema, meta, attacks, utterances (their WAVs written under ``folder``) and the plan, in one
    transaction on a new session database."""
    init_schema(db)
    db.execute("BEGIN IMMEDIATE")
    for k, v in {**meta, "schema_version": SCHEMA_VERSION}.items():
        db.execute("INSERT INTO meta VALUES (?, ?)", (k, json.dumps(v, default=str)))
    for a in attacks:
        db.execute("INSERT INTO attacks VALUES (?,?,?,?,?,?,?)",
                   (a.attack_id, a.kind, a.eps, a.target, a.source_model, int(a.over_the_air),
                    json.dumps(a.params, sort_keys=True, default=str)))
    used: set[str] = set()
    for uid, label, sig, umeta in utterances:
        rel = _unique_rel("utterances", uid, used) if sig is not None else ""
        if sig is not None:
            atomic_write(folder / rel, wav_float_bytes(sig, sample_rate))
        db.execute("INSERT INTO utterances VALUES (?,?,?,?)", (uid, label, rel, json.dumps(umeta, default=str)))
    db.executemany("INSERT INTO planned VALUES (?,?,?,?,?,?,?)",
                   [(t.trial_id, t.utterance_id, t.label, t.attack_id, t.delay_ms, t.placement,
                     t.repetition) for t in planned])
    insert_event(db, "created", f"{len(planned)} trials planned")
    db.execute("COMMIT")


def _unique_rel(sub: str, name: str, used: set[str]) -> str:
    """``sub/<safe name>.wav``, made unique among ``used`` (two ids may have the same safe name)."""
    stem = safe_name(name).lstrip(".") or "_"
    rel = f"{sub}/{stem}.wav"
    if rel.lower() in used:
        rel = f"{sub}/{stem}-{hashlib.sha256(name.encode()).hexdigest()[:10]}.wav"
    used.add(rel.lower())
    return rel


def check_file_names(rec: TrialRecord) -> None:
    """Refuse a trial whose mic or speaker names cannot be file names inside its folder.

    A name must be a safe name (:func:`testbed.names.name_problem`: letters, digits, ``-``, ``_``,
    ``.``, starting with a letter or digit, no ``..``) and the trial's files must not collide (a mic called ``user.played`` would overwrite the
    user speaker's played file).

    Raises
    ------
    ValueError
        One line naming the mic or speaker.
    """
    named = ([("mic", c.mic, f"{c.mic}.flac") for c in rec.captures]
             + [("speaker", s, f"{s}.played.flac") for s in rec.played])
    seen: dict[str, tuple[str, str]] = {}
    clash: dict[str, str] = {}
    for kind, name, fname in named:
        key = str(fname).lower()
        if key in seen:
            other_name, other = seen[key]
            clash[name] = clash[other_name] = (f"{kind} {name!r} and {other} would both write {fname} "
                                               f"(two files of the trial would be one)")
        seen.setdefault(key, (name, f"{kind} {name!r}"))
    for kind, name, _ in named:              # the one name rule of testbed.names
        problem = name_problem(name)
        if problem is not None:
            also = f"; {clash[name]}" if name in clash else ""
            raise ValueError(f"{kind} name {problem}; it cannot be a file name{also}")
    if clash:
        raise ValueError(next(iter(clash.values())))


def trial_blobs(rec: TrialRecord, sample_rate: int) -> dict[str, bytes]:
    """File name -> FLAC bytes of a trial: ``<mic>.flac`` and ``<speaker>.played.flac``.

    Raises ValueError (see :func:`check_file_names`; a NaN sample is refused by the encoder, and the
    writer has already stored such a trial as failed, see :mod:`~testbed.session.store.finite`)
    before writing anything.
    """
    check_file_names(rec)
    blobs = {f"{c.mic}.flac": flac_bytes(c.signal, sample_rate) for c in rec.captures}
    blobs.update({f"{spk}.played.flac": flac_bytes(sig, sample_rate) for spk, (sig, _) in rec.played.items()})
    return blobs


def place_trial_files(audio: Path, name: str, blobs: dict[str, bytes]) -> dict[str, str]:
    """Write ``blobs`` into ``audio/.tmp-<name>-<pid>``, fsync each file and the folder, rename it to
    ``audio/<name>`` and fsync ``audio``; returns file name -> sha256.

    A leftover ``audio/<name>`` (a crash between rename and commit: never committed) is replaced.
    Raises OSError (or SessionError for a file name that would leave the folder) with nothing left behind.
    """
    final = audio / name
    tmp = audio / f".tmp-{name}-{os.getpid()}"
    try:
        if final.exists():
            shutil.rmtree(final)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        hashes = {}
        for fname, data in blobs.items():
            with open(contained(tmp, fname), "wb") as fh:   # the folder rename below is what makes it atomic
                fh.write(data)
            hashes[fname] = sha256_hex(data)
        _step("written")
        for fname in blobs:
            fd = os.open(tmp / fname, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(tmp)
        _step("fsynced")
        os.rename(tmp, final)
        fsync_dir(audio)
        _step("renamed")
    except BaseException:   # any failure, an interrupt included: no .tmp- folder stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return hashes


def insert_trial(db: sqlite3.Connection, rec: TrialRecord, name: str, hashes: dict[str, str]) -> None:
    """The rows of one trial (trial, captures, played, evaluations) in ONE immediate transaction."""
    db.execute("BEGIN IMMEDIATE")
    _step("begun")
    adv = rec.adv_pos_m or (None, None, None)
    db.execute(
        "INSERT INTO trials(trial_id, realised_delay_ms, xruns, clipped, failed, error, attempts, "
        "started_at, finished_at, placement_confirmed_at, adv_x_m, adv_y_m, adv_z_m, facts, audio_dir) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (rec.trial_id, rec.realised_delay_ms, rec.xruns, int(any(c.clipped for c in rec.captures)),
         int(rec.failed), rec.error, rec.attempts, rec.started_at, rec.finished_at or time.time(),
         rec.placement_confirmed_at, *adv, json.dumps(rec.facts, default=_json_default), f"audio/{name}"))
    for c in rec.captures:
        db.execute(
            "INSERT INTO captures VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.trial_id, c.mic, f"audio/{name}/{c.mic}.flac", hashes[f"{c.mic}.flac"], int(len(c.signal)),
             int(c.clipped), c.peak_dbfs, c.rms_dbfs, _num(c.spr_db), _num(c.snr_db), c.arrival_delay_ms,
             c.dist_user_m, c.dist_adv_m, c.angle_user_deg, c.angle_adv_deg))
    for spk, (_, offset) in rec.played.items():
        db.execute("INSERT INTO played VALUES (?,?,?,?,?)",
                   (rec.trial_id, spk, f"audio/{name}/{spk}.played.flac", hashes[f"{spk}.played.flac"],
                    float(offset)))
    db.executemany(_EVAL_INSERT, _eval_rows([(rec.trial_id, e) for e in rec.evaluations]))
    _step("inserted")
    db.execute("COMMIT")
    _step("committed")


def insert_evaluations(db: sqlite3.Connection, rows: list[tuple[int, EvalRecord]],
                       skip_existing: bool = False) -> int:
    """Append ``(trial_id, evaluation)`` rows in one immediate transaction; returns how many were added.

    ``skip_existing``: a row whose (trial, mic, model, weights hash, source) is already stored is
    left out (the unique index decides) instead of failing the transaction.
    """
    sql = _EVAL_INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO") if skip_existing else _EVAL_INSERT
    db.execute("BEGIN IMMEDIATE")
    before = db.total_changes
    db.executemany(sql, _eval_rows(rows))
    added = db.total_changes - before
    db.execute("COMMIT")
    return added


def insert_event(db: sqlite3.Connection, kind: str, message: str) -> None:
    db.execute("INSERT INTO events(time, kind, message) VALUES (?,?,?)", (time.time(), kind, message))


def set_meta(db: sqlite3.Connection, key: str, value) -> None:
    """Store (or replace) one JSON-able ``meta`` value."""
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))


def set_cached(db: sqlite3.Connection, rel: str, sha256: str | None) -> None:
    """Record (or, with ``sha256=None``, forget) the sha256 of a cached file at ``rel``."""
    if sha256 is None:
        db.execute("DELETE FROM cached WHERE path = ?", (rel,))
    else:
        db.execute("INSERT OR REPLACE INTO cached VALUES (?, ?)", (rel, sha256))


def rollback(db: sqlite3.Connection) -> None:
    """Roll back an open transaction, if any (best effort)."""
    try:
        if db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _step(name: str) -> None:
    if STEP_HOOK is not None:
        STEP_HOOK(name)


def _eval_rows(rows: list[tuple[int, EvalRecord]]) -> list[tuple]:
    now = time.time()
    return [(tid, e.mic, e.model, e.model_hash, e.eval_source, e.prediction, e.score_top,
             json.dumps(e.scores), now) for tid, e in rows]


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
