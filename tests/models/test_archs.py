"""Architectures: shapes, dtypes and Table 1 layer counts for every arch and variant."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from testbed.errors import ModelError
from testbed.models import ARCHS, PAPER_TABLE, VARIANTS, build_model, compress, layer_counts, param_count

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]


@pytest.fixture(scope="module")
def base_models() -> dict:
    torch.manual_seed(0)
    return {a: build_model(a, LABELS).eval() for a in ARCHS}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_and_variant_maps_pcm_to_logits(base_models, arch, variant):
    model = copy.deepcopy(base_models[arch])
    rng = np.random.default_rng(1)
    x = torch.from_numpy((0.1 * rng.standard_normal((3, 16000))).astype(np.float32))
    compress(model, variant, calib_x=x.numpy())
    model.eval()
    logits = model(x)
    assert logits.shape == (3, len(LABELS))
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert model.labels == LABELS and model.sample_rate == 16000 and model.stochastic is False
    # compressed layers still count as the paper's layers (Table 1)
    want = {k: PAPER_TABLE[arch][k] for k in ("conv", "pool", "bn", "fc")}
    assert layer_counts(model) == want


@pytest.mark.parametrize("arch", ARCHS)
def test_compressed_variants_store_fewer_numbers_or_bytes(base_models, arch):
    fp32 = base_models[arch]
    low = copy.deepcopy(fp32)
    compress(low, "lowrank")
    # the LMS is almost all one 4000 -> 12 layer, whose rank 12 keeps 9 (0.75): a quarter saved
    assert param_count(low) < {"lm": 0.3, "ete": 0.4, "lms": 0.8}[arch] * param_count(fp32)
    q = copy.deepcopy(fp32)
    compress(q, "int8", calib_x=np.zeros((2, 16000), np.float32) + 0.01)
    int_bytes = sum(b.numel() * b.element_size() for n, b in q.named_buffers() if n.endswith("w_int"))
    float_bytes = sum(m.weight.numel() * 4 for m in fp32.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)))
    assert int_bytes * 4 == float_bytes


def test_gradient_reaches_the_waveform(base_models):
    model = base_models["lm"]
    x = (0.1 * torch.randn(2, 16000)).requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_input_shape_and_unknown_arch_are_model_errors(base_models):
    with pytest.raises(ModelError, match=r"\(batch, samples\)"):
        base_models["lms"](torch.zeros(16000))
    with pytest.raises(ModelError, match="ete, lm, lms"):
        build_model("resnet", LABELS)


@pytest.mark.parametrize("dims,shape,k", [(2, (3, 8, 40, 101), 2), (2, (2, 3, 7, 9), 3),
                                          (1, (3, 4, 2001), 4), (1, (3, 4, 125), 2)])
def test_fast_max_pool_matches_torch_in_values_and_gradients(dims, shape, k):
    from testbed.models.archs import MaxPool1d, MaxPool2d

    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    ours = (MaxPool1d if dims == 1 else MaxPool2d)(k)(x)
    ref = (torch.nn.functional.max_pool1d if dims == 1 else torch.nn.functional.max_pool2d)(x, k)
    assert torch.equal(ours, ref)
    g_ours, = torch.autograd.grad((ours * torch.arange(ours.numel()).reshape(ours.shape)).sum(), x)
    g_ref, = torch.autograd.grad((ref * torch.arange(ref.numel()).reshape(ref.shape)).sum(), x)
    assert torch.equal(g_ours, g_ref)


def test_eval_mode_conv_block_folds_batch_norm_into_a_low_rank_conv_exactly():
    from testbed.models import ConvBlock, LowRankConv

    torch.manual_seed(0)
    block = ConvBlock(2, 3, 8, 3, pool=2)
    bn = block[1]
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(-2, 2), bn.bias.data.uniform_(-1, 1)   # negative scales too
    block[0] = LowRankConv.from_conv(block[0], 5)
    block.eval()
    x = torch.randn(4, 3, 12, 15)
    reference = block[3](torch.relu(bn(block[0](x))))      # conv -> bn -> relu -> pool, unfused
    assert torch.allclose(block(x), reference, atol=1e-5)
    block.train()                                          # training: batch statistics, no folding
    assert torch.allclose(block(x), block[3](torch.relu(torch.nn.functional.batch_norm(
        block[0](x), None, None, bn.weight, bn.bias, training=True))), atol=1e-5)
