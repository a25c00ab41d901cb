"""Fixtures for the model tests: a tiny tone data set that needs no TTS."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch


@dataclass
class ToySplit:
    x: np.ndarray
    y: np.ndarray
    meta: list[dict] = field(default_factory=list)


@dataclass
class ToyDataset:
    spec: str
    labels: list[str]
    sample_rate: int
    clip_samples: int
    train: ToySplit
    val: ToySplit
    test: ToySplit
    split_hash: str


def tone_dataset(n_per_class: int = 40, seed: int = 0, clip_samples: int = 16000,
                 sample_rate: int = 16000) -> ToyDataset:
    """Four classes of noisy tone bursts (300, 700, 1500, 3000 Hz) at random onset, length and gain."""
    rng = np.random.default_rng(seed)
    labels = ["low", "mid", "high", "top"]
    freqs = [300.0, 700.0, 1500.0, 3000.0]
    xs, ys = [], []
    t = np.arange(clip_samples) / sample_rate
    for k, f in enumerate(freqs):
        for _ in range(n_per_class):
            dur = rng.uniform(0.2, 0.5)
            onset = rng.uniform(0, clip_samples / sample_rate - dur)
            env = ((t >= onset) & (t < onset + dur)).astype(np.float32)
            f_k = f * rng.uniform(0.9, 1.1)
            sig = rng.uniform(0.05, 0.5) * env * np.sin(2 * np.pi * f_k * t + rng.uniform(0, 6.3))
            xs.append((sig + 0.01 * rng.standard_normal(clip_samples)).astype(np.float32))
            ys.append(k)
    x, y = np.stack(xs), np.array(ys, dtype=np.int64)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    n_tr, n_va = int(0.6 * len(y)), int(0.2 * len(y))
    return ToyDataset("toy-tones", labels, sample_rate, clip_samples,
                      ToySplit(x[:n_tr], y[:n_tr]), ToySplit(x[n_tr:n_tr + n_va], y[n_tr:n_tr + n_va]),
                      ToySplit(x[n_tr + n_va:], y[n_tr + n_va:]), f"toy{seed}")


@pytest.fixture(scope="session")
def tones() -> ToyDataset:
    """160 tone-burst clips in 4 classes, split 60/20/20."""
    torch.set_num_threads(1)
    return tone_dataset()


@pytest.fixture(scope="session")
def tone_zoo(tmp_path_factory, tones) -> tuple:
    """(root, names): lms-fp32, lms-lowrank, lms-int8, lms-int4 trained briefly on the tones."""
    from testbed.models import build_zoo

    root = tmp_path_factory.mktemp("tone-zoo")
    names = build_zoo(["lms"], ["fp32", "lowrank", "int8", "int4"], root=root, seed=0, steps=30,
                      finetune_steps=10, batch_size=16, dataset=tones)
    return root, names
