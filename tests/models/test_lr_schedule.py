"""The cosine learning-rate schedule of the zoo's training recipe, and `train_fp32`."""

from __future__ import annotations

import pytest
import torch

from testbed.errors import ModelError
from testbed.models import build_model, train
from testbed.models.build import LR, LR_SCHEDULE, train_fp32
from testbed.models.train import _scheduler


def lrs(kind: str, steps: int, lr: float = 1e-2) -> list[float]:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = _scheduler(opt, kind, steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


def test_cosine_warms_up_then_decays_to_a_twentieth():
    seq = lrs("cosine", 200)
    warm = 200 // 20
    assert seq[0] == pytest.approx(1e-2 / warm)
    assert max(seq) == pytest.approx(1e-2) and seq.index(max(seq)) == warm - 1
    assert all(a >= b for a, b in zip(seq[warm:], seq[warm + 1:]))   # monotone decay after warm-up
    assert seq[-1] == pytest.approx(1e-2 / 20, rel=0.05)
    assert lrs("constant", 50) == [1e-2] * 50


def test_unknown_schedule_is_a_model_error(tones):
    with pytest.raises(ModelError, match="lr_schedule"):
        train(build_model("lms", tones.labels), tones, steps=2, lr_schedule="triangle")


def test_train_fp32_uses_the_recipe_and_caps_steps(tones):
    model = build_model("lms", tones.labels)
    res = train_fp32(model, tones, steps=500, quick=True, max_steps=60, batch_size=32)
    assert res["steps"] == 60 and res["steps_run"] <= 60
    assert res["lr"] == LR and res["lr_schedule"] == LR_SCHEDULE and res["eval_every"] == 50
    assert res["test_accuracy"] >= 0.8            # four tone classes: chance is 0.25
