"""The stochastic low-rank ensemble: seeded noise on singular values, one batched pass, training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from testbed.errors import ModelError
from testbed.models import factorize
from testbed.models.robust import RSEEnsemble, SLREnsemble, make_rse, make_slr, slr_loss
from testbed.models.robust.losses import AdversarialExamples


def _x(tones, n=6):
    return torch.from_numpy(tones.test.x[:n])


@torch.no_grad()
def test_noise_changes_members_and_is_seeded(tone_slr, tones):
    x = _x(tones)
    members = tone_slr.member_logits(x, 4)
    assert members.shape == (4, 6, len(tones.labels))
    # every pair of members answers differently
    for i in range(4):
        for j in range(i + 1, 4):
            assert (members[i] - members[j]).abs().max() > 1e-3
    a = tone_slr.reseed(7)(x)
    b = tone_slr.reseed(7)(x)
    c = tone_slr.reseed(8)(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-4
    # two forward passes in a row draw fresh noise
    tone_slr.reseed(7)
    assert (tone_slr(x) - tone_slr(x)).abs().max() > 1e-4


@torch.no_grad()
def test_batched_ensemble_equals_loop_over_members(tone_slr, tones):
    x = _x(tones, 10)
    noise = tone_slr.draw_noise(8)
    batched = tone_slr.member_logits(x, draw=noise)
    loop = torch.stack([tone_slr.member_logits(x, draw={k: v[i:i + 1] for k, v in noise.items()})[0]
                        for i in range(8)])
    torch.testing.assert_close(batched, loop, rtol=0, atol=1e-5)
    # eval-mode chunking of a large batch gives the same answer as one pass
    tone_slr.max_rows = 8      # 1 clip x 8 members per chunk
    chunked = tone_slr.member_logits(x, draw=noise)
    torch.testing.assert_close(chunked, batched, rtol=0, atol=1e-5)


@torch.no_grad()
def test_zero_noise_is_the_lowrank_model(tone_fp32, tones):
    x = _x(tones)
    slr, comp = make_slr(copy.deepcopy(tone_fp32), 4, sigma_rel=0.0)
    lowrank = copy.deepcopy(tone_fp32)
    factorize(lowrank, ranks={layer["layer"]: layer["rank"] for layer in comp["layers"]})
    lowrank.eval(), slr.eval()
    members = slr.member_logits(x)
    torch.testing.assert_close(members, lowrank(x).expand(4, -1, -1), rtol=0, atol=1e-5)
    torch.testing.assert_close(slr(x).softmax(-1), lowrank(x).softmax(-1), rtol=0, atol=1e-6)


@torch.no_grad()
def test_output_is_the_members_mean_softmax_and_n_is_settable(tone_slr, tones):
    x = _x(tones)
    assert tone_slr.stochastic is True and tone_slr.n_members == 4
    tone_slr.n_members = 16
    tone_slr.reseed(3)
    out = tone_slr(x)
    tone_slr.reseed(3)
    members = tone_slr.member_logits(x)
    assert members.shape[0] == 16
    torch.testing.assert_close(out.exp(), members.softmax(-1).mean(0), rtol=0, atol=1e-6)
    for bad in (0, -2, 1.5):
        with pytest.raises(ModelError, match="n_members"):
            tone_slr.n_members = bad
    assert tone_slr.labels == tones.labels and tone_slr.sample_rate == tones.sample_rate


def test_training_moves_singular_values_not_the_noise_levels(tone_slr, tones):
    slr = tone_slr.train()
    x, y = torch.from_numpy(tones.train.x[:8]), torch.from_numpy(tones.train.y[:8])
    layer = slr.layers()[1][1]
    s0, sigma0 = layer.s.detach().clone(), layer.noise_sigma.clone()
    loss = slr_loss(0.5, 0.25, 0.25, n_members=3, adversary=AdversarialExamples("fgsm", 0.005))(slr, x, y)
    assert torch.isfinite(loss) and loss > 0
    opt = torch.optim.Adam(slr.parameters(), lr=1e-2)
    opt.zero_grad()
    loss.backward()
    assert layer.s.grad is not None and layer.s.grad.abs().sum() > 0
    opt.step()
    assert (layer.s.detach() - s0).abs().max() > 1e-4
    assert torch.equal(layer.noise_sigma, sigma0)
    assert "noise_sigma" not in dict(slr.named_parameters()).keys()


def test_make_slr_refuses_a_model_without_layers_and_bad_noise(tone_fp32):
    with pytest.raises(ModelError, match="sigma_rel"):
        make_slr(copy.deepcopy(tone_fp32), 4, sigma_rel=-0.1)
    with pytest.raises(ModelError, match="no stochastic low-rank layer"):
        SLREnsemble(copy.deepcopy(tone_fp32), 4)


@torch.no_grad()
def test_rse_is_seeded_batched_and_noise_free_at_sigma_zero(tone_fp32, tones):
    x = _x(tones)
    rse, comp = make_rse(copy.deepcopy(tone_fp32), tones.train.x[:16], 8, seed=1)
    rse.eval()
    assert isinstance(rse, RSEEnsemble) and rse.stochastic
    assert set(comp["noise"]["layers"]) == {"features.0.0", "features.1.0", "classifier.1"}
    assert comp["noise"]["layers"]["features.0.0"] > comp["noise"]["layers"]["features.1.0"] * 0  # measured, > 0
    m = rse.member_logits(x)
    assert m.shape == (8, 6, len(tones.labels)) and (m[0] - m[1]).abs().max() > 1e-4
    torch.testing.assert_close(rse.reseed(5)(x), rse.reseed(5)(x), rtol=0, atol=0)
    quiet, _ = make_rse(copy.deepcopy(tone_fp32), tones.train.x[:16], 4, sigma_init_rel=0.0, sigma_inner_rel=0.0)
    torch.testing.assert_close(quiet.eval()(x).softmax(-1), tone_fp32(x).softmax(-1), rtol=0, atol=1e-6)
    assert np.isfinite(list(comp["noise"]["layers"].values())).all()
