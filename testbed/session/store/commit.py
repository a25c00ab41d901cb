"""Writing a session: creating its folder, committing a trial, appending evaluations and events.

A trial is committed by writing its files into ``audio/.tmp-...``, fsyncing them, renaming the
folder into place and then running ONE ``BEGIN IMMEDIATE`` transaction. A folder without its row
is a half-written trial that :mod:`~testbed.session.store.recovery` deletes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np

from testbed.fileio import atomic_write, fsync_dir
from testbed.session.store.audio import flac_bytes, sha256_hex, wav_float_bytes
from testbed.session.store.paths import contained, safe_name
from testbed.session.store.records import EvalRecord, TrialRecord
from testbed.session.store.schema import SCHEMA_VERSION, init_schema
from testbed.session.trials import AttackConfig, TrialSpec

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
    for uid, label, sig, umeta in utterances:
        rel = f"utterances/{safe_name(uid)}.wav" if sig is not None else ""
        if sig is not None:
            atomic_write(folder / rel, wav_float_bytes(sig, sample_rate))
        db.execute("INSERT INTO utterances VALUES (?,?,?,?)", (uid, label, rel, json.dumps(umeta, default=str)))
    db.executemany("INSERT INTO planned VALUES (?,?,?,?,?,?,?)",
                   [(t.trial_id, t.utterance_id, t.label, t.attack_id, t.delay_ms, t.placement,
                     t.repetition) for t in planned])
    insert_event(db, "created", f"{len(planned)} trials planned")
    db.execute("COMMIT")


def trial_blobs(rec: TrialRecord, sample_rate: int) -> dict[str, bytes]:
    """File name -> FLAC bytes of a trial: ``<mic>.flac`` and ``<speaker>.played.flac``."""
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
                fh.flush()
                os.fsync(fh.fileno())
            hashes[fname] = sha256_hex(data)
        fsync_dir(tmp)
        os.rename(tmp, final)
        fsync_dir(audio)
    except BaseException:   # any failure, an interrupt included: no .tmp- folder stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return hashes


def insert_trial(db: sqlite3.Connection, rec: TrialRecord, name: str, hashes: dict[str, str]) -> None:
    """The rows of one trial (trial, captures, played, evaluations) in ONE immediate transaction."""
    db.execute("BEGIN IMMEDIATE")
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
    db.execute("COMMIT")


def insert_evaluations(db: sqlite3.Connection, rows: list[tuple[int, EvalRecord]]) -> None:
    """Append ``(trial_id, evaluation)`` rows in one immediate transaction."""
    db.execute("BEGIN IMMEDIATE")
    db.executemany(_EVAL_INSERT, _eval_rows(rows))
    db.execute("COMMIT")


def insert_event(db: sqlite3.Connection, kind: str, message: str) -> None:
    db.execute("INSERT INTO events(time, kind, message) VALUES (?,?,?)", (time.time(), kind, message))


def set_meta(db: sqlite3.Connection, key: str, value) -> None:
    """Store (or replace) one JSON-able ``meta`` value."""
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))


def rollback(db: sqlite3.Connection) -> None:
    """Roll back an open transaction, if any (best effort)."""
    try:
        if db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


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
