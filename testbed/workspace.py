"""Workspace layout: where rigs, calibration profiles, sessions, analyses and models live."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

SUBDIRS = ("rigs", "calibration", "sessions/plans", "analysis", "models")


def assets_dir() -> Path:
    """The package's bundled assets (example rigs, plans, noise recordings)."""
    return Path(str(resources.files("testbed") / "assets"))


def init_workspace(directory: Path | str, force: bool = False) -> list[Path]:
    """Create the workspace folders and copy the example rigs and plans; returns files written."""
    root = Path(directory)
    for sub in SUBDIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for kind, dest in (("rigs", root / "rigs"), ("plans", root / "sessions" / "plans")):
        src_dir = assets_dir() / kind
        if not src_dir.is_dir():
            continue
        for src in sorted(src_dir.glob("*.toml")):
            target = dest / src.name
            if target.exists() and not force:
                continue
            shutil.copyfile(src, target)
            written.append(target)
    return written
