"""The crash-safe session store: ``sessions/<id>/`` with SQLite (WAL) and audio files.

Layout::

    sessions/<id>/
        session.sqlite          meta, attacks, utterances, planned, trials, captures, evaluations, events
        plan.toml rig.toml calibration.toml manifest.json   copies made when the session was created
        utterances/<utt>.wav    the clean commands (float32 WAV, exact)
        perturbations/<key>.wav crafted perturbations (float32 WAV, exact), the craft cache
        audio/<trial:06d>/<mic>.flac               captures (24-bit FLAC)
        audio/<trial:06d>/<speaker>.played.flac    what each speaker was sent

A trial is committed by writing its files into ``audio/.tmp-...``, fsyncing them,
renaming the folder into place and then running ONE SQLite transaction. A trial
folder without a row in ``trials`` is a half-written trial: :meth:`SessionStore.recover`
deletes it and the runner redoes the trial. Readers only ever go through the database.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from testbed.errors import SessionError
from testbed.session.trials import AttackConfig, TrialSpec

DB_NAME = "session.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
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


def sessions_root(root: Path | str | None = None) -> Path:
    """Where sessions live: ``root``, else env ``TESTBED_SESSIONS_DIR``, else ``./sessions``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("TESTBED_SESSIONS_DIR") or "sessions")


def resolve_session(id_or_path: str | Path, root: Path | str | None = None) -> Path:
    """The folder of session ``id_or_path`` (an id under the sessions root, or a folder path)."""
    p = Path(id_or_path)
    if (p / DB_NAME).is_file():
        return p
    q = sessions_root(root) / str(id_or_path)
    if (q / DB_NAME).is_file():
        return q
    have = list_session_dirs(root)
    raise SessionError(
        f"{q}: no session {str(id_or_path)!r} (have: {', '.join(d.name for d in have[-8:]) or 'none'}; "
        f"see 'testbed session list')"
    )


def list_session_dirs(root: Path | str | None = None) -> list[Path]:
    """Session folders under the sessions root, oldest first."""
    r = sessions_root(root)
    if not r.is_dir():
        return []
    dirs = [d for d in r.iterdir() if not d.name.startswith(".") and (d / DB_NAME).is_file()]
    return sorted(dirs, key=lambda d: (d.stat().st_mtime, d.name))


def safe_name(s: str) -> str:
    """A file-name-safe version of an identifier."""
    return "".join(c if (c.isalnum() or c in "-_.") else "_" for c in s) or "_"


def flac_bytes(signal: np.ndarray, sample_rate: int) -> bytes:
    """``signal`` float32 (n_samples,) as 24-bit FLAC bytes (clipped to [-1, 1])."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(signal, dtype=np.float32), -1.0, 1.0), sample_rate,
             format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def wav_float_bytes(signal: np.ndarray, sample_rate: int) -> bytes:
    """``signal`` as an exact float32 WAV."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(signal, dtype=np.float32), sample_rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file, fsync and rename (no half-written file ever)."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


@dataclass
class CaptureRecord:
    """One mic's recording of a trial plus what was measured on it."""

    mic: str
    signal: np.ndarray                    # float32 (n_samples,)
    clipped: int = 0
    peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    spr_db: float | None = None
    snr_db: float | None = None
    arrival_delay_ms: float | None = None
    dist_user_m: float | None = None
    dist_adv_m: float | None = None
    angle_user_deg: float | None = None
    angle_adv_deg: float | None = None


@dataclass
class EvalRecord:
    """One model's prediction on one capture."""

    mic: str
    model: str
    model_hash: str | None
    eval_source: str                      # live | replay | serial
    prediction: str | None
    score_top: float | None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class TrialRecord:
    """Everything one trial commits."""

    trial_id: int
    captures: list[CaptureRecord]
    evaluations: list[EvalRecord]
    played: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)  # speaker -> (signal, offset)
    realised_delay_ms: float | None = None
    xruns: int = 0
    failed: bool = False
    error: str | None = None
    attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    placement_confirmed_at: float | None = None
    adv_pos_m: tuple[float, float, float] | None = None
    facts: dict = field(default_factory=dict)


