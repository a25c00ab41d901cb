"""Recovery after a crash: delete half-written trials and temp files (the writer holds the lock)."""

from __future__ import annotations

import shutil
from pathlib import Path

from testbed.session.store.audio import cached_signal


def half_written(folder: Path, committed: set[int]) -> list[str]:
    """Delete trial folders under ``folder/audio`` with no committed row, and ``.tmp-*`` leftovers.

    Returns the names removed, relative to ``folder``.
    """
    removed: list[str] = []
    audio = folder / "audio"
    for d in sorted(audio.iterdir()) if audio.is_dir() else []:
        if d.name.startswith(".tmp-") or not d.name.isdigit() or int(d.name) not in committed:
            shutil.rmtree(d) if d.is_dir() else d.unlink()
            removed.append(f"audio/{d.name}")
    for sub in ("perturbations", "utterances", "."):
        for f in (folder / sub).glob(".tmp-*"):
            if f.is_file():
                f.unlink()
                removed.append(f"{sub}/{f.name}")
    return removed


def damaged_cached(folder: Path, hashes: dict[str, str]) -> list[str]:
    """Delete cached perturbations under ``folder/perturbations`` that cannot be used (unreadable,
    empty, non-finite, or not the bytes recorded in ``hashes``), so they are crafted again.

    Returns the names removed, relative to ``folder``.
    """
    removed: list[str] = []
    for f in sorted((folder / "perturbations").glob("*.wav")):
        rel = f"perturbations/{f.name}"
        if f.is_file() and cached_signal(f, hashes.get(rel)) is None:
            f.unlink()
            removed.append(rel)
    return removed
