"""The catalogue of sessions: every session under the sessions root, found by what its manifest knows.

``testbed session list`` prints it and :func:`catalog` returns it as a pandas DataFrame. A
session whose database is damaged is one ``damaged`` row (with the reason), filled from the
copies in its folder (``manifest.json``, ``plan.toml``, ``rig.toml``), and never hides the others.
Every read is read-only and never takes a writer's lock.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sqlite3
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from testbed.errors import SessionError
from testbed.session.store import DamagedSession, list_session_dirs, open_reader

#: What a session row holds, in this order (``--json`` and :func:`catalog`'s columns).
FIELDS = ("id", "state", "plan", "rig", "models", "tags", "created_at", "done", "total", "failed",
          "evaluations", "last_error", "path")
#: The keys ``--sort`` accepts.
SORT_KEYS = ("created", "id", "plan", "rig", "state", "done", "failed")
#: A tag key: letters, digits, ``-``, ``_``, ``.``.
TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TAG_VALUE_MAX = 256


def parse_tags(items: list[str] | None, option: str = "--tag") -> dict[str, str]:
    """``["site=lab2", "operator=ana"]`` -> ``{"site": "lab2", "operator": "ana"}``.

    Raises
    ------
    SessionError
        An item is not ``KEY=VALUE`` with a safe key and a printable value (names the option).
    """
    out: dict[str, str] = {}
    for i, item in enumerate(items or []):
        key, eq, value = item.partition("=")
        if not eq or not TAG_KEY.match(key):
            raise SessionError(f"{option}[{i}]: {item!r}: use KEY=VALUE with a KEY of letters, digits, "
                               f"'-', '_' or '.' (at most 64)")
        if not value.isprintable() or len(value) > _TAG_VALUE_MAX:
            raise SessionError(f"{option}[{i}]: {key}: the value must be printable, at most "
                               f"{_TAG_VALUE_MAX} characters")
        out[key] = value
    return out


def parse_when(text: str | None, option: str) -> float | None:
    """An ISO date or date-time (``2026-12-06``, ``2026-12-06T21:30``; local time unless it has an
    offset) as epoch seconds; ``None`` passes through.

    Raises
    ------
    SessionError
        Not a date (names the option).
    """
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SessionError(f"{option}: {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return when.timestamp()


@dataclass
class Filters:
    """What ``session list`` keeps: each given filter must match (globs allowed in names)."""

    rig: str | None = None
    plan: str | None = None
    model: str | None = None
    since: float | None = None            # epoch s, created at or after
    until: float | None = None            # epoch s, created before
    state: str | None = None
    tags: dict[str, str | None] = field(default_factory=dict)   # key -> value (None: any value)

    def keep(self, row: dict) -> bool:
        def like(value, pattern) -> bool:
            return value is not None and fnmatch.fnmatchcase(str(value), pattern)

        if self.rig is not None and not like(row["rig"], self.rig):
            return False
        if self.plan is not None and not like(row["plan"], self.plan):
            return False
        if self.model is not None and not any(like(m, self.model) for m in row["models"]):
            return False
        if self.state is not None and row["state"] != self.state:
            return False
        created = row["created_at"]
        if self.since is not None and (created is None or created < self.since):
            return False
        if self.until is not None and (created is None or created >= self.until):
            return False
        tags = row["tags"] or {}
        return all(k in tags and (v is None or tags[k] == v) for k, v in self.tags.items())


def tag_filters(items: list[str] | None) -> dict[str, str | None]:
    """``--tag site=lab2`` (that value) or ``--tag site`` (any value) filters."""
    out: dict[str, str | None] = {}
    for i, item in enumerate(items or []):
        key, eq, value = item.partition("=")
        if not TAG_KEY.match(key):
            raise SessionError(f"--tag[{i}]: {item!r}: use KEY or KEY=VALUE")
        out[key] = value if eq else None
    return out


def session_row(folder: Path) -> dict:
    """The catalogue row of one session folder; a damaged database gives a ``damaged`` row."""
    try:
        with open_reader(folder) as r:
            try:
                meta = r.meta()
                st = r.status(verify=False)
            except sqlite3.Error as exc:   # damage quick_check did not see
                raise DamagedSession(r.path / "session.sqlite", " ".join(str(exc).split())) from None
    except DamagedSession as exc:
        return _damaged_row(folder, exc.reason)
    except SessionError as exc:
        return _damaged_row(folder, str(exc))
    manifest = meta.get("manifest") or {}
    models = set(manifest.get("model_hashes") or {}) | set(meta.get("replay_model_cards") or {})
    return {
        "id": st["id"], "state": st["state"], "plan": st["plan"], "rig": st["rig"], "models": sorted(models),
        "tags": dict(meta.get("tags") or manifest.get("tags") or {}), "created_at": manifest.get("created_at"),
        "done": st["done"], "total": st["total"], "failed": st["failed"], "evaluations": st["evaluations"],
        "last_error": st["last_error"], "path": st["path"],
    }


def _damaged_row(folder: Path, reason: str) -> dict:
    """What the folder's own copies still say about a session whose database cannot be read."""
    manifest = _read(folder / "manifest.json", json.loads)
    plan = _read(folder / "plan.toml", tomllib.loads)
    rig = _read(folder / "rig.toml", tomllib.loads)
    return {
        "id": folder.name, "state": "damaged", "plan": plan.get("name"), "rig": rig.get("name"),
        "models": sorted(manifest.get("model_hashes") or {}), "tags": dict(manifest.get("tags") or {}),
        "created_at": manifest.get("created_at"), "done": None, "total": None, "failed": None,
        "evaluations": None, "last_error": f"damaged: {reason}", "path": str(folder),
    }


