"""The attack bench runs on the zoo's trained lm-fp32 and test clips it classifies correctly when the zoo has one."""

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
    stored = zoo.load("lm-fp32").eval()
    xs, ys, _ = held_out_clips(zoo.card("lm-fp32"), None, 24, seed=0)
    with torch.no_grad():      # the first six seeded test clips the stored model gets right, in order
        right = (stored(torch.from_numpy(xs)).argmax(1) == torch.from_numpy(ys)).numpy()
    keep = np.flatnonzero(right)[:6]
    assert 0 < len(keep) and len(y) == len(keep)
    assert np.array_equal(x.numpy(), xs[keep]) and np.array_equal(y.numpy(), ys[keep])
    with torch.no_grad():      # the same weights as the stored model
        assert torch.equal(model(x), stored(x))
        assert torch.equal(model(x).argmax(1), y)


def test_bench_falls_back_to_an_untrained_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_MODELS_DIR", str(tmp_path / "empty"))
    model, x, y, eps, described = _model_and_clips(4, quick=False)
    assert "untrained" in described and x.shape == (4, 16000) and eps == 0.005
    with torch.no_grad():      # labelled with its own predictions: a time-only comparison
        assert torch.equal(model(x).argmax(1), y)
