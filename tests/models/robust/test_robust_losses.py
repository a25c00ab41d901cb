"""The paper's losses: consistency (eq. 4), adversarial KL (eq. 6), weights, distillation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from testbed.errors import ModelError
from testbed.models.robust import consistency_loss, distillation_loss, kl_divergence, slr_loss


def _explicit_eq4(logp: torch.Tensor) -> torch.Tensor:
    n = logp.shape[0]
    total = 0.0
    for i, j in itertools.permutations(range(n), 2):
        # KL(p_i || p_j) per example, averaged over the batch
        total = total + F.kl_div(logp[j], logp[i], log_target=True, reduction="batchmean")
    return total / (n * (n - 1))


def test_consistency_is_zero_for_identical_members_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    one = torch.randn(1, 5, 12, generator=g).log_softmax(-1)
    same = one.expand(4, -1, -1)
    # zero up to float32 rounding: the self and cross terms are sums of ~2.5 computed by
    # different kernels (elementwise and einsum), whose rounding differs by CPU (1.9e-7 on one)
    assert float(consistency_loss(same)) == pytest.approx(0.0, abs=1e-6)
    different = torch.randn(4, 5, 12, generator=g).log_softmax(-1)
    value = consistency_loss(different)
    assert value > 0.01
    torch.testing.assert_close(value, _explicit_eq4(different), rtol=1e-5, atol=1e-6)
    assert float(consistency_loss(different[:1])) == 0.0   # one member: nothing to compare


def test_consistency_grows_with_disagreement():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(1, 8, 12, generator=g)
    jitter = torch.randn(4, 8, 12, generator=g)
    small = consistency_loss((base + 0.1 * jitter).log_softmax(-1))
    large = consistency_loss((base + 1.0 * jitter).log_softmax(-1))
    assert 0 < small < large


def test_kl_divergence():
    g = torch.Generator().manual_seed(2)
    p = torch.randn(6, 12, generator=g).log_softmax(-1)
    q = torch.randn(6, 12, generator=g).log_softmax(-1)
    assert float(kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-7)
    torch.testing.assert_close(kl_divergence(p, q), F.kl_div(q, p, log_target=True, reduction="batchmean"))


@pytest.mark.parametrize("weights", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.0, 0.0, 0.0)])
def test_loss_weights_must_be_non_negative_and_sum_to_one(weights):
    with pytest.raises(ModelError, match="sum to 1"):
        slr_loss(*weights)


def test_slr_loss_terms(tone_slr, tones):
    """gamma = 0 crafts nothing; beta adds the members' disagreement; gamma adds the adversarial KL."""
    calls = []

    def adversary(model, x, y):
        calls.append(1)
        return (x + 0.005 * torch.sign(torch.randn_like(x))).clamp(-1, 1)

    x, y = torch.from_numpy(tones.train.x[:8]), torch.from_numpy(tones.train.y[:8])
    slr = tone_slr.eval()
    ce = slr_loss(1.0, 0.0, 0.0, n_members=4, adversary=adversary)(slr.reseed(0), x, y)
    assert calls == []
    ce_cons = slr_loss(0.5, 0.5, 0.0, n_members=4, adversary=adversary)(slr.reseed(0), x, y)
    slr.reseed(0)
    lp = slr.member_logits(x, 4).log_softmax(-1)
    torch.testing.assert_close(ce_cons, 0.5 * ce + 0.5 * consistency_loss(lp), rtol=1e-5, atol=1e-6)
    full = slr_loss(0.5, 0.25, 0.25, n_members=4, adversary=adversary)(slr, x, y)
    assert calls == [1] and torch.isfinite(full)


def test_distillation_loss_is_smallest_when_the_student_matches_the_teacher(tone_fp32, tones):
    import copy

    x = torch.from_numpy(tones.train.x[:8])
    loss = distillation_loss(tone_fp32, temperature=10.0)
    other = copy.deepcopy(tone_fp32)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    with torch.no_grad():
        assert loss(tone_fp32, x, None) < loss(other, x, None)
    with pytest.raises(ModelError, match="temperature"):
        distillation_loss(tone_fp32, 0.0)
