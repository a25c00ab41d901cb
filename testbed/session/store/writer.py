"""The writing side of a session folder: :class:`SessionStore` (create, lock, recover, commit).

It reads through the same methods as :class:`~testbed.session.store.reader.SessionReader`; only
one process at a time writes, under the writer lock of :mod:`~testbed.session.store.lock`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from testbed.errors import SessionError
from testbed.fileio import atomic_write, fsync_dir
from testbed.names import inside
from testbed.session.store import commit, recovery, schema
from testbed.session.store.audio import sha256_hex, wav_float_bytes
from testbed.session.store.finite import quarantine_nonfinite
from testbed.session.store.lock import WriterLock
from testbed.session.store.paths import DB_NAME, resolve_session, trial_dir_name
from testbed.session.store.reader import SessionReader
from testbed.session.store.records import EvalRecord, TrialRecord
from testbed.session.trials import AttackConfig, TrialSpec

_WHY = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded"}


class SessionStore(SessionReader):
    """One session folder, for its writer. Open with :meth:`create` or :meth:`open`.

    ``readonly=True`` gives a reader (no writes; :meth:`lock` still works but should not be used).
    """

    def __init__(self, path: Path | str, readonly: bool = False):
        super().__init__(path, _writable=not readonly)
        self._lock = WriterLock(self.path)
        if not readonly:
            try:
                schema.migrate(self.db)
            except sqlite3.Error as exc:
                super().close()
                raise SessionError(f"{self.path / DB_NAME}: cannot bring session {self.session_id!r} to "
                                   f"schema {schema.SCHEMA_VERSION}: {exc}") from None

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
        """Create a new session folder (fails if it exists), built under a temp name and renamed.

        Parameters
        ----------
        meta : JSON-able values stored in the ``meta`` table (plan, rig, manifest, ...).
        files : extra files to write at the top of the folder (name -> bytes).
        utterances : ``(utterance_id, label, signal float32 (n_samples,) or None if unknown, meta)``.
        planned : the expanded trials in execution order.
        """
        path = Path(path)
        if ".." in path.parts or path.name.startswith("."):
            raise SessionError(f"{path}: a session id cannot be '..' or start with '.'; pick another --id")
        if path.exists():
            raise SessionError(f"{path}: a session with this id already exists; pick another --id")
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "audio").mkdir(parents=True)
            (tmp / "utterances").mkdir()
            (tmp / "perturbations").mkdir()
            for name, data in files.items():
                atomic_write(tmp / name, data)
            db = schema.connect(tmp / DB_NAME, readonly=False)
            try:
                commit.populate_new(db, tmp, meta=meta, attacks=attacks, utterances=utterances,
                                    planned=planned, sample_rate=sample_rate)
            finally:
                db.close()
            os.rename(tmp, path)
            fsync_dir(path.parent)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SessionError(f"{path}: cannot create the session folder: {exc.strerror or exc}") from None
        except BaseException:   # a bad value, a database error, Ctrl-C: no half-made folder stays
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path)

    @classmethod
    def open(cls, id_or_path: str | Path, root: Path | str | None = None,
             readonly: bool = False) -> "SessionStore":
        """Open an existing session by id (under the sessions root) or folder path."""
        return cls(resolve_session(id_or_path, root), readonly=readonly)

    def close(self) -> None:
        self.unlock()
        super().close()

    # -- locking --------------------------------------------------------------
    def lock(self) -> None:
        """Take the session's writer lock (released by the OS even on ``kill -9``)."""
        self._lock.acquire(self.session_id)

    def unlock(self) -> None:
        self._lock.release()

    @contextlib.contextmanager
    def locked(self) -> Iterator["SessionStore"]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    def is_running(self) -> bool:
        """Whether this object or another process holds the session's writer lock right now."""
        return self._lock.held or super().is_running()

    # -- recovery ---------------------------------------------------------------
    def recover(self) -> list[str]:
        """Delete half-written trials (folders with no committed row) and temp files.

        Returns the names removed. Needs the lock.
        """
        removed = recovery.half_written(self.path, self.done_ids())
        if removed:
            self.event("recovered", f"discarded half-written: {', '.join(removed)}")
        bad = recovery.damaged_cached(self.path, self.cached_hashes())
        if bad:
            self._forget_cached(bad)
            self.event("recovered", f"discarded unusable cached perturbation(s), crafted again: {', '.join(bad)}")
        return removed + bad

    # -- writing --------------------------------------------------------------------
    def event(self, kind: str, message: str) -> None:
        """Append a lifecycle record (started, stopped, interrupted, finished, error, ...)."""
        try:
            commit.rollback(self.db)   # an interrupted commit: its rows must not ride along
            commit.insert_event(self.db, kind, message)
        except sqlite3.Error:
            pass  # the event log is best effort; the error itself is raised by the caller

    def set_meta(self, key: str, value) -> None:
        """Store (or replace) one JSON-able ``meta`` value, e.g. the model cards a replay used."""
        try:
            commit.set_meta(self.db, key, value)
        except sqlite3.Error as exc:
            raise SessionError(f"{self.path / DB_NAME}: cannot store meta {key!r}: {exc}") from None

    def write_cached(self, rel: str, signal: np.ndarray, sample_rate: int) -> None:
        """Store an exact float32 signal (e.g. a crafted perturbation) at ``rel``, and its sha256.

        Raises
        ------
        SessionError
            ``rel`` leaves the session folder, the signal is not finite, or the disk refuses.
        """
        try:
            inside(self.path, rel)
        except ValueError as exc:
            raise SessionError(f"{self.path / rel}: refusing to write: it leaves the session folder "
                               f"{self.path} ({exc})") from None
        if not np.isfinite(np.asarray(signal)).all():
            raise SessionError(f"{self.path / rel}: the signal holds NaN or infinite samples; not stored")
        data = wav_float_bytes(signal, sample_rate)
        try:
            commit.set_cached(self.db, rel, None)   # a crash before the new row: unverified, not wrong
            atomic_write(self.path / rel, data)
            commit.set_cached(self.db, rel, sha256_hex(data))
        except OSError as exc:
            raise SessionError(f"{self.path / rel}: cannot write: {exc.strerror or exc}; "
                               f"free space or fix permissions, then resume") from None
        except sqlite3.Error as exc:
            raise SessionError(f"{self.path / DB_NAME}: cannot record {rel}: {exc}") from None

    def read_cached(self, rel: str) -> np.ndarray | None:
        """Like the reader's, but an unusable file is deleted (with an event), so the next run's
        crafting makes it again instead of tripping on it forever."""
        sig = super().read_cached(rel)
        if sig is None and (self.path / rel).is_file() and self._lock.held:
            try:
                (self.path / rel).unlink()
            except OSError:
                return None
            self._forget_cached([rel])
            self.event("recovered", f"discarded unusable cached perturbation {rel}; it is crafted again "
                                    f"on resume")
        return sig

    def _forget_cached(self, rels: list[str]) -> None:
        try:
            for rel in rels:
                commit.set_cached(self.db, rel, None)
        except sqlite3.Error:
            pass   # an orphan row names a missing file: harmless, it is replaced when crafted

    def commit_trial(self, rec: TrialRecord, sample_rate: int) -> None:
        """Commit one trial: files (temp, fsync, rename), then one transaction.

        A capture or played signal with NaN or inf samples is committed as a FAILED trial naming
        them (see :func:`~testbed.session.store.finite.quarantine_nonfinite`), never encoded as is.

        Raises
        ------
        SessionError
            The disk is full or read-only; the trial is not kept, nothing committed is touched.
        """
        rec = quarantine_nonfinite(rec)
        name = trial_dir_name(rec.trial_id)
        audio = self.path / "audio"
        final = audio / name
        if self.is_committed(rec.trial_id):
            raise SessionError(f"{final}: trial {rec.trial_id} is already committed; a session never "
                               f"rewrites a recorded trial")
        try:
            blobs = commit.trial_blobs(rec, sample_rate)
        except ValueError as exc:
            msg = f"{audio}: trial {rec.trial_id}: {exc}; the trial was not kept"
            self.event("error", msg)
            raise SessionError(msg) from None
        try:
            hashes = commit.place_trial_files(audio, name, blobs)
        except OSError as exc:
            why = _WHY.get(exc.errno, exc.strerror or str(exc))
            msg = (f"{audio}: cannot write trial {rec.trial_id}: {why}; the trial was not kept and "
                   f"nothing committed was touched; fix it and run 'testbed session resume {self.session_id}'")
            self.event("error", msg)
            raise SessionError(msg) from None
        try:
            commit.insert_trial(self.db, rec, name, hashes)
        except KeyboardInterrupt:
            with contextlib.suppress(sqlite3.Error):
                commit.rollback(self.db)
                if not self.is_committed(rec.trial_id):
                    shutil.rmtree(final, ignore_errors=True)
            raise
        except sqlite3.Error as exc:
            commit.rollback(self.db)
            shutil.rmtree(final, ignore_errors=True)
            msg = (f"{self.path / DB_NAME}: cannot commit trial {rec.trial_id}: {exc}; the trial was not "
                   f"kept; fix it and run 'testbed session resume {self.session_id}'")
            self.event("error", msg)
            raise SessionError(msg) from None

    def add_evaluations(self, rows: list[tuple[int, EvalRecord]], skip_existing: bool = False) -> int:
        """Append evaluations (e.g. a replay) in one transaction; returns how many were added.

        ``skip_existing``: rows already stored (same trial, mic, model, weights hash and source)
        are left out; otherwise such a row fails the whole transaction.
        """
        try:
            return commit.insert_evaluations(self.db, rows, skip_existing)
        except sqlite3.Error as exc:
            commit.rollback(self.db)
            raise SessionError(f"{self.path / DB_NAME}: cannot add evaluations: {exc}") from None
