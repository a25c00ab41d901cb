"""The content-addressed perturbation cache, shared by sessions and ``testbed attack craft``.

A crafted perturbation is stored under the sha256 of everything that determines it: the
utterance's samples, the attack configuration (kind, bound, target, hyper-parameters and,
for over-the-air kinds, the rig), the source model's weights hash, the batch seed and the
utterance's position in its batch. A crash or a second run therefore never crafts twice,
and a changed model or utterance never reuses a stale perturbation.

Layout: ``<root>/perturbations/<key[:2]>/<key>.wav`` (float32 WAV, exact).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from testbed.fileio import atomic_write


def default_cache_root() -> Path:
    """``$TESTBED_CACHE_DIR`` or ``~/.cache/ota-testbed`` (the data corpus cache root too)."""
    env = os.environ.get("TESTBED_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ota-testbed"


def perturbation_key(utterance: np.ndarray, attack: dict, source_model_hash: str | None, seed: int,
                     position: int = 0) -> str:
    """Hex sha256 naming one perturbation.

    Parameters
    ----------
    utterance : float32 (n_samples,) the clean command the perturbation was crafted for.
    attack : JSON-able attack description (kind, eps, target, source_model, params, ...).
    source_model_hash : sha256 of the source model's weights.
    seed : the crafting batch's seed.
    position : the utterance's row in its crafting batch (random starts are drawn per row).
    """
    h = hashlib.sha256()
    h.update(b"ota-testbed perturbation v1\0")
    h.update(np.ascontiguousarray(utterance, dtype="<f4").tobytes())
    h.update(json.dumps(attack, sort_keys=True, default=str).encode())
    h.update(f"\0{source_model_hash}\0{int(seed)}\0{int(position)}".encode())
    return h.hexdigest()


class PerturbationCache:
    """Perturbations on disk by content key.

    Parameters
    ----------
    root : cache root (default :func:`default_cache_root`); files go to ``root/perturbations``.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        self.folder = self.root / "perturbations"

    key = staticmethod(perturbation_key)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.wav"

    def get(self, key: str) -> np.ndarray | None:
        """The cached float32 (n_samples,) perturbation, or None (missing or unreadable)."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            sig, _ = sf.read(p, dtype="float32")
        except (sf.LibsndfileError, RuntimeError, OSError):
            return None   # a damaged entry is crafted again
        return sig

    def put(self, key: str, signal: np.ndarray, sample_rate: int = 16000) -> None:
        """Store ``signal`` (float32 (n_samples,)) atomically; an unwritable cache is skipped."""
        p = self.path(key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            sf.write(buf, np.asarray(signal, dtype=np.float32), sample_rate, subtype="FLOAT", format="WAV")
            atomic_write(p, buf.getvalue(), durable=False)  # a torn entry only costs a re-craft
        except (OSError, RuntimeError):
            return   # the cache only saves time; the session keeps its own copy

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()
