"""APGD: at least PGD's error at the same budget, best-iterate bookkeeping, the checkpoint schedule."""

from __future__ import annotations

import pytest
import torch

from testbed.attacks import APGD, PGD, checkpoints, dlr_loss, make_attack, targeted_dlr_loss
from testbed.errors import AttackError


def _error(model, x_adv, y) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(1) != y).float().mean())


def test_checkpoints_follow_croce_hein():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1) == [1]
    c = checkpoints(19)
    assert c == sorted(set(c)) and c[-1] <= 19


@pytest.mark.parametrize("kind", ["apgd-ce", "apgd-dlr"])
def test_apgd_reaches_at_least_pgd_error_at_the_same_budget(tiny_model, tiny_data, kind):
    x, y = tiny_data
    eps, steps = 0.08, 20
    pgd = PGD(tiny_model, eps, steps=steps, seed=0)
    apgd = make_attack(kind, tiny_model, eps, steps=steps, seed=0)
    err_pgd, err_apgd = _error(tiny_model, pgd(x, y), y), _error(tiny_model, apgd(x, y), y)
    assert err_pgd > 0.2                          # the bound is one where the attack matters
    assert err_apgd >= err_pgd
    assert apgd.queries == pgd.queries == steps * x.shape[0]    # same gradient budget
    assert (apgd.perturb(x, y).abs() <= eps + 1e-7).all()


def test_best_iterate_is_never_worse_than_an_earlier_one(tiny_model, tiny_data):
    x, y = tiny_data
    atk = APGD(tiny_model, 0.05, steps=30, loss="ce", seed=3)
    delta = atk.perturb(x, y)
    trace = atk.trace
    with torch.no_grad():
        logits = tiny_model(x + delta)
        returned = atk.objective(logits, y, None)
    fooled_now = logits.argmax(1) != y
    # clips never fooled: the returned iterate has the highest loss of every iterate
    never = ~fooled_now
    assert never.any() and fooled_now.any()
    top = trace["loss"].max(dim=0).values
    assert (returned[never] >= top[never] - 1e-5).all()
    # and the best loss so far never falls
    assert (trace["best_loss"][1:] >= trace["best_loss"][:-1]).all()
    # the step only changes at checkpoints, only by halving, from 2 eps
    steps = trace["step"]
    assert torch.allclose(steps[0], torch.full_like(steps[0], 0.1))
    changed = (steps[1:] != steps[:-1]).any(dim=1).nonzero().squeeze(1) + 1
    assert set(int(i) - 1 for i in changed) <= set(trace["checkpoints"])
    ratio = steps[1:] / steps[:-1]
    assert ((ratio == 1.0) | (ratio == 0.5)).all()
    assert (steps[-1] < steps[0]).any()            # halving did happen


def test_a_fooled_clip_stays_fooled(tiny_model, tiny_data):
    x, y = tiny_data
    # huge steps oscillate: the last iterate may not fool, the returned one must
    atk = PGD(tiny_model, 0.08, steps=10, alpha=0.08, seed=0)
    ever = torch.zeros_like(y, dtype=torch.bool)
    orig = atk.value_and_grad

    def spy(xx, d, yy, t=None):
        loss, g, fooled = orig(xx, d, yy, t)
        ever.logical_or_(fooled)
        return loss, g, fooled

    atk.value_and_grad = spy
    x_adv = atk(x, y)
    with torch.no_grad():
        fooled = tiny_model(x_adv).argmax(1) != y
    assert ever.any()
    assert (fooled | ~ever).all()


def test_dlr_losses():
    z = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, -2.0]])
    y = torch.tensor([0, 0])
    # clip 0: correct, -(3 - 1) / (3 - 0); clip 1: wrong, -(0 - 2) / (2 - 0)
    assert torch.allclose(dlr_loss(z, y), torch.tensor([-2.0 / 3.0, 1.0]))
    assert torch.allclose(dlr_loss(5.0 * z + 7.0, y), dlr_loss(z, y), atol=1e-6)   # shift/scale free
    t = torch.tensor([3, 1])
    # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    assert torch.allclose(targeted_dlr_loss(z, y, t), torch.tensor([-4.0 / 3.5, 2.0 / 3.0]))
    with pytest.raises(AttackError, match="at least 4 classes"):
        targeted_dlr_loss(z[:, :3], y, torch.tensor([1, 1]))


def test_targeted_apgd_dlr_needs_four_classes_and_ce_targets(tiny_model, tiny_data):
    x, y = tiny_data
    with pytest.raises(AttackError, match="at least 4 classes"):
        make_attack("apgd-dlr", tiny_model, 0.1, steps=5)(x, y, target=torch.full_like(y, 2))
    atk = make_attack("apgd", tiny_model, 0.15, steps=20, loss="ce", seed=0)
    x_adv = atk(x, y, target=torch.full_like(y, 2))
    with torch.no_grad():
        hit = tiny_model(x_adv).argmax(1) == 2
    assert hit[y != 2].float().mean() > 0.5


def test_bad_apgd_parameters(tiny_model):
    with pytest.raises(AttackError, match="steps must be at least 2"):
        APGD(tiny_model, 0.01, steps=1)
    with pytest.raises(AttackError, match="loss must be one of ce, margin, dlr"):
        APGD(tiny_model, 0.01, loss="hinge")
    with pytest.raises(AttackError, match="loss must be one of ce, margin, got 'dlr'"):
        PGD(tiny_model, 0.01, loss="dlr")
