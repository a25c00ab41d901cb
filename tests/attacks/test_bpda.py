"""BPDA passes gradients where the straight-through estimator zeroes them; quantised models
(INT4, INT16) are attackable white-box."""

from __future__ import annotations

import copy

import pytest
import torch

from testbed.attacks import bpda, make_attack
from testbed.errors import AttackError
from testbed.models import QuantLinear, quantize_model


class Saturated(torch.nn.Module):
    """One 8-bit linear layer whose activation range is [-1, 1]: inputs beyond it saturate."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q = QuantLinear(torch.nn.Linear(4, 3), bits=8, act_max=1.0)
        self.labels = ["a", "b", "c"]

    def forward(self, x):
        return self.q(x)


def test_bpda_gives_a_gradient_where_ste_gives_zero():
    model = Saturated().eval()
    x = torch.full((2, 4), 0.9)
    y = torch.tensor([0, 1])
    delta = torch.full_like(x, 0.5)                  # x + delta = 1.4: beyond the range
    g_ste = make_attack("pgd", model, 0.5, gradient="ste")
    g_bpda = make_attack("pgd", model, 0.5, gradient="bpda")
    with g_ste.attack_mode():
        ste = g_ste.gradient(x, delta, y)
    with g_bpda.attack_mode():
        full = g_bpda.gradient(x, delta, y)
    assert torch.count_nonzero(ste) == 0
    assert torch.count_nonzero(full) == full.numel()
    # inside the range both agree (rounding is the only difference)
    inside = torch.zeros_like(x)
    with g_ste.attack_mode():
        a = g_ste.gradient(x * 0.5, inside, y)
    with g_bpda.attack_mode():
        b = g_bpda.gradient(x * 0.5, inside, y)
    assert torch.allclose(a, b, atol=1e-6)


def test_bpda_keeps_the_quantised_forward_and_restores_the_model():
    model = Saturated().eval()
    x = torch.randn(5, 4)
    ref = model(x)
    with bpda(model) as n:
        assert n == 1
        assert torch.allclose(model(x), ref, atol=1e-6)
    assert not model.q._forward_hooks and model.q.ste is False
    with pytest.raises(AttackError, match="gradient must be one of ste, bpda"):
        make_attack("pgd", model, 0.1, gradient="magic")


@pytest.mark.parametrize("bits", [4, 16])
def test_int4_and_int16_are_attacked_white_box(tiny_model, tiny_data, bits):
    x, y = tiny_data
    q = copy.deepcopy(tiny_model)
    quantize_model(q, bits, x)
    q.eval()
    with torch.no_grad():
        clean = (q(x).argmax(1) != y).float().mean()
    for gradient in ("ste", "bpda"):
        atk = make_attack("apgd-ce", q, 0.1, steps=10, gradient=gradient, seed=0)
        with torch.no_grad():
            err = (q(atk(x, y)).argmax(1) != y).float().mean()
        assert err > clean + 0.3, (bits, gradient, float(clean), float(err))
