"""Restarts: every white-box attack takes them, and they never lower the error on any clip."""

from __future__ import annotations

import pytest
import torch

from testbed.attacks import attack_params, make_attack
from testbed.errors import AttackError


def _fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


@pytest.mark.parametrize("kind, kw", [("fgsm", {}), ("pgd", {"steps": 5}), ("eot-pgd", {"steps": 5}),
                                      ("apgd-ce", {"steps": 5}), ("apgd-dlr", {"steps": 5})])
def test_restarts_never_lower_the_error(tiny_model, tiny_data, kind, kw):
    x, y = tiny_data
    assert "restarts" in attack_params(kind)
    eps = 0.06
    one = _fooled(tiny_model, make_attack(kind, tiny_model, eps, seed=4, **kw)(x, y), y)
    many_atk = make_attack(kind, tiny_model, eps, seed=4, restarts=4, **kw)
    many = _fooled(tiny_model, many_atk(x, y), y)
    assert (many | ~one).all()                 # every clip the first run fooled stays fooled
    assert many.sum() >= one.sum()
    assert many.sum() > 0


def test_restarts_find_clips_one_run_misses(tiny_model, tiny_data):
    x, y = tiny_data
    one = _fooled(tiny_model, make_attack("pgd", tiny_model, 0.06, steps=2, seed=0)(x, y), y)
    many = _fooled(tiny_model, make_attack("pgd", tiny_model, 0.06, steps=2, seed=0, restarts=8)(x, y), y)
    assert many.sum() > one.sum()             # random starts do find new clips


def test_bad_restarts(tiny_model):
    with pytest.raises(AttackError, match="restarts must be a positive integer"):
        make_attack("pgd", tiny_model, 0.01, restarts=0)
    with pytest.raises(AttackError, match="universal: restarts must be 1"):
        make_attack("universal", tiny_model, 0.01, restarts=2)
