"""Post-training dynamic fixed-point quantisation (paper section 2.3.2).

Every conv and fully connected layer gets its own fractional lengths: one for its weights
(from their range) and one for its input activations (from the range seen on sample
inputs). Batch-norm is folded into the preceding convolution first, as an integer-only
runtime would. Weights are stored as integers (int8 for <= 8 bits, int16 otherwise).

The forward pass is the exact fixed-point computation by default (rounding has zero
gradient almost everywhere); ``set_ste(model, True)`` switches every quantiser to a
straight-through estimator so gradient attacks (BPDA) can go through it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from testbed.errors import ModelError
from testbed.models.frontend import LogMel

BITS: tuple[int, ...] = (16, 8, 4)


def frac_length(max_abs: float, bits: int) -> int:
    """Fractional length (bits after the binary point) so ``max_abs`` fits a signed ``bits`` word.

    Parameters
    ----------
    max_abs : float
        Largest magnitude to represent (0 gives the finest step, ``bits - 1``).
    bits : int
        Word length including the sign bit.
    """
    if max_abs <= 0 or not math.isfinite(max_abs):
        return bits - 1
    int_bits = math.ceil(math.log2(max_abs))     # bits left of the point, sign excluded
    return bits - 1 - int_bits


def to_fixed(x: torch.Tensor, bits: int, fl: int, ste: bool = False) -> torch.Tensor:
    """``x`` as signed fixed-point integers (float tensor holding integers) at fractional length ``fl``.

    With ``ste`` the rounding passes gradients straight through (clipping still blocks them).
    """
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scaled = torch.clamp(x * (2.0 ** fl), lo, hi)
    rounded = torch.round(scaled)
    return scaled + (rounded - scaled).detach() if ste else rounded


def fake_quant(x: torch.Tensor, bits: int, fl: int, ste: bool = False) -> torch.Tensor:
    """Quantise and dequantise: the value a fixed-point runtime would hold."""
    return to_fixed(x, bits, fl, ste) * (2.0 ** -fl)


def _int_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits <= 8 else torch.int16


class _QuantLayer(nn.Module):
    """Shared state of quantised layers: integer weights and bias, fractional lengths."""

    def _init_quant(self, weight: torch.Tensor, bias: torch.Tensor | None, bits: int,
                    act_max: float, act_bits: int | None = None) -> None:
        if bits not in BITS:
            raise ModelError(f"quantisation: bits must be one of {BITS}, got {bits}")
        self.bits = bits
        self.act_bits = act_bits or bits
        self.ste = False
        fl_w = frac_length(float(weight.detach().abs().max()), bits)
        fl_a = frac_length(act_max, self.act_bits)
        self.register_buffer("w_int", to_fixed(weight.detach(), bits, fl_w).to(_int_dtype(bits)))
        self.register_buffer("fl_w", torch.tensor(fl_w, dtype=torch.int32))
        self.register_buffer("fl_a", torch.tensor(fl_a, dtype=torch.int32))
        b = torch.zeros(weight.shape[0]) if bias is None else bias.detach()
        # bias in the accumulator's format (fractional length fl_w + fl_a), 32-bit
        self.register_buffer("b_int", torch.round(b * 2.0 ** (fl_w + fl_a)).clamp(
            -(2 ** 31), 2 ** 31 - 1).to(torch.int32))

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        return to_fixed(x, self.act_bits, int(self.fl_a), self.ste)

    def _out_scale(self) -> float:
        return 2.0 ** -(int(self.fl_w) + int(self.fl_a))

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight (float)."""
        return self.w_int.float() * 2.0 ** -int(self.fl_w)

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, act_bits={self.act_bits}, fl_w={int(self.fl_w)}, "
                f"fl_a={int(self.fl_a)}, ste={self.ste}")


