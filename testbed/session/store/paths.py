"""Where sessions live and how an id becomes a folder: the one session lookup of the testbed."""

from __future__ import annotations

import os
from pathlib import Path

from testbed.errors import SessionError, TestbedError
from testbed.names import check_session_id, inside

#: The session database inside every session folder.
DB_NAME = "session.sqlite"
#: Environment variable naming the sessions root (default ``./sessions``).
SESSIONS_ENV = "TESTBED_SESSIONS_DIR"


def sessions_root(root: Path | str | None = None) -> Path:
    """Where sessions live: ``root``, else env ``TESTBED_SESSIONS_DIR``, else ``./sessions``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(SESSIONS_ENV) or "sessions")


def is_session(path: Path | str) -> bool:
    """Whether ``path`` is a session folder (it holds a session database)."""
    return (Path(path) / DB_NAME).is_file()


def _mtime(d: Path) -> float:
    try:
        return d.stat().st_mtime
    except OSError:   # removed while listing
        return 0.0


def list_session_dirs(root: Path | str | None = None) -> list[Path]:
    """Session folders under the sessions root, oldest first (then by name)."""
    r = sessions_root(root)
    if not r.is_dir():
        return []
    dirs = [d for d in r.iterdir() if not d.name.startswith(".") and is_session(d)]
    return sorted(dirs, key=lambda d: (_mtime(d), d.name))


def known_sessions(root: Path | str | None = None) -> list[str]:
    """IDs of the sessions under the sessions root, sorted by name."""
    return sorted(d.name for d in list_session_dirs(root))


def resolve_session(id_or_path: str | Path, root: Path | str | None = None,
                    error: type[TestbedError] = SessionError) -> Path:
    """The folder of session ``id_or_path`` (an id under the sessions root, or a folder path).

    Raises
    ------
    error (default SessionError)
        No such session; one line naming the sessions root and the sessions it holds.
    """
    p = Path(id_or_path)
    if is_session(p):
        return p
    where = sessions_root(root)
    q = where / str(id_or_path)
    if is_session(q):
        return q
    have = known_sessions(root)
    hint = (", ".join(have[:10]) + (" ..." if len(have) > 10 else "")) if have else "none recorded yet"
    raise error(f"{q}: no session {str(id_or_path)!r} under {where}/ (have: {hint}); "
                f"see 'testbed session list' or pass --sessions-dir")


def safe_name(s: str) -> str:
    """A file-name-safe version of an identifier."""
    return "".join(c if (c.isalnum() or c in "-_.") else "_" for c in s) or "_"


def trial_dir_name(trial_id: int) -> str:
    """The folder name of a trial's audio under ``audio/``: six digits."""
    return f"{trial_id:06d}"


def new_session_dir(root: Path | str, session_id: str, error: type[TestbedError] = SessionError) -> Path:
    """The folder a NEW session ``session_id`` gets under ``root``: the id must be a safe name (see
    :mod:`testbed.names`) and the folder must lie inside ``root``, else one-line ``error`` naming --id."""
    try:
        check_session_id(session_id)
        inside(root, session_id)
    except ValueError as exc:
        raise error(f"--id: {exc}") from None
    return Path(root) / session_id


def contained(folder: Path, name: str) -> Path:
    """``folder / name`` for a file the store writes, refused with :class:`SessionError` unless it is a
    plain file name that stays inside ``folder`` (no separator, no ``..``, not absolute)."""
    if not name or name != Path(name).name or name in (".", "..") or "\\" in name:
        raise SessionError(f"{folder}: refusing to write {name!r}: not a plain file name inside the folder")
    try:
        inside(folder, name)
    except ValueError as exc:
        raise SessionError(f"{folder}: refusing to write {name!r}: {exc}") from None
    return folder / name
