"""The attack bench runs on the zoo's trained lm-fp32 and its test clips when the zoo has one."""

from __future__ import annotations

import numpy as np
import torch

from testbed.bench.attacks import _model_and_clips
from testbed.models import Zoo, held_out_clips


def test_bench_uses_the_zoo_model_and_true_labels(quick_zoo, monkeypatch):
    monkeypatch.setenv("TESTBED_MODELS_DIR", str(quick_zoo))
    model, x, y, eps, described = _model_and_clips(6, quick=False)
    assert described.startswith("lm-fp32 of the zoo") and "true labels" in described and eps == 0.0002
    zoo = Zoo(quick_zoo)
    xs, ys, _ = held_out_clips(zoo.card("lm-fp32"), None, 6, seed=0)
    assert np.array_equal(x.numpy(), xs) and np.array_equal(y.numpy(), ys)
    with torch.no_grad():      # the same weights as the stored model
        assert torch.equal(model(x), zoo.load("lm-fp32").eval()(x))


def test_bench_falls_back_to_an_untrained_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_MODELS_DIR", str(tmp_path / "empty"))
    model, x, y, eps, described = _model_and_clips(4, quick=False)
    assert "untrained" in described and x.shape == (4, 16000) and eps == 0.005
    with torch.no_grad():      # labelled with its own predictions: a time-only comparison
        assert torch.equal(model(x).argmax(1), y)
