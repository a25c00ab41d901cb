"""Training: a tiny model learns held-out data; seeds make it reproducible; best checkpoint kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from testbed.errors import ModelError
from testbed.models import build_model, predict, train


def test_trained_tiny_model_beats_chance_by_a_wide_margin(tones):
    model = build_model("lms", tones.labels)
    ticks = []
    res = train(model, tones, steps=40, batch_size=32, eval_every=20, seed=0,
                progress=lambda d, t: ticks.append((d, t)))
    assert res["test_accuracy"] >= 0.8          # chance is 0.25
    pred, probs = predict(model, tones.test.x)
    assert np.isclose((pred == tones.test.y).mean(), res["test_accuracy"])
    assert probs.shape == (len(tones.test.y), 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert ticks[-1] == (40, 40)
    assert not model.training


def test_same_seed_same_weights_other_seed_differs(tones):
    def run(seed):
        torch.manual_seed(123)                   # same initial weights
        m = build_model("lms", tones.labels)
        train(m, tones, steps=6, batch_size=16, eval_every=3, seed=seed)
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_custom_loss_is_used_and_best_checkpoint_restored(tones):
    calls = []

    def loss_fn(model, x, y):
        calls.append(len(y))
        return F.cross_entropy(model(x), y)

    model = build_model("lms", tones.labels)
    res = train(model, tones, steps=30, batch_size=8, eval_every=10, seed=0, loss_fn=loss_fn)
    assert calls and all(n == 8 for n in calls)
    best = max(h[2] for h in res["history"])
    assert res["val_accuracy"] == pytest.approx(best)


def test_zero_steps_is_refused(tones):
    with pytest.raises(ModelError, match="steps"):
        train(build_model("lms", tones.labels), tones, steps=0)


@pytest.mark.parametrize("schedule,stop_at", [("constant", 30), ("cosine", 150)])
def test_early_stop_waits_for_the_decaying_schedule(tones, schedule, stop_at):
    """With nothing to learn (lr 0, so validation never improves) a constant schedule stops
    after ``patience`` validations; a cosine one not before 3/4 of its steps."""
    torch.manual_seed(0)
    model = build_model("lms", tones.labels)
    res = train(model, tones, steps=200, batch_size=8, eval_every=10, seed=0, lr=0.0, patience=2,
                lr_schedule=schedule)
    assert res["stopped_early"] and res["steps_run"] == stop_at
