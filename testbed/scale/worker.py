"""What a Dask worker keeps between tasks: models (by weights hash) and simulated backends.

A task never receives a model object. It receives a :class:`ModelRef`: the model's card and
its safetensors bytes, scattered to the workers once per job. The first task on a worker
that needs a model writes the two files into a private folder and loads them with the zoo
(which checks the weights' sha256 against the card); later tasks reuse the loaded model.
"""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, int], object] = {}     # (model hash, thread) -> LoadedModel
_BACKENDS: dict[tuple[str, int], object] = {}   # (rig + seed digest, thread) -> backend
_STATE: dict[str, object] = {}
#: How many times this process loaded a model (tests check "once per worker").
LOADS: dict[str, int] = {}


@dataclass(frozen=True)
class ModelRef:
    """A zoo model as plain data: name, weights sha256, card (dict) and safetensors bytes."""

    name: str
    model_hash: str
    card: dict
    weights: bytes


def model_ref(models, name: str) -> ModelRef:
    """The :class:`ModelRef` of ``name`` from a :class:`testbed.session.deps.Models` zoo adapter."""
    from testbed.errors import ModelError

    zoo = models._zoo
    card = dict(zoo.card(name))
    path = Path(zoo.root) / name / "weights.safetensors"
    try:
        weights = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read weights ({exc.strerror or exc}); rebuild the model") from None
    return ModelRef(name, str(card.get("weights_sha256")), card, weights)


def _scratch() -> Path:
    if "scratch" not in _STATE:
        _STATE["scratch"] = tempfile.TemporaryDirectory(prefix="testbed-worker-models-")
    return Path(_STATE["scratch"].name)


def _undo_malloc_trim() -> None:
    """Give glibc back its dynamic mmap threshold where a Dask nanny set ``MALLOC_TRIM_THRESHOLD_``.

    With that variable set, every large tensor allocation is a fresh mmap (page faults on each
    PGD step): measured 2.5x slower crafting. Values as glibc's defaults grow to (32 MiB).
    """
    import ctypes
    import os
    import sys

    if not os.environ.get("MALLOC_TRIM_THRESHOLD_") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


def setup_torch() -> None:
    """One intra-op thread per task slot (Dask runs one task per thread already), and a fast allocator."""
    if not _STATE.get("torch"):
        import torch

        _undo_malloc_trim()
        torch.set_num_threads(1)
        _STATE["torch"] = True


def worker_model(ref: ModelRef):
    """The :class:`~testbed.session.deps.LoadedModel` for ``ref``, loaded once per worker thread
    (attacks toggle a model's gradient flags, so two threads never share one module)."""
    key = (ref.model_hash, threading.get_ident())
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        from testbed.session.deps import Models

        setup_torch()
        root = _scratch() / f"{ref.model_hash[:16]}-{threading.get_ident()}"
        folder = root / ref.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "weights.safetensors").write_bytes(ref.weights)
        (folder / "card.json").write_text(json.dumps(ref.card))
        loaded = Models(root).load(ref.name)
        _MODELS[key] = loaded
        LOADS[ref.model_hash] = LOADS.get(ref.model_hash, 0) + 1
        return loaded


def worker_backend(rig, seed: int):
    """The simulated backend for ``rig`` and ``seed``, opened once per worker thread (the runner
    sets its per-trial noise index before each trial)."""
    import hashlib

    key = (hashlib.sha256(f"{rig.model_dump_json()}|{seed}".encode()).hexdigest(), threading.get_ident())
    with _LOCK:
        if key not in _BACKENDS:
            from testbed.audio import open_backend

            _BACKENDS[key] = open_backend(rig, None, seed=seed)
        return _BACKENDS[key]


def load_counts() -> dict[str, int]:
    """``{model hash: times loaded}`` in this process (a task for checking the worker cache)."""
    return dict(LOADS)
