"""What a Dask worker keeps between tasks: models (by weights hash) and simulated backends.

A task never receives a model object. It receives a :class:`ModelRef`: the model's card and
its safetensors bytes (from :meth:`testbed.models.Zoo.stored_files`), scattered to the workers
once per job. The first task on a worker that needs a model adds the two files to a private
zoo (:meth:`~testbed.models.Zoo.add_files`) and loads the name through it, views such as
``lm-slr8@k4`` included (the zoo checks the weights' sha256 against the card); later tasks
reuse the loaded model. Workers tune the allocator as the ``testbed`` command does
(:func:`testbed.models.allocator.keep_freed_memory`).
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str, int], object] = {}    # (model hash, name, thread) -> LoadedModel
_BACKENDS: dict[tuple[str, int], object] = {}   # (rig + seed digest, thread) -> backend
_STATE: dict[str, object] = {}
#: How many times this process loaded a model (tests check "once per worker").
LOADS: dict[str, int] = {}


@dataclass(frozen=True)
class ModelRef:
    """A zoo model as plain data.

    Attributes
    ----------
    name : the name to load, a stored model or a view ``NAME@kN`` of one.
    model_hash : sha256 of the weights (for a view: of NAME's).
    card : the stored model's card as stored (for a view: NAME's).
    weights : the stored model's safetensors bytes.
    """

    name: str
    model_hash: str
    card: dict
    weights: bytes

    @property
    def key(self) -> str:
        """What tells two refs apart: a view and its stored model share weights but not a name."""
        return f"{self.model_hash}:{self.name}"


def model_ref(models, name: str) -> ModelRef:
    """The :class:`ModelRef` of ``name`` (a stored model or a view ``NAME@kN``).

    ``models`` is a :class:`testbed.models.Zoo` or an adapter exposing one as ``.zoo``
    (:class:`testbed.session.deps.Models`).
    """
    zoo = getattr(models, "zoo", models)
    _, card, weights = zoo.stored_files(name)
    return ModelRef(name, str(card.get("weights_sha256")), card, weights)


def _scratch() -> Path:
    if "scratch" not in _STATE:
        _STATE["scratch"] = tempfile.TemporaryDirectory(prefix="testbed-worker-models-")
    return Path(_STATE["scratch"].name)


def setup_torch() -> None:
    """One intra-op thread per task slot (Dask runs one task per thread already), and the
    allocator setting of the ``testbed`` command (:func:`testbed.models.allocator.keep_freed_memory`,
    which also overrides a Dask nanny's ``MALLOC_TRIM_THRESHOLD_``)."""
    if not _STATE.get("torch"):
        import torch

        from testbed.models.allocator import keep_freed_memory

        keep_freed_memory()
        torch.set_num_threads(1)
        _STATE["torch"] = True


def worker_model(ref: ModelRef):
    """The :class:`~testbed.session.deps.LoadedModel` for ``ref``, loaded through a private
    :class:`~testbed.models.Zoo` once per worker thread and name (attacks toggle a model's
    gradient flags, so two threads never share one module; a view has its own member count)."""
    key = (ref.model_hash, ref.name, threading.get_ident())
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        from testbed.models import Zoo, split_view
        from testbed.session.deps import Models

        setup_torch()
        root = _scratch() / f"{ref.model_hash[:16]}-{threading.get_ident()}"
        Zoo(root).add_files(split_view(ref.name)[0], ref.card, ref.weights, durable=False)
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
