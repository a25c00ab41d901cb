"""Dynamic fixed-point quantisation: integer weights, reference integer maths, STE switch."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from testbed.models import build_model, quant_layers, quantize_model, set_ste
from testbed.models.quantize import QuantConv, QuantLinear, fold_batchnorm, frac_length


@pytest.fixture(scope="module")
def lms():
    torch.manual_seed(0)
    m = build_model("lms", [f"c{i}" for i in range(12)])
    # non-trivial batch-norm statistics so folding matters
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5), mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5), mod.bias.uniform_(-0.2, 0.2)
    return m.eval()


@pytest.mark.parametrize("bits,max_levels", [(8, 256), (4, 16)])
def test_weights_take_at_most_2_to_the_bits_values_per_layer(lms, bits, max_levels):
    m = copy.deepcopy(lms)
    x = 0.1 * torch.randn(8, 16000)
    quantize_model(m, bits, x)
    layers = quant_layers(m)
    assert len(layers) == 3
    for _, layer in layers:
        assert torch.unique(layer.w_int).numel() <= max_levels
        assert torch.unique(layer.weight).numel() <= max_levels
        assert layer.w_int.dtype == torch.int8


def test_quantised_forward_matches_integer_reference_linear():
    torch.manual_seed(0)
    lin = nn.Linear(24, 6)
    x = torch.randn(5, 24)
    q = QuantLinear(lin, 8, act_max=float(x.abs().max()))
    fl_a, fl_w = int(q.fl_a), int(q.fl_w)
    x_int = np.clip(np.round(x.numpy().astype(np.float64) * 2.0 ** fl_a), -128, 127).astype(np.int64)
    w_int = q.w_int.numpy().astype(np.int64)
    acc = x_int @ w_int.T + q.b_int.numpy().astype(np.int64)     # pure integer arithmetic
    ref = acc * 2.0 ** -(fl_a + fl_w)
    assert np.array_equal(q(x).detach().numpy().astype(np.float64), ref.astype(np.float32).astype(np.float64))
    # and it is close to the float layer, within a few quantisation steps
    assert torch.allclose(q(x), lin(x), atol=0.1)


def test_quantised_forward_matches_integer_reference_conv():
    torch.manual_seed(1)
    conv = nn.Conv1d(2, 3, 5, padding=2)
    x = torch.randn(1, 2, 12)
    q = QuantConv(conv, 8, act_max=float(x.abs().max()))
    fl_a, fl_w = int(q.fl_a), int(q.fl_w)
    xi = np.clip(np.round(x.numpy()[0].astype(np.float64) * 2.0 ** fl_a), -128, 127).astype(np.int64)
    xi = np.pad(xi, ((0, 0), (2, 2)))
    wi = q.w_int.numpy().astype(np.int64)
    acc = np.zeros((3, 12), np.int64)
    for o in range(3):
        for t in range(12):
            acc[o, t] = int((wi[o] * xi[:, t:t + 5]).sum()) + int(q.b_int[o])
    ref = (acc * 2.0 ** -(fl_a + fl_w)).astype(np.float32)
    assert np.array_equal(q(x).detach().numpy()[0], ref)


def test_fractional_length_fits_the_range():
    assert frac_length(0.9, 8) == 7          # 0.9 < 1: all 7 magnitude bits are fraction
    assert frac_length(3.0, 8) == 5          # needs 2 integer bits
    assert frac_length(0.2, 16) == 17        # small values get extra fraction bits


def test_batchnorm_folding_keeps_the_function(lms):
    m = copy.deepcopy(lms)
    x = 0.1 * torch.randn(4, 16000)
    y = m(x)
    assert fold_batchnorm(m) == 2
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    assert torch.allclose(m(x), y, atol=1e-4)


@pytest.mark.parametrize("bits", [16, 8])
def test_quantised_model_tracks_the_float_model(lms, bits):
    m = copy.deepcopy(lms)
    x = 0.1 * torch.randn(16, 16000)
    y = lms(x)
    quantize_model(m, bits, x)
    err = (m(x) - y).abs().max() / y.abs().max()
    assert err < (1e-3 if bits == 16 else 0.1)


def test_ste_switch_gives_gradients_exact_mode_does_not(lms):
    m = copy.deepcopy(lms)
    quantize_model(m, 8, 0.1 * torch.randn(8, 16000))
    x = 0.1 * torch.randn(2, 16000)

    def grad():
        xx = x.clone().requires_grad_(True)
        m(xx)[:, 0].sum().backward()
        return xx.grad

    exact = grad()
    assert exact is None or float(exact.abs().sum()) == 0.0
    assert set_ste(m, True) == 3
    g = grad()
    assert g is not None and float(g.abs().sum()) > 0
    with torch.no_grad():
        set_ste(m, False)
        y_exact = m(x)
        set_ste(m, True)
        assert torch.equal(m(x), y_exact)      # STE changes gradients only, never the forward value


def test_eight_bit_activation_range_ignores_a_rare_outlier_sixteen_bits_keeps_the_peak():
    from testbed.models.quantize import activation_range, fake_quant, frac_length

    torch.manual_seed(0)
    sample = torch.cat([0.05 * torch.randn(200_000), torch.tensor([4.0])])   # one outlier
    chosen = activation_range(4.0, sample, 8)
    assert chosen < 4.0                                                  # the outlier no longer sets the step
    err = lambda r: float((fake_quant(sample, 8, frac_length(r, 8)) - sample).pow(2).mean())  # noqa: E731
    assert err(chosen) < 0.8 * err(4.0)
    assert activation_range(4.0, sample, 16) == 4.0
    assert activation_range(4.0, None, 8) == 4.0                         # no calibration data: the peak
