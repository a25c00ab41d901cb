"""A live session's running figures, read incrementally: each look reads only the trials committed since.

Trials are append-only in the store, and a run commits them mostly in trial order, so the trials
above the largest id already counted are the new ones. When a commit came out of trial order (the
count does not add up; e.g. cluster workers), the follower counts everything again, once.
"""

from __future__ import annotations

from testbed.session.store import SessionReader
from testbed.session.store import live

#: Trials kept for the "last trial" and the ETA's pace; trials with trouble kept for the event list.
RECENT, TROUBLE = 30, 50
_TOTAL_KEYS = ("done", "failed", "xruns", "clipped_trials", "retried")


def _newest_first(t: dict) -> tuple:
    """Sort key of :func:`live.recent_trials`' order, reversed (SQLite puts NULL below every number)."""
    fa = t["finished_at"]
    return (fa is not None, fa if fa is not None else 0.0, t["trial_id"])


def _trouble(t: dict) -> bool:
    return (t["attempts"] or 0) > 1 or bool(t["failed"]) or t["error"] is not None


class TrialFollower:
    """Totals, per-mic clipping, limiter counts, the last trials and the trials with trouble of one
    session, as :mod:`testbed.session.store.live` gives them for the whole session, kept up to date
    by :meth:`update` (call it inside :func:`live.read_transaction`)."""

    def __init__(self) -> None:
        self.recounts = 0          # full recounts so far (the first look included)
        self._reset()

    def _reset(self) -> None:
        self.n, self.top = 0, -1
        self.totals = dict.fromkeys(_TOTAL_KEYS, 0)
        self.clipping: dict[str, dict] = {}
        self.limiter: dict[str, int] = {}
        self.recent: list[dict] = []       # newest first, at most RECENT
        self.trouble: list[dict] = []      # newest first, at most TROUBLE
        self.first_pending = 0             # no planned trial below it is pending

    def update(self, r: SessionReader) -> None:
        """Read the trials committed since the last call and add them in."""
        n, top = live.committed_count(r)
        if (n, top) == (self.n, self.top):
            return
        new = live.trials_after(r, self.top)
        if self.n + len(new) != n:      # a commit below the largest id counted: count everything again
            self._reset()
            new = live.trials_after(r, self.top)
        if self.n == 0:
            self.recounts += 1
        after = self.top
        for k, v in live.totals(r, after_trial_id=after).items():
            self.totals[k] += v
        for mic, c in live.mic_clipping(r, after_trial_id=after).items():
            acc = self.clipping.setdefault(mic, {"clipped_trials": 0, "clipped_samples": 0})
            acc["clipped_trials"] += c["clipped_trials"]
            acc["clipped_samples"] += c["clipped_samples"]
        for spk, k in live.limiter_counts(r, after_trial_id=after).items():
            self.limiter[spk] = self.limiter.get(spk, 0) + k
        self.recent = sorted(self.recent + new, key=_newest_first, reverse=True)[:RECENT]
        self.trouble = sorted(self.trouble + [t for t in new if _trouble(t)], key=_newest_first,
                              reverse=True)[:TROUBLE]
        self.n, self.top = n, top

    def next_pending(self, r: SessionReader) -> dict | None:
        """:func:`live.next_pending`, searched from the last answer on (commits only add trials)."""
        pending = live.next_pending(r, self.first_pending)
        if pending is not None:
            self.first_pending = pending["trial_id"]
        return pending
