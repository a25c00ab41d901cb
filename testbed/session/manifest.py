"""What a session stores to be reproducible: versions, git revision, host, hashes."""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

#: Distributions whose versions are recorded in every manifest.
PACKAGES = ("ota-testbed", "numpy", "scipy", "torch", "torchaudio", "pyroomacoustics", "soundfile",
            "sounddevice", "pyserial", "pydantic", "pandas", "pyarrow")


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (None when absent)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(path: Path | None = None) -> str | None:
    """The git commit of the source tree (``+dirty`` when modified), or None outside git."""
    where = path or Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def build_manifest(*, seed: int, model_hashes: dict[str, str | None], plan_sha256: str | None,
                   rig_sha256: str | None, calibration_sha256: str | None) -> dict:
    """The manifest stored with every session (JSON-able); ``allocator`` says whether this
    process keeps freed memory (:mod:`testbed.models.allocator`), as the ``testbed`` command sets it."""
    # function-level for start-up cost only (testbed.models loads torch; the session package
    # must not): models never imports session, so this is no cycle
    from testbed.models.allocator import allocator_state

    return {
        "created_at": time.time(),
        "seed": seed,
        "model_hashes": model_hashes,
        "plan_sha256": plan_sha256,
        "rig_sha256": rig_sha256,
        "calibration_sha256": calibration_sha256,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "git_revision": git_revision(),
        "allocator": allocator_state(),
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(),
                 "machine": platform.machine()},
    }
