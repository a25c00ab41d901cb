"""What a live monitor reads from a session: small aggregate queries over the read-only database.

Every function takes a :class:`~testbed.session.store.reader.SessionReader` (read-only SQLite,
never the writer's lock) and an optional ``upto`` cut-off ``(finished_at, trial_id)``: only trials
committed at or before it count, so a finished session can be replayed trial by trial.
:func:`read_transaction` holds one read snapshot around several of them, so the figures agree.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3

from testbed.errors import SessionError
from testbed.session.store.paths import DB_NAME
from testbed.session.store.reader import SessionReader

Upto = tuple[float, int] | None

#: trials committed at or before the cut-off (``?`` x3: finished_at, finished_at, trial_id)
_CUT = "(t.finished_at < ? OR (t.finished_at = ? AND t.trial_id <= ?))"

_TRIAL_COLS = ("trial_id", "finished_at", "started_at", "attempts", "failed", "error", "xruns", "clipped",
               "adv_x_m", "adv_y_m", "adv_z_m", "label", "utterance_id", "attack", "delay_ms", "placement",
               "attack_kind", "eps")
_TRIAL_SELECT = ("SELECT t.trial_id, t.finished_at, t.started_at, t.attempts, t.failed, t.error, t.xruns, "
                 "t.clipped, t.adv_x_m, t.adv_y_m, t.adv_z_m, p.label, p.utterance_id, p.attack_id, p.delay_ms, "
                 "p.placement, a.kind, a.eps FROM trials t JOIN planned p USING (trial_id) "
                 "JOIN attacks a ON a.attack_id = p.attack_id")


def _where(upto: Upto, extra: str = "", after_trial_id: int | None = None) -> tuple[str, tuple]:
    conds = ([_CUT] if upto is not None else []) + ([extra] if extra else [])
    args = (upto[0], upto[0], upto[1]) if upto is not None else ()
    if after_trial_id is not None:      # a follower's increment: only trials it has not counted yet
        conds.append("t.trial_id > ?")
        args = (*args, after_trial_id)
    return (" WHERE " + " AND ".join(conds)) if conds else "", args


def committed_count(r: SessionReader) -> tuple[int, int]:
    """``(committed trials, the largest committed trial_id or -1)``: a follower's cheap "what is new?"."""
    n, top = r.db.execute("SELECT COUNT(*), COALESCE(MAX(trial_id), -1) FROM trials").fetchone()
    return int(n), int(top)


def trials_after(r: SessionReader, after_trial_id: int) -> list[dict]:
    """Every committed trial whose trial_id is above ``after_trial_id`` (columns of :func:`recent_trials`)."""
    rows = r.db.execute(f"{_TRIAL_SELECT} WHERE t.trial_id > ? ORDER BY t.trial_id", (after_trial_id,))
    return [dict(zip(_TRIAL_COLS, row)) for row in rows]


def commit_order(r: SessionReader) -> list[tuple[float, int]]:
    """``(finished_at, trial_id)`` of every committed trial, in commit order (the replay steps)."""
    return [(fa or 0.0, tid) for fa, tid in
            r.db.execute("SELECT finished_at, trial_id FROM trials ORDER BY finished_at, trial_id")]


def totals(r: SessionReader, upto: Upto = None, after_trial_id: int | None = None) -> dict:
    """``done``, ``failed``, ``xruns``, ``clipped_trials``, ``retried`` (trials that needed > 1 attempt);
    ``after_trial_id``: of the trials above it only."""
    w, a = _where(upto, after_trial_id=after_trial_id)
    done, failed, xruns, clipped, retried = r.db.execute(
        "SELECT COUNT(*), COALESCE(SUM(failed),0), COALESCE(SUM(xruns),0), COALESCE(SUM(clipped),0), "
        f"COALESCE(SUM(attempts > 1),0) FROM trials t{w}", a).fetchone()
    return {"done": int(done), "failed": int(failed), "xruns": int(xruns), "clipped_trials": int(clipped),
            "retried": int(retried)}


def recent_trials(r: SessionReader, n: int = 30, upto: Upto = None) -> list[dict]:
    """The last ``n`` committed trials, newest first (with label, attack, eps, delay, placement)."""
    w, a = _where(upto)
    rows = r.db.execute(f"{_TRIAL_SELECT}{w} ORDER BY t.finished_at DESC, t.trial_id DESC LIMIT ?", (*a, n))
    return [dict(zip(_TRIAL_COLS, row)) for row in rows]


