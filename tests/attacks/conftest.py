"""Fixtures for the attack tests: a tiny trained model and held-out clips."""

from __future__ import annotations

import pytest
import torch

from tests.attacks.tiny import TinyNet, tiny_signals, train_tiny


@pytest.fixture(scope="session")
def tiny_model() -> TinyNet:
    """A trained deterministic tiny model (clean accuracy near 100 %)."""
    torch.set_num_threads(1)
    return train_tiny()


@pytest.fixture(scope="session")
def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out clips (32, 1600) and labels (32,)."""
    return tiny_signals(32, seed=123)


@pytest.fixture(scope="session")
def untrained_zoo(tmp_path_factory):
    """A zoo root holding one untrained LM model 'lm-raw' (for argument checks that need a model)."""
    from testbed.models import Zoo, build_model

    torch.manual_seed(0)
    labels = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]
    root = tmp_path_factory.mktemp("untrained-zoo")
    Zoo(root).save("lm-raw", build_model("lm", labels), {
        "arch": "lm", "variant": "fp32", "labels": labels, "sample_rate": 16000, "clip_samples": 16000,
        "data": {"spec": "synthetic", "quick": True, "seed": 0}})
    return root
