"""Low-rank factorisation: SVD truncation, real factorised layers, ranks per layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from testbed.errors import ModelError
from testbed.models import LowRankConv, LowRankLinear, build_model, factorize, lowrank_layers, reconstruction_error
from testbed.models.lowrank import choose_rank


def test_reconstruction_error_falls_as_rank_rises():
    torch.manual_seed(0)
    w = torch.randn(48, 80)
    errs = [reconstruction_error(w, k) for k in (1, 4, 16, 32, 48)]
    assert all(a > b for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 1e-5          # full rank reproduces the matrix
    assert errs[0] > 0.5


def test_full_rank_factorised_layers_reproduce_the_dense_layers():
    torch.manual_seed(0)
    lin = nn.Linear(30, 20)
    x = torch.randn(5, 30)
    low = LowRankLinear.from_linear(lin, 20)
    assert torch.allclose(low(x), lin(x), atol=1e-5)
    for conv, x in ((nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.randn(2, 3, 11, 13)),
                    (nn.Conv1d(4, 6, 9, stride=3, padding=4), torch.randn(2, 4, 100))):
        full = min(conv.out_channels, conv.weight[0].numel())
        low = LowRankConv.from_conv(conv, full)
        assert torch.allclose(low(x), conv(x), atol=1e-5)
        assert torch.allclose(low.weight, conv.weight, atol=1e-5)


def test_singular_values_are_a_separate_parameter_that_drives_the_output():
    torch.manual_seed(0)
    low = LowRankLinear.from_linear(nn.Linear(16, 8), 4)
    names = {n for n, _ in low.named_parameters()}
    assert {"U", "s", "V"} <= names
    x = torch.randn(3, 16)
    y0 = low(x)
    assert not torch.allclose(low(x, s=low.s * 1.5), y0)   # a stochastic ensemble perturbs s only


def test_factorize_truncates_every_layer_and_records_ranks():
    torch.manual_seed(0)
    model = build_model("lm", [f"c{i}" for i in range(12)])
    dense = sum(p.numel() for p in model.parameters())
    infos = factorize(model, rank_fraction=0.5)
    assert len(infos) == 5 and len(lowrank_layers(model)) == 5
    for info in infos:
        assert info.rank < info.full_rank
        assert info.rule == ("paper" if info.full_rank > (16 if info.kind == "fc" else 64) else "fraction")
    assert {i.layer: i.rank for i in infos}["classifier.0"] == 16        # the paper's FC rank
    assert sum(p.numel() for p in model.parameters()) < 0.3 * dense


def test_rank_fraction_out_of_range_is_refused():
    with pytest.raises(ModelError, match="rank-fraction"):
        choose_rank(32, 64, 1.5)


@pytest.mark.parametrize("dims,spatial,pool", [(2, (40, 101), 2), (2, (7, 9), 3), (2, (6, 5), 1), (1, (2001,), 4),
                                             (1, (125,), 2)])
@pytest.mark.parametrize("members,shared", [(None, False), (3, False), (3, True)])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("channels_last,relu", [(False, False), (True, True)])
def test_pooled_mix_equals_mix_then_max_pool(dims, spatial, pool, members, shared, grad, channels_last, relu):
    """The fused mix + pool (+ ReLU) of the eval path gives the values (and input gradients) of
    the 1x1 mix followed by torch's max pooling, per member, for the shared first layer too,
    whether ``h`` is gathered (channels-first) or mixed from its rows (channels-last)."""
    from testbed.models.lowrank import mix_channels, mix_pooled

    torch.manual_seed(0)
    b, k, out = 4, 5, 6
    rows = b if (members is None or shared) else members * b
    h = torch.randn(rows, *spatial, k).movedim(-1, 1) if channels_last else torch.randn(rows, k, *spatial)
    h.requires_grad_(grad)
    weight = torch.randn(out, k) if members is None else torch.randn(members, out, k)
    bias = torch.randn(out)
    pool_fn = torch.nn.functional.max_pool1d if dims == 1 else torch.nn.functional.max_pool2d
    with torch.set_grad_enabled(grad):
        ours = mix_pooled(h, weight, bias, pool, shared=shared, chunk_bytes=4096, relu=relu)  # several blocks
        ref = pool_fn(mix_channels(h, weight, bias, shared=shared), pool)
        ref = torch.relu(ref) if relu else ref
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-5)
    if grad:
        probe = torch.randn(ref.shape)
        g_ours, = torch.autograd.grad((ours * probe).sum(), h)
        g_ref, = torch.autograd.grad((ref * probe).sum(), h)
        assert torch.allclose(g_ours, g_ref, atol=1e-5)


def test_rank_cap_limits_every_rule_and_is_named():
    assert choose_rank(48, 64, 0.75) == (36, "fraction")
    assert choose_rank(48, 64, 0.75, rank_cap=16) == (16, "cap")
    assert choose_rank(9, 64, 0.75, rank_cap=16) == (7, "fraction")     # under the cap: the fraction
    assert choose_rank(3840, 16, 0.75, rank_cap=8) == (8, "cap")        # the paper's rank is capped too
    with pytest.raises(ModelError, match="rank cap"):
        choose_rank(48, 64, 0.75, rank_cap=0)


def test_member_rows_must_divide_in_both_mixes():
    from testbed.models.lowrank import mix_channels, mix_pooled

    h, w = torch.randn(5, 3, 4, 4), torch.randn(2, 6, 3)      # 5 rows for 2 members
    with pytest.raises(ModelError, match="5 rows is not a multiple of 2 members"):
        mix_channels(h, w)
    with pytest.raises(ModelError, match="5 rows is not a multiple of 2 members"):
        mix_pooled(h, w, None, 2)


def test_relu_is_fused_only_with_pooling():
    layer = LowRankConv(2, 3, 4, (3, 3), 2, (1, 1), (1, 1), (1, 1))
    with pytest.raises(ModelError, match="relu is fused only with pool"):
        layer(torch.randn(1, 3, 5, 5), relu=True)
