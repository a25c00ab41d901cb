"""Square and NES: the black-box pair respect the query budget and the eps ball; Square never
calls backward."""

from __future__ import annotations

import pytest
import torch

from testbed.attacks import NES, Square, make_attack
from testbed.attacks.square import window_fraction
from tests.attacks.tiny import NoBackward



class BlackBox(torch.nn.Module):
    """The tiny model behind a layer whose backward raises."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.labels = inner.labels

    def forward(self, x):
        return self.inner(NoBackward.apply(x))


def test_square_respects_the_budget_and_the_ball_and_never_calls_backward(tiny_model, tiny_data):
    x, y = tiny_data
    box = BlackBox(tiny_model)
    with pytest.raises(RuntimeError, match="backward called"):      # the guard works
        make_attack("pgd", box, 0.1, steps=1)(x[:2], y[:2])
    eps, budget = 0.15, 200
    atk = Square(box, eps, n_queries=budget, seed=0)
    x_adv = atk(x, y)
    d = x_adv - x
    assert (d.abs() <= eps + 1e-6).all() and (x_adv.abs() <= 1.0).all()
    assert len(atk.clip_queries) == len(x)
    assert max(atk.clip_queries) <= budget and min(atk.clip_queries) >= 1
    assert atk.queries == sum(atk.clip_queries)
    with torch.no_grad():
        fooled = tiny_model(x_adv).argmax(1) != y
        clean_wrong = tiny_model(x).argmax(1) != y
    assert fooled.sum() > clean_wrong.sum()                         # the search does something
    # a clip fooled early stops spending queries
    q = torch.tensor(atk.clip_queries)
    assert (q[fooled] <= budget).all() and (q[~fooled] == budget).all()


def test_square_window_schedule_shrinks():
    fr = [window_fraction(0.4, q, 1000) for q in range(1000)]
    assert fr[0] == 0.4 and fr[-1] < fr[0]
    assert all(b <= a for a, b in zip(fr, fr[1:]))


def test_nes_respects_the_budget_and_the_ball(tiny_model, tiny_data):
    x, y = tiny_data
    box = BlackBox(tiny_model)
    eps = 0.05
    atk = NES(box, eps, iterations=50, population=16, max_queries=100, seed=0)
    x_adv = atk(x, y)
    assert ((x_adv - x).abs() <= eps + 1e-6).all()
    assert atk.queries / len(x) <= 100
