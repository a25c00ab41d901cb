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
