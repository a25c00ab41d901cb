"""Exporting a session's evaluations as parquet or CSV.

The tables themselves come from the store's read API (:mod:`testbed.session.store.frames`);
``COLUMNS``, ``load_evaluations`` and ``load_session_meta`` stay importable from here.
"""

from __future__ import annotations

from pathlib import Path

from testbed.errors import SessionError
from testbed.session.store.frames import COLUMNS, load_evaluations, load_session_meta

__all__ = ["COLUMNS", "export_session", "load_evaluations", "load_session_meta"]


def export_session(session_dir: Path | str, fmt: str, out: Path | str | None = None) -> tuple[Path, int]:
    """Write :func:`load_evaluations` to ``out`` as parquet or csv; returns (path, rows)."""
    if fmt not in ("parquet", "csv"):
        raise SessionError(f"--format: {fmt!r} is not parquet or csv")
    df = load_evaluations(session_dir)
    sid = df["session_id"].iloc[0] if len(df) else Path(session_dir).name
    path = Path(out) if out is not None else Path(f"{sid}.{fmt}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
    except OSError as exc:
        raise SessionError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path, len(df)