class SessionStore:
    """One session folder. Open with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        db = self.path / DB_NAME
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None,
                                          check_same_thread=False)
            else:
                self.db = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self.db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise SessionError(f"{db}: cannot open the session database: {exc}") from None
        self._lock_fh = None

    # -- creation / opening -------------------------------------------------
    @classmethod
    def create(
        cls,
        path: Path,
        *,
        meta: dict,
        files: dict[str, bytes],
        attacks: list[AttackConfig],
        utterances: list[tuple[str, str, np.ndarray | None, dict]],
        planned: list[TrialSpec],
        sample_rate: int,
    ) -> "SessionStore":
        """Create a new session folder (fails if it exists).

        Parameters
        ----------
        meta : JSON-able values stored in the ``meta`` table (plan, rig, manifest, ...).
        files : extra files to write at the top of the folder (name -> bytes).
        utterances : ``(utterance_id, label, signal float32 (n_samples,) or None if unknown, meta)``.
        planned : the expanded trials in execution order.
        """
        path = Path(path)
        if path.exists():
            raise SessionError(f"{path}: a session with this id already exists; pick another --id")
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "audio").mkdir(parents=True)
            (tmp / "utterances").mkdir()
            (tmp / "perturbations").mkdir()
            for name, data in files.items():
                write_atomic(tmp / name, data)
            store = cls(tmp)
            db = store.db
            db.executescript(_SCHEMA)
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
                    write_atomic(tmp / rel, wav_float_bytes(sig, sample_rate))
                db.execute("INSERT INTO utterances VALUES (?,?,?,?)",
                           (uid, label, rel, json.dumps(umeta, default=str)))
            db.executemany("INSERT INTO planned VALUES (?,?,?,?,?,?,?)",
                           [(t.trial_id, t.utterance_id, t.label, t.attack_id, t.delay_ms, t.placement,
                             t.repetition) for t in planned])
            db.execute("INSERT INTO events(time, kind, message) VALUES (?,?,?)",
                       (time.time(), "created", f"{len(planned)} trials planned"))
            db.execute("COMMIT")
            db.close()
            os.rename(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SessionError(f"{path}: cannot create the session folder: {exc.strerror or exc}") from None
        return cls(path)

    @classmethod
    def open(cls, id_or_path: str | Path, root: Path | str | None = None,
             readonly: bool = False) -> "SessionStore":
        """Open an existing session by id (under the sessions root) or folder path."""
        return cls(resolve_session(id_or_path, root), readonly=readonly)

    def close(self) -> None:
        self.unlock()
        with contextlib.suppress(sqlite3.Error):
            self.db.close()

    def __enter__(self) -> "SessionStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def session_id(self) -> str:
        return self.path.name

    # -- locking --------------------------------------------------------------
    def lock(self) -> None:
        """Take the session's writer lock (released by the OS even on ``kill -9``)."""
        if self._lock_fh is not None:
            return
        fh = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise SessionError(f"{self.path}: session {self.session_id!r} is in use by another "
                               f"testbed process; wait for it to finish or stop it") from None
        self._lock_fh = fh

    def unlock(self) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    @contextlib.contextmanager
    def locked(self) -> Iterator["SessionStore"]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    # -- recovery ---------------------------------------------------------------
    def recover(self) -> list[str]:
        """Delete half-written trials (folders with no committed row) and temp files.

        Returns the names removed. Needs the lock.
        """
        removed: list[str] = []
        committed = self.done_ids()
        audio = self.path / "audio"
        for d in sorted(audio.iterdir()) if audio.is_dir() else []:
            if d.name.startswith(".tmp-") or not d.name.isdigit() or int(d.name) not in committed:
                shutil.rmtree(d) if d.is_dir() else d.unlink()
                removed.append(f"audio/{d.name}")
        for sub in ("perturbations", "utterances", "."):
            base = self.path / sub
            for f in base.glob(".tmp-*"):
                if f.is_file():
                    f.unlink()
                    removed.append(f"{sub}/{f.name}")
        if removed:
            self.event("recovered", f"discarded half-written: {', '.join(removed)}")
        return removed

    # -- reading ------------------------------------------------------------------
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def done_ids(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT trial_id FROM trials")}

    def planned(self) -> list[TrialSpec]:
        rows = self.db.execute("SELECT trial_id, utterance_id, label, attack_id, delay_ms, placement, "
                               "repetition FROM planned ORDER BY trial_id")
        return [TrialSpec(*r) for r in rows]

    def pending(self) -> list[TrialSpec]:
        done = self.done_ids()
        return [t for t in self.planned() if t.trial_id not in done]

    def attacks(self) -> dict[str, AttackConfig]:
        out = {}
        for aid, kind, eps, target, src, ota, params in self.db.execute("SELECT * FROM attacks"):
            out[aid] = AttackConfig(aid, kind, eps, target, src, bool(ota), json.loads(params))
        return out

    def utterances(self) -> dict[str, tuple[str, Path]]:
        """``{utterance_id: (label, path)}``."""
        return {u: (lab, self.path / p) for u, lab, p, _ in self.db.execute("SELECT * FROM utterances")}

    def read_utterance(self, utterance_id: str) -> np.ndarray:
        label, p = self.utterances()[utterance_id]
        sig, _ = sf.read(p, dtype="float32")
        return sig

    def captures(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM captures ORDER BY trial_id, mic")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur]

    def verify_captures(self) -> list[dict]:
        """Captures whose FLAC is missing, altered (sha256) or unreadable."""
        bad = []
        for c in self.captures():
            p = self.path / c["path"]
            problem = None
            try:
                data = p.read_bytes()
            except OSError as exc:
                problem = f"unreadable: {exc.strerror or exc}"
            else:
                if hashlib.sha256(data).hexdigest() != c["sha256"]:
                    problem = "content changed since it was recorded (sha256 mismatch)"
            if problem:
                bad.append({"trial_id": c["trial_id"], "mic": c["mic"], "path": str(p), "problem": problem})
        return bad

    def events(self) -> list[dict]:
        return [{"time": t, "kind": k, "message": m}
                for t, k, m in self.db.execute("SELECT time, kind, message FROM events ORDER BY event_id")]

    def status(self, verify: bool = True) -> dict:
        """Progress figures: ``done``, ``total``, ``failed``, ``last_error`` and more."""
        total = self.db.execute("SELECT COUNT(*) FROM planned").fetchone()[0]
        done, failed, xruns, clipped = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(failed),0), COALESCE(SUM(xruns),0), COALESCE(SUM(clipped),0) "
            "FROM trials").fetchone()
        last_trial_err = self.db.execute(
            "SELECT finished_at, error FROM trials WHERE error IS NOT NULL ORDER BY finished_at DESC LIMIT 1"
        ).fetchone()
        last_event_err = self.db.execute(
            "SELECT time, message FROM events WHERE kind = 'error' ORDER BY event_id DESC LIMIT 1").fetchone()
        errs = [e for e in (last_trial_err, last_event_err) if e is not None]
        last_error = max(errs, key=lambda e: e[0] or 0)[1] if errs else None
        n_eval = self.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        last = self.db.execute("SELECT kind, time FROM events WHERE kind IN "
                               "('started','stopped','interrupted','finished','error') "
                               "ORDER BY event_id DESC LIMIT 1").fetchone()
        corrupted = self.verify_captures() if verify else []
        if corrupted:
            last_error = f"{len(corrupted)} corrupted capture(s), first: {corrupted[0]['path']}: " \
                         f"{corrupted[0]['problem']}"
        m = self.meta()
        return {
            "id": self.session_id,
            "path": str(self.path),
            "plan": m.get("plan_name"),
            "rig": m.get("rig_name"),
            "done": int(done),
            "total": int(total),
            "failed": int(failed),
            "last_error": last_error,
            "state": self._state(done, total, last[0] if last else None),
            "evaluations": int(n_eval),
            "xruns": int(xruns),
            "clipped_trials": int(clipped),
            "corrupted": corrupted,
        }

    def is_running(self) -> bool:
        """Whether another process holds the session's writer lock right now."""
        if self._lock_fh is not None:
            return True
        try:
            with open(self.path / ".lock", "rb") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError:
            return False
        return False

    def _state(self, done: int, total: int, last: str | None) -> str:
        """complete | running | killed (started, never stopped) | stopped | interrupted | error | created."""
        if done == total and total:
            return "complete"
        if self.is_running():
            return "running"
        if last == "started":
            return "killed"
        return {"finished": "stopped", None: "created"}.get(last, last)

    # -- writing --------------------------------------------------------------------
    def event(self, kind: str, message: str) -> None:
        """Append a lifecycle record (started, stopped, interrupted, finished, error, ...)."""
        try:
            if self.db.in_transaction:   # an interrupted commit: its rows must not ride along
                self.db.execute("ROLLBACK")
            self.db.execute("INSERT INTO events(time, kind, message) VALUES (?,?,?)",
                            (time.time(), kind, message))
        except sqlite3.Error:
            pass  # the event log is best effort; the error itself is raised by the caller

    def write_cached(self, rel: str, signal: np.ndarray, sample_rate: int) -> None:
        """Store an exact float32 signal (e.g. a crafted perturbation) at ``rel``."""
        try:
            write_atomic(self.path / rel, wav_float_bytes(signal, sample_rate))
        except OSError as exc:
            raise SessionError(f"{self.path / rel}: cannot write: {exc.strerror or exc}; "
                               f"free space or fix permissions, then resume") from None

    def read_cached(self, rel: str) -> np.ndarray | None:
        p = self.path / rel
        if not p.is_file():
            return None
        try:
            sig, _ = sf.read(p, dtype="float32")
        except (sf.LibsndfileError, RuntimeError, OSError):
            return None  # a damaged cache entry is recomputed
        return sig

    def commit_trial(self, rec: TrialRecord, sample_rate: int) -> None:
        """Commit one trial: files (temp, fsync, rename), then one transaction.

        Raises
        ------
        SessionError
            The disk is full or read-only; the trial is not kept, nothing committed is touched.
        """
        name = f"{rec.trial_id:06d}"
        audio = self.path / "audio"
        final = audio / name
        tmp = audio / f".tmp-{name}-{os.getpid()}"
        hashes: dict[str, str] = {}
        if self.db.execute("SELECT 1 FROM trials WHERE trial_id = ?", (rec.trial_id,)).fetchone():
            raise SessionError(f"{final}: trial {rec.trial_id} is already committed; a session never "
                               f"rewrites a recorded trial")
        try:
            if final.exists():  # left by a crash between rename and commit: not committed
                shutil.rmtree(final)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            blobs = {f"{c.mic}.flac": flac_bytes(c.signal, sample_rate) for c in rec.captures}
            blobs.update({f"{spk}.played.flac": flac_bytes(sig, sample_rate)
                          for spk, (sig, _) in rec.played.items()})
            for fname, data in blobs.items():
                with open(tmp / fname, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                hashes[fname] = hashlib.sha256(data).hexdigest()
            _fsync_dir(tmp)
            os.rename(tmp, final)
            _fsync_dir(audio)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            why = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                   errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded"}.get(
                exc.errno, exc.strerror or str(exc))
            msg = (f"{audio}: cannot write trial {rec.trial_id}: {why}; the trial was not kept and "
                   f"nothing committed was touched; fix it and run 'testbed session resume {self.session_id}'")
            self.event("error", msg)
            raise SessionError(msg) from None
        try:
            self._insert(rec, name, hashes)
        except KeyboardInterrupt:
            with contextlib.suppress(sqlite3.Error):
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                if not self.db.execute("SELECT 1 FROM trials WHERE trial_id = ?", (rec.trial_id,)).fetchone():
                    shutil.rmtree(final, ignore_errors=True)
            raise
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            shutil.rmtree(final, ignore_errors=True)
            msg = (f"{self.path / DB_NAME}: cannot commit trial {rec.trial_id}: {exc}; the trial was not "
                   f"kept; fix it and run 'testbed session resume {self.session_id}'")
            self.event("error", msg)
            raise SessionError(msg) from None

    def _insert(self, rec: TrialRecord, name: str, hashes: dict[str, str]) -> None:
        db = self.db
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
        now = time.time()
        db.executemany(
            "INSERT INTO evaluations(trial_id, mic, model, model_hash, eval_source, prediction, score_top, "
            "scores, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [(rec.trial_id, e.mic, e.model, e.model_hash, e.eval_source, e.prediction, e.score_top,
              json.dumps(e.scores), now) for e in rec.evaluations])
        db.execute("COMMIT")

    def add_evaluations(self, rows: list[tuple[int, EvalRecord]]) -> int:
        """Append evaluations (e.g. a replay) in one transaction; returns how many."""
        now = time.time()
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO evaluations(trial_id, mic, model, model_hash, eval_source, prediction, "
                "score_top, scores, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                [(tid, e.mic, e.model, e.model_hash, e.eval_source, e.prediction, e.score_top,
                  json.dumps(e.scores), now) for tid, e in rows])
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise SessionError(f"{self.path / DB_NAME}: cannot add evaluations: {exc}") from None
        return len(rows)


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