def trouble_trials(r: SessionReader, n: int = 50, upto: Upto = None) -> list[dict]:
    """The last ``n`` trials that were retried, failed or carry an error, newest first."""
    w, a = _where(upto, "(t.attempts > 1 OR t.failed OR t.error IS NOT NULL)")
    rows = r.db.execute(f"{_TRIAL_SELECT}{w} ORDER BY t.finished_at DESC, t.trial_id DESC LIMIT ?", (*a, n))
    return [dict(zip(_TRIAL_COLS, row)) for row in rows]


def next_pending(r: SessionReader, from_trial_id: int = 0) -> dict | None:
    """The first planned trial not committed yet (the one a running session plays now), or None.

    ``from_trial_id``: none below it is pending (a follower's last answer: commits only add trials)."""
    row = r.db.execute(
        "SELECT p.trial_id, p.label, p.utterance_id, p.attack_id, p.delay_ms, p.placement, a.kind, a.eps "
        "FROM planned p JOIN attacks a ON a.attack_id = p.attack_id WHERE p.trial_id >= ? AND "
        "NOT EXISTS (SELECT 1 FROM trials t WHERE t.trial_id = p.trial_id) ORDER BY p.trial_id LIMIT 1",
        (from_trial_id,)).fetchone()
    if row is None:
        return None
    return dict(zip(("trial_id", "label", "utterance_id", "attack", "delay_ms", "placement", "attack_kind", "eps"),
                    row))


def trial_facts(r: SessionReader, trial_id: int) -> dict:
    """The backend's facts of one committed trial (levels, limiter, xruns), JSON-decoded."""
    row = r.db.execute("SELECT facts FROM trials WHERE trial_id = ?", (trial_id,)).fetchone()
    return json.loads(row[0] or "{}") if row else {}


def trial_captures(r: SessionReader, trial_id: int) -> list[dict]:
    """The capture rows of one trial (mic, path, sha256, n_samples, clipped, peak/rms dBFS)."""
    cur = r.db.execute("SELECT mic, path, sha256, n_samples, clipped, peak_dbfs, rms_dbfs, spr_db FROM captures "
                       "WHERE trial_id = ? ORDER BY mic", (trial_id,))
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row)) for row in cur]


def trial_predictions(r: SessionReader, trial_id: int) -> list[dict]:
    """``{mic, model, prediction}`` of every evaluation of one trial."""
    rows = r.db.execute("SELECT mic, model, prediction FROM evaluations WHERE trial_id = ? ORDER BY eval_id",
                        (trial_id,))
    return [{"mic": m, "model": mod, "prediction": p} for m, mod, p in rows]


def mic_clipping(r: SessionReader, upto: Upto = None, after_trial_id: int | None = None) -> dict[str, dict]:
    """Per mic: ``clipped_trials`` (captures with any clipped sample) and ``clipped_samples`` in all
    (``after_trial_id``: of the trials above it only)."""
    w, a = _where(upto, after_trial_id=after_trial_id)
    rows = r.db.execute("SELECT c.mic, COALESCE(SUM(c.clipped > 0),0), COALESCE(SUM(c.clipped),0) FROM captures c "
                        f"JOIN trials t USING (trial_id){w} GROUP BY c.mic", a)
    return {m: {"clipped_trials": int(k), "clipped_samples": int(s)} for m, k, s in rows}


def limiter_counts(r: SessionReader, upto: Upto = None, after_trial_id: int | None = None) -> dict[str, int]:
    """Per speaker: trials in which its safety limiter engaged (from the stored trial facts;
    ``after_trial_id``: of the trials above it only)."""
    w, a = _where(upto, after_trial_id=after_trial_id)
    rows = r.db.execute("SELECT j.key, COALESCE(SUM(j.value),0) FROM trials t, json_each(t.facts, '$.limited') j"
                        f"{w} GROUP BY j.key", a)
    return {k: int(v) for k, v in rows}


ERROR_KEYS = ("attack", "attack_kind", "eps", "delay_ms", "placement", "mic", "model")


