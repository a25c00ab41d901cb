"""Model cards: what a stored model says about itself, and the accuracy figures written into it.

Used by :mod:`testbed.models.build` and :mod:`testbed.models.robust.build` alike, so neither
builder imports the other.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import time
from typing import Any

import numpy as np
import torch
import torchaudio
from torch import nn

from testbed.models.archs import PAPER_TABLE, layer_counts, param_count
from testbed.models.frontend import preprocessing
from testbed.models.predict import evaluate

#: training clips scored for a card's train accuracy above which a fixed subset is used
TRAIN_METRIC_CLIPS = 2000


def package_versions() -> dict[str, str]:
    """Versions of the packages a stored model depends on."""
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torchaudio": torchaudio.__version__, "numpy": np.__version__}
    for pkg in ("safetensors", "ota-testbed"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def make_card(model: nn.Module, arch: str, variant: str, dataset: Any, *, quick: bool, seed: int,
              data_seed: int, training: dict, metrics: dict, compression: dict) -> dict:
    """Assemble a model card (size and hash are added by :meth:`testbed.models.zoo.Zoo.save`)."""
    return {
        "arch": arch, "variant": variant, "labels": list(model.labels),
        "sample_rate": int(model.sample_rate), "clip_samples": int(model.clip_samples),
        "stochastic": bool(getattr(model, "stochastic", False)),
        "preprocessing": preprocessing(arch, model.sample_rate),
        "data": {"spec": dataset.spec, "split_hash": dataset.split_hash, "quick": quick,
                 "seed": data_seed, "n_train": int(len(dataset.train.y)),
                 "n_val": int(len(dataset.val.y)), "n_test": int(len(dataset.test.y))},
        "metrics": metrics, "param_count": param_count(model), "layers": layer_counts(model),
        "paper": PAPER_TABLE[arch], "training": dict(training, seed=seed),
        "compression": compression, "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def split_metrics(model: nn.Module, dataset: Any) -> dict:
    """The card's ``metrics``: ``{train,val,test}_accuracy`` (None for an empty split) and
    ``test_per_class`` (label -> accuracy); the train accuracy is measured on a seeded subset of
    :data:`TRAIN_METRIC_CLIPS` clips when the split is larger."""
    out = {}
    for split in ("train", "val", "test"):
        s = getattr(dataset, split)
        if split == "train" and len(s.y) > TRAIN_METRIC_CLIPS:    # a fixed subset keeps this quick
            idx = np.random.default_rng(0).choice(len(s.y), TRAIN_METRIC_CLIPS, replace=False)
            r = evaluate(model, s.x[idx], np.asarray(s.y)[idx], dataset.labels)
        else:
            r = evaluate(model, s.x, s.y, dataset.labels) if len(s.y) else {"accuracy": None}
        out[f"{split}_accuracy"] = r["accuracy"]
        if split == "test":
            out["test_per_class"] = {k: v["accuracy"] for k, v in r.get("per_class", {}).items()}
    return out
