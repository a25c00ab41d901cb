"""Evaluating a stored model on its own test split or on another data set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from testbed.data import load_dataset
from testbed.errors import DataError
from testbed.models.predict import evaluate
from testbed.models.zoo import Zoo


def evaluate_on(name: str, data: str | None = None, *, root: Path | str | None = None,
                progress: Callable[[int, int], None] | None = None, dataset=None) -> dict:
    """Accuracy, per-class accuracy and confusion matrix of zoo model ``name``.

    Parameters
    ----------
    name : str
        Model in the zoo at ``root``.
    data : str, optional
        Data set spec. ``None`` (or the model's own spec): the test split of the model's own
        data. Another spec: every clip of it (train + val + test), its classes mapped onto
        the model's labels (they must be a subset).
    root : Path, optional
        Zoo root.
    progress : callable(done, total), optional
        Data set loading progress.
    dataset : testbed.data.Dataset, optional
        Already-loaded data set standing for ``data``.

    Returns
    -------
    dict
        :func:`~testbed.models.predict.evaluate`'s result plus ``model, model_hash, data, split,
        split_hash`` and, on the model's own data, ``split_hash_matches_card``.
    """
    zoo = Zoo(root)
    model = zoo.load(name)
    card = model.card
    own = data is None or data == card["data"]["spec"]
    spec = card["data"]["spec"] if own else data
    if dataset is None:
        dataset = (load_dataset(spec, quick=bool(card["data"].get("quick")), seed=int(card["data"].get("seed", 0)),
                                progress=progress) if own else load_dataset(spec, progress=progress))
    if dataset.sample_rate != model.sample_rate or dataset.clip_samples != model.clip_samples:
        raise DataError(f"data {spec}: clips are {dataset.clip_samples} samples at {dataset.sample_rate} Hz, "
                        f"model {name} takes {model.clip_samples} at {model.sample_rate} Hz")
    if own:
        x, y, split = dataset.test.x, dataset.test.y, "test"
    else:
        parts = [s for s in (dataset.train, dataset.val, dataset.test) if len(s.y)]
        x = np.concatenate([s.x for s in parts]) if parts else np.zeros((0, dataset.clip_samples), np.float32)
        y = np.concatenate([np.asarray(s.y) for s in parts]) if parts else np.zeros(0, np.int64)
        split = "all"
    if len(y) == 0:
        raise DataError(f"data {spec}: no clips to evaluate in the {split} split")
    result = evaluate(model, x, y, dataset.labels)
    result.update(model=name, model_hash=card["weights_sha256"], data=spec, split=split,
                  split_hash=dataset.split_hash)
    if own:
        result["split_hash_matches_card"] = dataset.split_hash == card["data"].get("split_hash")
    return result


def held_out_clips(card: dict, data: str | None, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` test clips (a seeded choice, in data order) of the data set named by ``data`` or by
    the model card (its own spec, quick flag and seed), for attacks and curves.

    Returns
    -------
    x : float32 (k, n_samples) PCM; y : int64 (k,) label indices; spec : the data spec used.
    ``k = min(n, size of the test split)``.
    """
    info = card.get("data", {}) if isinstance(card.get("data"), dict) else {}
    spec = data or info.get("spec") or "synthetic"
    quick = bool(info.get("quick", False)) if data is None or data == info.get("spec") else False
    ds = load_dataset(spec, quick=quick, seed=int(info.get("seed", 0)))
    split = ds.test
    k = min(n, len(split.y))
    idx = np.sort(np.random.default_rng(seed).permutation(len(split.y))[:k])
    return np.asarray(split.x[idx], dtype=np.float32), np.asarray(split.y[idx], dtype=np.int64), spec
