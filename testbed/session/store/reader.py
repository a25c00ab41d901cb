"""The public read API of a session: what replay, export, analysis, ``session status`` / ``list``
and a live monitor read. A :class:`SessionReader` opens the database read-only and never
touches the writer's lock, so polling it can never make a writer's lock attempt fail.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from testbed.session.store.audio import cached_signal, file_problem, read_float, read_verified
from testbed.session.store.lock import writer_running
from testbed.session.store.paths import DB_NAME, resolve_session
from testbed.session.store.schema import DamagedSession, connect
from testbed.session.trials import AttackConfig, TrialSpec

#: One row per evaluation with its trial, plan, attack and capture (what ``load_evaluations`` shapes).
EVALUATIONS_SQL = """
SELECT e.trial_id, p.utterance_id, p.label, a.kind AS attack, p.attack_id, a.eps, a.target, a.source_model,
       a.over_the_air, p.delay_ms, t.realised_delay_ms, c.arrival_delay_ms, p.placement, p.repetition,
       e.mic, e.model, e.model_hash, e.eval_source, e.prediction, e.score_top, c.spr_db, c.snr_db,
       c.dist_user_m, c.dist_adv_m, c.angle_user_deg, c.angle_adv_deg, t.adv_x_m, t.adv_y_m, t.adv_z_m,
       t.xruns, c.clipped, c.peak_dbfs, c.rms_dbfs, t.failed, t.error, c.path AS capture_path,
       t.attempts, t.started_at, t.finished_at, t.placement_confirmed_at, e.created_at AS evaluated_at
FROM evaluations e
JOIN trials t ON t.trial_id = e.trial_id
JOIN planned p ON p.trial_id = e.trial_id
JOIN attacks a ON a.attack_id = p.attack_id
LEFT JOIN captures c ON c.trial_id = e.trial_id AND c.mic = e.mic
ORDER BY e.trial_id, e.mic, e.eval_id
"""

_LIFECYCLE = ("started", "stopped", "interrupted", "finished", "error")


def _guarded(method: Callable) -> Callable:
    """``method`` with SQLite errors from a database damaged after it was opened turned into one
    :class:`DamagedSession` line naming the session (``quick_check`` on open catches most)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError) or not isinstance(self, SessionReader):
                raise
            raise DamagedSession(self.path / DB_NAME, " ".join(str(exc).split())) from None

    return wrapper


