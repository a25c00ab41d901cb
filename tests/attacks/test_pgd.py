"""White-box FGSM / PGD on the tiny model: targeted hits, strength, agreement with torchattacks."""

from __future__ import annotations

import pytest
import torch

from testbed.attacks import FGSM, PGD, logit_margin, make_attack
from testbed.errors import AttackError
from tests.attacks.tiny import tiny_signals


def error_rate(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def test_clean_model_is_accurate(tiny_model, tiny_data):
    x, y = tiny_data
    assert error_rate(tiny_model, x, y) < 0.05


def test_targeted_pgd_reaches_the_target(tiny_model, tiny_data):
    x, y = tiny_data
    target = (y + 1) % 3
    x_adv = PGD(tiny_model, eps=0.3, steps=30, seed=0)(x, y, target)
    with torch.no_grad():
        hit = (tiny_model(x_adv).argmax(1) == target).float().mean()
    assert hit >= 0.9


def test_pgd_beats_fgsm_and_grows_with_eps(tiny_model, tiny_data):
    x, y = tiny_data
    pgd = [error_rate(tiny_model, PGD(tiny_model, eps=e, steps=20)(x, y), y) for e in (0.02, 0.1, 0.3)]
    fgsm = error_rate(tiny_model, FGSM(tiny_model, eps=0.1)(x, y), y)
    assert pgd[0] <= pgd[1] <= pgd[2]
    assert pgd[2] > 0.9
    assert pgd[1] >= fgsm


def test_attack_restores_model_state(tiny_model, tiny_data):
    x, y = tiny_data
    tiny_model.train()
    try:
        PGD(tiny_model, eps=0.01, steps=2)(x[:2], y[:2])
        assert tiny_model.training
        assert all(p.requires_grad for p in tiny_model.parameters())
        assert all(p.grad is None for p in tiny_model.parameters())
    finally:
        tiny_model.eval()


class _UnitRange(torch.nn.Module):
    """The model seen on [0, 1] inputs (torchattacks' range): u -> model(2u - 1)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, u):
        return self.model(2.0 * u - 1.0)


def test_same_error_rate_as_torchattacks_pgd(tiny_model):
    import torchattacks  # the [test] extra; a missing install must fail, not skip
    x, y = tiny_signals(200, seed=7)
    eps, steps = 0.08, 10
    ours = error_rate(tiny_model, PGD(tiny_model, eps=eps, steps=steps, alpha=eps / 4, seed=0)(x, y), y)
    torch.manual_seed(0)
    ref = torchattacks.PGD(_UnitRange(tiny_model), eps=eps / 2, alpha=eps / 8, steps=steps, random_start=True)
    theirs = error_rate(tiny_model, 2.0 * ref((x + 1) / 2, y) - 1.0, y)
    assert 0.1 < theirs < 0.95, "pick an eps where the comparison is informative"
    assert abs(ours - theirs) <= 0.03


def test_make_attack_rejects_bad_arguments(tiny_model):
    from testbed.errors import AttackError

    with pytest.raises(AttackError, match="eps"):
        make_attack("pgd", tiny_model, 0.0)
    with pytest.raises(AttackError, match="eps"):
        make_attack("fgsm", tiny_model, -0.01)
    with pytest.raises(AttackError, match="unknown attack 'cw'"):
        make_attack("cw", tiny_model, 0.01)
    with pytest.raises(AttackError, match="unknown parameter 'stepz'"):
        make_attack("pgd", tiny_model, 0.01, stepz=3)
    with pytest.raises(AttackError, match="steps"):
        make_attack("pgd", tiny_model, 0.01, steps=0)


class _Saturated(torch.nn.Module):
    """The tiny model's logits times 1e4: a softmax saturated in float32, as a defensively
    distilled model (trained at temperature T, deployed at 1) has on confident clips."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return 1e4 * self.model(x)


def test_margin_loss_attacks_a_saturated_softmax_where_cross_entropy_is_masked(tiny_model, tiny_data):
    x, y = tiny_data
    saturated = _Saturated(tiny_model)
    ce = error_rate(saturated, PGD(saturated, eps=0.3, steps=20, seed=0)(x, y), y)
    margin = error_rate(saturated, PGD(saturated, eps=0.3, steps=20, seed=0, loss="margin")(x, y), y)
    plain = error_rate(tiny_model, PGD(tiny_model, eps=0.3, steps=20, seed=0)(x, y), y)
    assert plain > 0.9                       # the bound is enough against the model itself
    assert ce < 0.5 * plain                  # the cross-entropy's gradient is gone (masking)
    assert margin > 0.9                      # the margin's is not
    with pytest.raises(AttackError, match="loss must be one of ce, margin"):
        PGD(tiny_model, eps=0.1, loss="hinge")


def test_logit_margin_is_the_best_other_logit_minus_the_labels():
    z = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    assert logit_margin(z, torch.tensor([0, 0])).tolist() == [-1.0, 5.0]
    assert logit_margin(z, torch.tensor([2, 1])).tolist() == [1.0, -4.0]