def _read(path: Path, parse) -> dict:
    try:
        out = parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError):
        return {}
    return out if isinstance(out, dict) else {}


def catalog_rows(root: Path | str | None = None, filters: Filters | None = None,
                 sort: str = "created", reverse: bool = False) -> list[dict]:
    """The catalogue as a list of rows (dicts with :data:`FIELDS`), filtered and sorted.

    Raises
    ------
    SessionError
        ``sort`` is not one of :data:`SORT_KEYS`.
    """
    if sort not in SORT_KEYS:
        raise SessionError(f"--sort: {sort!r}: use one of {', '.join(SORT_KEYS)}")
    rows = [session_row(d) for d in list_session_dirs(root)]
    if filters is not None:
        rows = [r for r in rows if filters.keep(r)]
    col = "created_at" if sort == "created" else sort

    def key(r: dict) -> tuple:
        v = r[col]
        return (v is None, v if v is not None else 0, r["id"])

    return sorted(rows, key=key, reverse=reverse)


def catalog(root: Path | str | None = None, *, rig: str | None = None, plan: str | None = None,
            model: str | None = None, since: str | None = None, until: str | None = None,
            state: str | None = None, tags: dict[str, str | None] | list[str] | None = None,
            sort: str = "created", reverse: bool = False):
    """Every session under the sessions root as a pandas DataFrame, one row per session.

    Parameters
    ----------
    root : sessions root (default ``$TESTBED_SESSIONS_DIR`` or ``./sessions``).
    rig, plan, model : names or globs (``model`` matches any model the session evaluated with).
    since, until : ISO dates; sessions created in ``[since, until)``.
    state : complete | running | killed | stopped | interrupted | error | created | damaged.
    tags : ``{"site": "lab2"}`` or ``["site=lab2", "operator"]`` (a key alone: any value).

    Returns
    -------
    DataFrame with columns :data:`FIELDS`; ``created_at`` is a UTC timestamp, ``models`` a list,
    ``tags`` a dict. A damaged session has state ``damaged`` and its reason in ``last_error``.
    """
    import pandas as pd

    tag_f = tag_filters(tags) if isinstance(tags, list) else dict(tags or {})
    f = Filters(rig=rig, plan=plan, model=model, since=parse_when(since, "since"),
                until=parse_when(until, "until"), state=state, tags=tag_f)
    df = pd.DataFrame(catalog_rows(root, f, sort, reverse), columns=list(FIELDS))
    df["created_at"] = pd.to_datetime(df["created_at"], unit="s", utc=True)
    for c in ("done", "total", "failed", "evaluations"):
        df[c] = df[c].astype("Int64")
    return df


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as a UTC ISO date-time (for ``--json``)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")
