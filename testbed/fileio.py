"""Crash-safe file writes: the one place the testbed replaces a file on disk.

A writer puts the bytes in a temp file beside the target (a unique name, so two processes
never share one), optionally fsyncs it, renames it over the target and fsyncs the folder.
A reader therefore sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path | str) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path | str, data: bytes | str, durable: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically; returns the path.

    Parameters
    ----------
    path : the file to write; its folder must exist.
    data : bytes, or text (written as UTF-8).
    durable : fsync the file and its folder, so the new content survives a power cut
        (sessions, calibration, weights). ``False`` still never leaves a half-written file.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would not
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
    return path
