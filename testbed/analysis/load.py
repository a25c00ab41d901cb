"""Finding sessions and reading their evaluations through the session store's public read API only.

Imports nothing of ``testbed.session`` but ``testbed.session.store`` (no runner, audio or torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from testbed.errors import AnalysisError, TestbedError
from testbed.session import store

#: Environment variable naming the sessions root (default ``./sessions``).
SESSIONS_ENV = store.SESSIONS_ENV
sessions_root = store.sessions_root
known_sessions = store.known_sessions


def resolve_session(ident: str | Path, root: Path | str | None = None) -> Path:
    """The folder of session ``ident`` (an ID under the sessions root, or a path to the folder).

    The store's one session lookup (:func:`testbed.session.store.resolve_session`).

    Raises
    ------
    AnalysisError
        When no such session exists, listing the ones that do.
    """
    return store.resolve_session(ident, root, error=AnalysisError)


@dataclass
class Sessions:
    """Evaluations of one or more sessions, pooled, with each session's metadata."""

    evaluations: pd.DataFrame
    meta: dict[str, dict] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(self.paths)


def load_sessions(idents: Sequence[str | Path], root: Path | str | None = None) -> Sessions:
    """Read the evaluations and metadata of every session in ``idents`` (pooled into one frame).

    Uses only the session store's read API (``load_evaluations`` and ``load_session_meta``).

    Raises
    ------
    AnalysisError
        A session is unknown, or holds no evaluations yet.
    """
    if not idents:
        raise AnalysisError("give at least one session ID (see 'testbed session list')")
    frames, meta, paths = [], {}, {}
    for ident in idents:
        path = resolve_session(ident, root)
        sid = path.name
        if sid in paths:
            continue
        try:
            df = store.load_evaluations(path)
            m = store.load_session_meta(path)
        except TestbedError:
            raise
        except (OSError, ValueError, KeyError) as exc:  # unreadable store: one line
            raise AnalysisError(f"session {sid!r} ({path}): cannot read the store: {exc}") from None
        if df is None or len(df) == 0:
            raise AnalysisError(
                f"session {sid!r} ({path}): no evaluations recorded yet; "
                f"run 'testbed session resume {sid}' or 'testbed session replay {sid}'"
            )
        df = df.copy()
        if "session_id" not in df.columns:
            df["session_id"] = sid
        frames.append(df)
        meta[sid] = dict(m or {})
        paths[sid] = path
    return Sessions(pd.concat(frames, ignore_index=True), meta, paths)


def rig_from_meta(meta: dict, session_dir: Path | None = None):
    """The :class:`~testbed.rig.Rig` a session ran on, from its metadata or its copy of the rig file.

    Returns ``None`` when neither holds a readable rig (plots then omit the floor plan).
    """
    import tomllib

    from testbed.rig import Rig, load_rig, parse_rig

    rig = meta.get("rig") if meta else None
    try:
        if isinstance(rig, Rig):
            return rig
        if isinstance(rig, dict):
            return parse_rig(rig, (session_dir or Path(".")) / "rig.toml")
        if isinstance(rig, str):
            if "\n" in rig or "=" in rig:
                return parse_rig(tomllib.loads(rig), (session_dir or Path(".")) / "rig.toml")
            if Path(rig).is_file():
                return load_rig(rig)
        if session_dir is not None:
            for name in ("rig.toml", *(p.name for p in sorted(session_dir.glob("*.toml")))):
                p = session_dir / name
                if p.is_file():
                    try:
                        return load_rig(p)
                    except TestbedError:
                        continue
    except (TestbedError, tomllib.TOMLDecodeError):
        return None
    return None