def error_counts(r: SessionReader, upto: Upto = None, after_eval_id: int = 0) -> tuple[list[dict], int]:
    """Evaluations grouped by attack, eps, delay, placement, mic and model: ``n`` and ``wrong``.

    ``wrong`` counts predictions that differ from the command's label (the error rate's numerator).
    Evaluations are append-only, so a follower asks only for those after ``after_eval_id`` and adds
    them up; returns ``(rows, the last eval_id counted)``.
    """
    return _eval_counts(r, upto, after_eval_id, "p.attack_id, a.kind, a.eps, p.delay_ms, p.placement",
                        "e.prediction IS NOT p.label", "p.attack_id, p.delay_ms, p.placement", "",
                        (*ERROR_KEYS, "n", "wrong"))


def _eval_counts(r: SessionReader, upto: Upto, after_eval_id: int, columns: str, counted: str, group: str,
                 also: str, keys: tuple[str, ...]) -> tuple[list[dict], int]:
    """Evaluations after ``after_eval_id`` grouped by ``group``, mic and model: ``COUNT(*)`` and how
    many satisfy the SQL condition ``counted``."""
    w, a = _where(upto, "e.eval_id > ?" + also)
    last = r.db.execute("SELECT COALESCE(MAX(eval_id), 0) FROM evaluations").fetchone()[0]
    rows = r.db.execute(
        f"SELECT {columns}, e.mic, e.model, COUNT(*), SUM({counted}) FROM evaluations e "
        "JOIN trials t ON t.trial_id = e.trial_id JOIN planned p ON p.trial_id = e.trial_id "
        f"JOIN attacks a ON a.attack_id = p.attack_id{w} AND e.eval_id <= ? GROUP BY {group}, e.mic, e.model",
        (*a, after_eval_id, last))
    return [dict(zip(keys, row)) for row in rows], int(last)


TARGET_KEYS = ("attack", "attack_kind", "eps", "label", "target", "mic", "model")


def target_counts(r: SessionReader, upto: Upto = None, after_eval_id: int = 0) -> tuple[list[dict], int]:
    """Evaluations of targeted attacks (issue 24) grouped by attack, played label, mic and model:
    ``n`` and ``hits`` (the prediction is the attack's target). Incremental like :func:`error_counts`;
    ``([], after_eval_id)`` at once when the session has no targeted attack."""
    if r.db.execute("SELECT 1 FROM attacks WHERE target != 'untargeted' LIMIT 1").fetchone() is None:
        return [], after_eval_id
    return _eval_counts(r, upto, after_eval_id, "p.attack_id, a.kind, a.eps, p.label, a.target",
                        "e.prediction IS a.target",
                        "p.attack_id, p.label", " AND a.target != 'untargeted'", (*TARGET_KEYS, "n", "hits"))


def recent_events(r: SessionReader, n: int = 100, until: float | None = None) -> list[dict]:
    """The last ``n`` entries of the session's event log (time, kind, message), oldest first."""
    if until is None:
        rows = r.db.execute("SELECT time, kind, message FROM events ORDER BY event_id DESC LIMIT ?", (n,))
    else:
        rows = r.db.execute("SELECT time, kind, message FROM events WHERE time <= ? ORDER BY event_id DESC "
                            "LIMIT ?", (until, n))
    return [{"time": t, "kind": k, "message": m} for t, k, m in reversed(rows.fetchall())]


def data_version(r: SessionReader) -> int:
    """A number that changes whenever another connection commits to the database (SQLite's
    ``PRAGMA data_version``): the monitor's cheap "has anything changed?" probe."""
    try:
        return int(r.db.execute("PRAGMA data_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise SessionError(f"{r.path / DB_NAME}: cannot read the session database: {exc}") from None


def planned_count(r: SessionReader) -> int:
    return int(r.db.execute("SELECT COUNT(*) FROM planned").fetchone()[0])


@contextlib.contextmanager
def read_transaction(r: SessionReader):
    """Hold one read snapshot of the database for the queries inside (never blocks a writer in WAL).

    Raises
    ------
    SessionError
        The database cannot be read (damaged, removed): one line naming it.
    """
    began = False
    try:
        r.db.execute("BEGIN")
        began = True
    except sqlite3.Error:
        pass
    try:
        yield r
    except sqlite3.Error as exc:
        raise SessionError(f"{r.path / DB_NAME}: cannot read the session database: {exc}") from None
    finally:
        if began:
            with contextlib.suppress(sqlite3.Error):
                r.db.execute("COMMIT")