class QuantLinear(_QuantLayer):
    """Fixed-point fully connected layer: ``y = (x_int @ W_int.T + b_int) * 2^-(fl_w + fl_a)``."""

    def __init__(self, layer: nn.Linear, bits: int, act_max: float, act_bits: int | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self._init_quant(layer.weight, layer.bias, bits, act_max, act_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc = F.linear(self._quant_input(x), self.w_int.float(), self.b_int.float())
        return acc * self._out_scale()


class QuantConv(_QuantLayer):
    """Fixed-point 1-D or 2-D convolution (batch-norm already folded in)."""

    def __init__(self, layer: nn.Conv1d | nn.Conv2d, bits: int, act_max: float,
                 folded_bn: bool = False, act_bits: int | None = None) -> None:
        super().__init__()
        self.dims = 1 if isinstance(layer, nn.Conv1d) else 2
        self.stride, self.padding, self.dilation, self.groups = (
            layer.stride, layer.padding, layer.dilation, layer.groups)
        self.folded_bn = folded_bn
        self._init_quant(layer.weight, layer.bias, bits, act_max, act_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv1d if self.dims == 1 else F.conv2d
        acc = conv(self._quant_input(x), self.w_int.float(), self.b_int.float(),
                   self.stride, self.padding, self.dilation, self.groups)
        return acc * self._out_scale()


@dataclass
class QuantInfo:
    """How one layer was quantised (written into the model card)."""

    layer: str
    bits: int
    act_bits: int
    fl_w: int
    fl_a: int
    act_max: float
    distinct_weights: int

    def as_dict(self) -> dict:
        return asdict(self)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every ``conv -> batch-norm`` pair of ``model`` into the conv, in place (eval statistics).

    Returns the number of folded pairs; each folded BN becomes ``nn.Identity``.
    """
    folded = 0
    for parent in model.modules():
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, (nn.Conv1d, nn.Conv2d)) and isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
                with torch.no_grad():
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
                    b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                    new_b = (b - bn.running_mean) * scale + bn.bias
                    if conv.bias is None:
                        conv.bias = nn.Parameter(new_b)
                    else:
                        conv.bias.copy_(new_b)
                conv._folded_bn = True
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


_SAMPLES_PER_BATCH = 200_000


@torch.no_grad()
def _activation_ranges(model: nn.Module, names: list[str], calib_x: torch.Tensor,
                       batch_size: int = 128) -> dict[str, tuple[float, torch.Tensor]]:
    """Per layer: ``(max |input|, a seeded sample of its inputs)`` on ``calib_x``."""
    peaks = {n: 0.0 for n in names}
    samples: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    gen = torch.Generator().manual_seed(0)
    hooks = []
    for name in names:
        def hook(_m, args, name=name):
            a = args[0].detach().flatten()
            peaks[name] = max(peaks[name], float(a.abs().max()))
            if a.numel() > _SAMPLES_PER_BATCH:
                a = a[torch.randint(a.numel(), (_SAMPLES_PER_BATCH,), generator=gen)]
            samples[name].append(a)
        hooks.append(model.get_submodule(name).register_forward_pre_hook(hook))
    try:
        model.eval()
        for i in range(0, len(calib_x), batch_size):
            model(calib_x[i:i + batch_size])
    finally:
        for h in hooks:
            h.remove()
    return {n: (peaks[n], torch.cat(samples[n])) for n in names}


def activation_range(peak: float, sample: torch.Tensor | None, bits: int, search: int = 6) -> float:
    """The input range of a ``bits``-bit layer: the power of two whose fixed-point format
    quantises ``sample`` with the least squared error (from the one that holds ``peak`` to
    ``search`` steps finer). Word lengths above 8 bits keep the peak.

    With the peak alone, a few outliers set the step: an 8-bit ETE then lost 30 points of
    accuracy (0.84 -> 0.54), as small activations all rounded to zero.
    """
    fl_peak = frac_length(peak, bits)
    if bits > 8 or sample is None or sample.numel() == 0:
        return peak
    errs = [float((fake_quant(sample, bits, fl) - sample).pow(2).mean()) for fl in range(fl_peak, fl_peak + search + 1)]
    best = fl_peak + min(range(len(errs)), key=errs.__getitem__)
    return float(2.0 ** (bits - 1 - best))


def quantize_model(model: nn.Module, bits: int, calib_x: torch.Tensor | None = None,
                   pcm_bits: int = 16) -> list[QuantInfo]:
    """Quantise ``model`` to dynamic fixed point with ``bits`` per word, in place.

    Parameters
    ----------
    model : nn.Module
        A trained float model (conv / linear layers, optional batch-norm after convs).
    bits : int
        16, 8 or 4.
    calib_x : Tensor (n, samples), optional
        Sample inputs that set each layer's activation fractional length (from the maximum
        for 16-bit words, by least squared error for 8 and 4 bits: :func:`activation_range`).
        ``None`` builds the structure only (used before loading stored weights).
    pcm_bits : int
        Word length of the raw PCM input where a layer reads it directly (end-to-end models):
        the ADC's own samples, at least ``bits``; every other activation uses ``bits``.

    Returns
    -------
    list of QuantInfo, one per quantised layer.
    """
    if bits not in BITS:
        raise ModelError(f"quantisation: bits must be one of {BITS}, got {bits}")
    model.eval()
    fold_batchnorm(model)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    if not names:
        raise ModelError("quantize: the model has no conv or linear layer")
    ranges = (_activation_ranges(model, names, calib_x) if calib_x is not None
              else {n: (1.0, None) for n in names})
    raw_input = names[0] if _reads_raw_pcm(model) else None
    infos = []
    for name in names:
        layer = model.get_submodule(name)
        act_bits = max(bits, pcm_bits) if name == raw_input else bits
        act_max = activation_range(*ranges[name], act_bits)
        if isinstance(layer, nn.Linear):
            new: _QuantLayer = QuantLinear(layer, bits, act_max, act_bits=act_bits)
        else:
            new = QuantConv(layer, bits, act_max, folded_bn=getattr(layer, "_folded_bn", False),
                            act_bits=act_bits)
        infos.append(QuantInfo(name, bits, act_bits, int(new.fl_w), int(new.fl_a), round(act_max, 6),
                               int(torch.unique(new.w_int).numel())))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return infos


def _reads_raw_pcm(model: nn.Module) -> bool:
    """Whether the first conv/linear layer sees the raw PCM input (no feature front end)."""
    frontend = getattr(model, "frontend", None)
    return frontend is not None and not any(isinstance(m, LogMel) for m in frontend.modules())


def set_ste(model: nn.Module, on: bool) -> int:
    """Switch every quantised layer of ``model`` to straight-through gradients (``on``) or exact.

    Returns the number of quantised layers switched (0 for a float model).
    """
    n = 0
    for m in model.modules():
        if isinstance(m, _QuantLayer):
            m.ste = bool(on)
            n += 1
    return n


def quant_layers(model: nn.Module) -> list[tuple[str, QuantLinear | QuantConv]]:
    """All quantised layers of ``model`` as ``(name, module)``, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _QuantLayer)]
