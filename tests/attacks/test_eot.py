"""EOT gradients: one sample is the plain gradient; K samples average K draws; stochastic models get EOT."""

from __future__ import annotations

import torch

from testbed.attacks import DEFAULT_EOT_SAMPLES, EOTPGD, PGD, make_attack
from tests.attacks.tiny import train_tiny


def test_eot_gradient_with_one_sample_equals_plain_gradient(tiny_model, tiny_data):
    x, y = tiny_data
    delta = 0.01 * torch.randn_like(x)
    plain = PGD(tiny_model, eps=0.05).gradient(x, delta, y)
    eot = EOTPGD(tiny_model, eps=0.05, eot_samples=1).gradient(x, delta, y)
    assert plain.abs().sum() > 0
    torch.testing.assert_close(eot, plain, rtol=0, atol=0)


def test_eot_gradient_is_the_mean_of_independent_draws(tiny_data):
    model = train_tiny(stochastic=True)
    x, y = tiny_data[0][:4], tiny_data[1][:4]
    delta = torch.zeros_like(x)
    torch.manual_seed(5)
    eot = EOTPGD(model, eps=0.05, eot_samples=3).gradient(x, delta, y)
    torch.manual_seed(5)
    single = EOTPGD(model, eps=0.05, eot_samples=1)
    draws = [single.gradient(x, delta, y) for _ in range(3)]
    torch.testing.assert_close(eot, sum(draws) / 3)
    assert not torch.allclose(draws[0], draws[1])  # the model really is random


def test_stochastic_models_get_eot_by_default(tiny_model):
    stochastic = train_tiny(stochastic=True)
    assert make_attack("pgd", stochastic, 0.01).eot_samples == DEFAULT_EOT_SAMPLES
    assert make_attack("pgd", tiny_model, 0.01).eot_samples == 1
    assert make_attack("pgd", stochastic, 0.01, eot_samples=2).eot_samples == 2


def test_bpda_switches_quantisers_to_straight_through_and_back(tiny_data):
    """A model whose forward rounds its input: zero gradient unless straight-through is on."""

    class Rounding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ste = False
            self.labels, self.stochastic = ["a", "b"], False
            self.w = torch.nn.Parameter(torch.tensor([[1.0], [-1.0]]))

        def forward(self, x):
            q = torch.round(x * 8) / 8
            if self.ste:
                q = x + (q - x).detach()
            return q.mean(dim=1, keepdim=True) @ self.w.T

    model = Rounding()
    x = torch.full((2, 16), 0.3)
    y = torch.tensor([0, 1])
    masked = PGD(model, eps=0.01, bpda=False).gradient(x, torch.zeros_like(x), y)
    assert torch.count_nonzero(masked) == 0
    atk = PGD(model, eps=0.01, bpda=True)
    with atk.attack_mode():
        through = atk.gradient(x, torch.zeros_like(x), y)
    assert torch.count_nonzero(through) == x.numel()
    assert model.ste is False