class SessionReader:
    """Read access to one session folder; open with :meth:`open` (read-only SQLite, no lock)."""

    def __init__(self, path: Path | str, *, _writable: bool = False):
        self.path = Path(path)
        self.readonly = not _writable
        self.db = connect(self.path / DB_NAME, readonly=self.readonly)

    @classmethod
    def open(cls, id_or_path: str | Path, root: Path | str | None = None) -> "SessionReader":
        """Open an existing session by id (under the sessions root) or folder path, read-only."""
        return cls(resolve_session(id_or_path, root))

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def session_id(self) -> str:
        return self.path.name

    # -- what was planned -------------------------------------------------------------
    def meta(self) -> dict:
        """The ``meta`` table, JSON-decoded: plan, rig, manifest, sample_rate, ..."""
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def planned(self) -> list[TrialSpec]:
        rows = self.db.execute("SELECT trial_id, utterance_id, label, attack_id, delay_ms, placement, "
                               "repetition FROM planned ORDER BY trial_id")
        return [TrialSpec(*r) for r in rows]

    def done_ids(self) -> set[int]:
        """IDs of the committed trials."""
        return {r[0] for r in self.db.execute("SELECT trial_id FROM trials")}

    def is_committed(self, trial_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM trials WHERE trial_id = ?", (trial_id,)).fetchone() is not None

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
        """The clean command, float32 (n_samples,)."""
        _, p = self.utterances()[utterance_id]
        return read_float(p)

    def cached_hashes(self) -> dict[str, str]:
        """``{rel path: sha256}`` of the cached files written by this session's writer."""
        try:
            return dict(self.db.execute("SELECT path, sha256 FROM cached"))
        except sqlite3.OperationalError:   # a schema-1 session not opened by a writer since
            return {}

    def read_cached(self, rel: str) -> np.ndarray | None:
        """A cached exact signal (e.g. a perturbation) at ``rel``; ``None`` if missing or damaged
        (unreadable, not finite, or not the bytes the writer recorded)."""
        try:
            row = self.db.execute("SELECT sha256 FROM cached WHERE path = ?", (rel,)).fetchone()
        except sqlite3.OperationalError:   # a schema-1 session: no hashes recorded
            row = None
        return cached_signal(self.path / rel, row[0] if row else None)

    # -- what was recorded ----------------------------------------------------------------
    def captures(self) -> list[dict]:
        """Every capture row (trial_id, mic, path, sha256, levels, geometry), by trial then mic."""
        cur = self.db.execute("SELECT * FROM captures ORDER BY trial_id, mic")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur]

    def read_capture(self, capture: dict) -> tuple[np.ndarray | None, str | None]:
        """A capture row's audio, float32 (n_samples,), checked against its sha256: ``(sig, problem)``."""
        return read_verified(self.path / capture["path"], capture["sha256"])

    def capture_timing(self) -> list[tuple[int, str, float | None, dict]]:
        """``(trial_id, mic, dist_user_m, trial facts)`` of every capture (where each command starts)."""
        rows = self.db.execute(
            "SELECT c.trial_id, c.mic, c.dist_user_m, t.facts FROM captures c JOIN trials t USING (trial_id)")
        return [(tid, mic, dist, json.loads(facts or "{}")) for tid, mic, dist, facts in rows]

    def verify_captures(self) -> list[dict]:
        """Captures whose FLAC is missing, altered (sha256) or unreadable."""
        bad = []
        for c in self.captures():
            p = self.path / c["path"]
            _, problem = file_problem(p, c["sha256"])
            if problem:
                bad.append({"trial_id": c["trial_id"], "mic": c["mic"], "path": str(p), "problem": problem})
        return bad

    def evaluations_frame(self):
        """:data:`EVALUATIONS_SQL` as a pandas DataFrame (raw columns, one row per evaluation)."""
        import pandas as pd

        return pd.read_sql_query(EVALUATIONS_SQL, self.db)

    def evaluated(self, source: str) -> set[tuple[int, str, str, str | None]]:
        """``(trial_id, mic, model, model_hash)`` of every evaluation stored with ``eval_source = source``."""
        return set(self.db.execute("SELECT trial_id, mic, model, model_hash FROM evaluations "
                                   "WHERE eval_source = ?", (source,)))

    def events(self) -> list[dict]:
        return [{"time": t, "kind": k, "message": m}
                for t, k, m in self.db.execute("SELECT time, kind, message FROM events ORDER BY event_id")]

    # -- progress ---------------------------------------------------------------------------
    def status(self, verify: bool = True) -> dict:
        """Progress figures: ``done``, ``total``, ``failed``, ``last_error``, ``state`` and more.

        Never takes the writer's lock, so it is safe to poll while a run commits.
        """
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
        last = self.db.execute(f"SELECT kind, time FROM events WHERE kind IN {_LIFECYCLE!r} "
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
        """Whether a writer holds the session's lock right now (asked without taking it)."""
        return writer_running(self.path)

    def _state(self, done: int, total: int, last: str | None) -> str:
        """complete | running | killed (started, never stopped) | stopped | interrupted | error | created."""
        if done == total and total:
            return "complete"
        if self.is_running():
            return "running"
        if last == "started":
            return "killed"
        return {"finished": "stopped", None: "created"}.get(last, last)


for _name in ("meta", "planned", "done_ids", "is_committed", "pending", "attacks", "utterances", "cached_hashes",
              "read_cached", "captures", "capture_timing", "verify_captures", "evaluations_frame", "evaluated",
              "events", "status"):
    setattr(SessionReader, _name, _guarded(getattr(SessionReader, _name)))


def open_reader(id_or_path: str | Path, root: Path | str | None = None) -> SessionReader:
    """A read-only view of session ``id_or_path`` (use as a context manager)."""
    return SessionReader.open(id_or_path, root)
