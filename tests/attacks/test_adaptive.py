"""The non-adaptive baseline sees one fixed draw; the adaptive attack many, and they say so."""

from __future__ import annotations

import torch

from testbed.attacks import evaluate_attack
from testbed.attacks.adaptive import FixedDraw, eot_draws


def test_fixed_draw_is_deterministic_and_leaves_the_model_random(tiny_data):
    from tests.attacks.tiny import train_tiny

    model = train_tiny(stochastic=True)
    x, _ = tiny_data
    fixed = FixedDraw(model, seed=3)
    with torch.no_grad():
        a, b = fixed(x), fixed(x)
        c, d = model(x), model(x)
        other = FixedDraw(model, seed=4)(x)
    assert torch.equal(a, b)
    assert not torch.equal(c, d)
    assert not torch.equal(a, other)
    assert eot_draws(fixed, 8) == 1 and eot_draws(model, 8) == 8


def test_non_adaptive_and_adaptive_report_different_draws(tiny_data):
    from tests.attacks.tiny import train_tiny

    model = train_tiny(stochastic=True)
    x, y = tiny_data
    common = dict(kind="pgd", eps=(0.08,), params={"steps": 3, "seed": 0}, sample_rate=4000)
    plain = evaluate_attack({"s": model}, {"s": model}, x.numpy(), y.numpy(), adaptive=False, **common)
    eot = evaluate_attack({"s": model}, {"s": model}, x.numpy(), y.numpy(), adaptive=True,
                          **{**common, "params": {"steps": 3, "seed": 0, "eot_samples": 6}})
    assert plain["eot_draws"].tolist() == [1]
    assert eot["eot_draws"].tolist() == [6]
    assert plain["queries"].iloc[0] == 3.0 and eot["queries"].iloc[0] == 18.0
