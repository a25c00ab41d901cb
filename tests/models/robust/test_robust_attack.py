"""Attacking the stochastic ensemble: the adaptive EOT attack is at least as strong as plain PGD."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from testbed.attacks import make_attack
from testbed.models.robust import make_slr


@torch.no_grad()
def _expected_error_and_loss(model, x_adv, y, draws: int = 16) -> tuple[float, float]:
    """Error rate and cross-entropy of the ensemble's answers over ``draws`` fresh noise draws."""
    model.reseed(1234)
    lp = torch.stack([model(x_adv) for _ in range(draws)])            # (draws, B, L) log-probs
    err = float((lp.argmax(-1) != y).float().mean())
    ce = float(F.nll_loss(lp.reshape(-1, lp.shape[-1]), y.repeat(draws)))
    return err, ce


def test_adaptive_eot_attack_does_at_least_as_well_as_plain_pgd(tone_fp32, tones):
    slr, _ = make_slr(copy.deepcopy(tone_fp32), 4, sigma_rel=0.3, seed=0)
    slr.eval()
    x, y = torch.from_numpy(tones.test.x[:12]), torch.from_numpy(tones.test.y[:12])
    eps = 0.0007      # small enough that neither attack saturates on this tiny model
    plain = make_attack("pgd", slr, eps, steps=5, eot_samples=1, seed=0)
    adaptive = make_attack("eot-pgd", slr, eps, steps=5, eot_samples=4, seed=0)
    assert adaptive.eot_samples == 4 and plain.eot_samples == 1
    err_plain, ce_plain = _expected_error_and_loss(slr, plain(x, y), y)
    err_adaptive, ce_adaptive = _expected_error_and_loss(slr, adaptive(x, y), y)
    assert err_adaptive >= err_plain
    assert ce_adaptive >= ce_plain
    assert adaptive.queries == 4 * plain.queries
    # both really attack: the loss is above the clean one
    _, ce_clean = _expected_error_and_loss(slr, x, y)
    assert ce_plain > ce_clean


def test_attacks_default_to_eot_on_the_stochastic_ensemble(tone_slr):
    from testbed.attacks import DEFAULT_EOT_SAMPLES

    assert make_attack("pgd", tone_slr, 0.005).eot_samples == DEFAULT_EOT_SAMPLES
    assert make_attack("pgd", tone_slr, 0.005, eot_samples=1).eot_samples == 1
