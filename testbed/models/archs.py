"""The paper's three keyword-spotting architectures (Table 1), sized for CPU training.

ETE works on raw PCM with SoundNet-like 1-D convolutions; LM and LMS start with the
log-mel front end. Layer counts follow Table 1 (conv / pool / batch-norm / fully connected);
widths are small so a model trains on two CPU cores in minutes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from testbed.errors import ModelError
from testbed.models.frontend import ClipNorm, LogMel
from testbed.models.lowrank import LowRankConv, LowRankLinear
from testbed.models.quantize import QuantConv, QuantLinear

ARCHS: tuple[str, ...] = ("ete", "lm", "lms")

#: Table 1 of the paper (speech commands): size in MB and layer counts
PAPER_TABLE: dict[str, dict] = {
    "ete": {"input": "raw PCM", "size_mb": 11.7, "conv": 5, "pool": 3, "bn": 5, "fc": 2},
    "lm": {"input": "log-mel", "size_mb": 20.2, "conv": 3, "pool": 3, "bn": 3, "fc": 2},
    "lms": {"input": "log-mel", "size_mb": 1.8, "conv": 2, "pool": 2, "bn": 2, "fc": 1},
}


def _strided_max(x: torch.Tensor, kernel: int, dims: int) -> torch.Tensor:
    """Non-overlapping max pooling over the last ``dims`` axes as an elementwise maximum of
    strided slices (remainders dropped, as ``max_pool`` does)."""
    crop = [slice(None)] * (x.dim() - dims) + [slice(0, (n // kernel) * kernel) for n in x.shape[-dims:]]
    x = x[tuple(crop)]
    out = None
    for offset in range(kernel ** dims):
        idx = [slice(None)] * (x.dim() - dims)
        for d in range(dims):
            idx.append(slice((offset // kernel ** d) % kernel, None, kernel))
        part = x[tuple(idx)]
        out = part if out is None else torch.maximum(out, part)
    return out


class MaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` whose common case (kernel = stride, no padding) runs as a maximum of
    strided slices: on CPU that is 3-4x faster than ATen's pooling kernel, which also builds
    an index tensor it never needs here (the pooling dominated the SLR ensemble's time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(self):
            return _strided_max(x, int(self.kernel_size), 1)
        return super().forward(x)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` with the fast path of :class:`MaxPool1d` for square non-overlapping windows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(self):
            return _strided_max(x, int(self.kernel_size), 2)
        return super().forward(x)


def _frozen_bn(m: nn.Module) -> bool:
    return (isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and not m.training and m.affine
            and m.running_mean is not None)


def _plain(pool: nn.Module) -> bool:
    k, s = pool.kernel_size, pool.stride
    return (isinstance(k, int) and (s == k or s is None) and pool.padding == 0 and pool.dilation == 1
            and not pool.ceil_mode and not pool.return_indices)


class ConvBlock(nn.Sequential):
    """conv -> batch-norm -> ReLU -> optional max-pool (1-D or 2-D).

    Kept as one module so compression can find the conv/bn pair (BN folding).
    """

    def __init__(self, dims: int, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 pool: int | None = None) -> None:
        conv_cls, bn_cls, pool_cls = ((nn.Conv1d, nn.BatchNorm1d, MaxPool1d) if dims == 1
                                      else (nn.Conv2d, nn.BatchNorm2d, MaxPool2d))
        layers: list[nn.Module] = [conv_cls(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
                                   bn_cls(c_out), nn.ReLU()]
        if pool:
            layers.append(pool_cls(pool))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mods = list(self)
        if (len(mods) >= 2 and getattr(mods[0], "accepts_affine", False) and _frozen_bn(mods[1])):
            # eval mode: the batch norm is a per-channel affine map, folded into the layer's
            # 1x1 mix (exact), which saves a pass over the ensemble's many full-size outputs
            bn = mods[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            affine = (scale, bn.bias - bn.running_mean * scale)
            rest = mods[2:]
            if len(rest) == 2 and isinstance(rest[0], nn.ReLU) and isinstance(rest[1], (nn.MaxPool1d, nn.MaxPool2d)) \
                    and _plain(rest[1]):
                # the pooling and the ReLU too: the layer pools its 1x1 mix block by block, so the
                # block's full-resolution output is never formed (ReLU commutes with the max)
                return mods[0](x, affine=affine, pool=int(rest[1].kernel_size), relu=True)
            x = mods[0](x, affine=affine)
            mods = rest
        if len(mods) >= 2 and isinstance(mods[-1], (nn.MaxPool1d, nn.MaxPool2d)) and isinstance(mods[-2], nn.ReLU):
            # max-pool and ReLU commute (ReLU is monotone): pooling first runs the ReLU on a
            # quarter of the values, which matters for the ensemble's many full-size members
            mods[-2], mods[-1] = mods[-1], mods[-2]
        for m in mods:
            x = _relu(x) if isinstance(m, nn.ReLU) else m(x)
        return x


def _relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU of a block's own intermediate: in place without autograd (no new tensor)."""
    return torch.relu(x) if torch.is_grad_enabled() else torch.relu_(x)


class KwsModel(nn.Module):
    """A keyword-spotting model: (optional front end) -> conv blocks -> classifier.

    Attributes
    ----------
    arch : str
        One of :data:`ARCHS`.
    labels : list[str]
        Class names; logits follow this order.
    sample_rate : int
        Input sample rate, Hz.
    clip_samples : int
        Input length the classifier was sized for, samples.
    stochastic : bool
        False: a forward pass is deterministic in eval mode.
    """

    stochastic: bool = False

    def __init__(self, arch: str, labels: Sequence[str], sample_rate: int, clip_samples: int,
                 frontend: nn.Module, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.arch = arch
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)
        self.clip_samples = int(clip_samples)
        self.frontend = frontend
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw PCM ``(batch, samples)`` in [-1, 1] -> logits ``(batch, n_labels)``."""
        if x.dim() != 2:
            raise ModelError(f"model {self.arch}: input must be (batch, samples), got shape {tuple(x.shape)}")
        return self.classifier(self.features(self.frontend(x)).flatten(1))


class _Unsqueeze(nn.Module):
    """(batch, samples) -> (batch, 1, samples) for the 1-D convolutions of ETE."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


def _flat_size(frontend: nn.Module, features: nn.Module, clip_samples: int) -> int:
    with torch.no_grad():
        frontend.eval(), features.eval()
        return int(features(frontend(torch.zeros(1, clip_samples))).numel())


def _ete(labels: Sequence[str], sample_rate: int, clip_samples: int) -> KwsModel:
    frontend = nn.Sequential(ClipNorm(), _Unsqueeze())
    features = nn.Sequential(                      # c:5 p:3 bn:5
        ConvBlock(1, 1, 16, 63, stride=8, pool=4),  # 16000 -> 2000 -> 500
        ConvBlock(1, 16, 32, 9, stride=2, pool=2),  # -> 250 -> 125
        ConvBlock(1, 32, 48, 9, stride=1, pool=2),  # -> 125 -> 62
        ConvBlock(1, 48, 64, 3, stride=2),          # -> 31
        ConvBlock(1, 64, 64, 3, stride=1),          # -> 31
    )
    n = _flat_size(frontend, features, clip_samples)
    classifier = nn.Sequential(nn.Linear(n, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, len(labels)))
    return KwsModel("ete", labels, sample_rate, clip_samples, frontend, features, classifier)


def _lm(labels: Sequence[str], sample_rate: int, clip_samples: int) -> KwsModel:
    frontend = LogMel(sample_rate)
    features = nn.Sequential(                      # c:3 p:3 bn:3
        ConvBlock(2, 1, 16, 3, pool=2),            # 40x101 -> 20x50
        ConvBlock(2, 16, 48, 3, pool=2),           # -> 10x25
        ConvBlock(2, 48, 64, 3, pool=2),           # -> 5x12
    )
    n = _flat_size(frontend, features, clip_samples)
    classifier = nn.Sequential(nn.Linear(n, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, len(labels)))
    return KwsModel("lm", labels, sample_rate, clip_samples, frontend, features, classifier)


def _lms(labels: Sequence[str], sample_rate: int, clip_samples: int) -> KwsModel:
    frontend = LogMel(sample_rate)
    features = nn.Sequential(                      # c:2 p:2 bn:2
        ConvBlock(2, 1, 8, 3, pool=2),             # 40x101 -> 20x50
        ConvBlock(2, 8, 16, 3, pool=2),            # -> 10x25
    )
    n = _flat_size(frontend, features, clip_samples)
    classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(n, len(labels)))   # fc:1
    return KwsModel("lms", labels, sample_rate, clip_samples, frontend, features, classifier)


_BUILDERS = {"ete": _ete, "lm": _lm, "lms": _lms}


def build_model(arch: str, labels: Sequence[str], sample_rate: int = 16000,
                clip_samples: int = 16000) -> KwsModel:
    """Build an untrained model of one of the paper's architectures.

    Parameters
    ----------
    arch : str
        ``ete``, ``lm`` or ``lms`` (case-insensitive).
    labels : sequence of str
        Class names, in logit order.
    sample_rate : int
        Input sample rate, Hz.
    clip_samples : int
        Input length, samples (1 s = 16000 at 16 kHz).

    Returns
    -------
    KwsModel
        Forward: raw PCM ``(batch, clip_samples)`` float in [-1, 1] -> logits ``(batch, len(labels))``.
    """
    key = arch.lower()
    if key not in _BUILDERS:
        raise ModelError(f"unknown architecture {arch!r} (have: {', '.join(ARCHS)})")
    if len(labels) < 2:
        raise ModelError(f"architecture {arch}: needs at least 2 labels, got {list(labels)}")
    return _BUILDERS[key](labels, sample_rate, clip_samples)


def layer_counts(model: nn.Module) -> dict[str, int]:
    """Count conv / pool / batch-norm / fully connected layers (Table 1's columns).

    Compressed layers count as the layer they replace; a batch-norm folded into a
    fixed-point convolution still counts.
    """
    counts = {"conv": 0, "pool": 0, "bn": 0, "fc": 0}
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, LowRankConv, QuantConv)) and not _inside_wrapper(model, m):
            counts["conv"] += 1
            counts["bn"] += int(getattr(m, "folded_bn", False))   # folded into the conv
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            counts["pool"] += 1
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            counts["bn"] += 1
        elif isinstance(m, (nn.Linear, LowRankLinear, QuantLinear)) and not _inside_wrapper(model, m):
            counts["fc"] += 1
    return counts


def _inside_wrapper(model: nn.Module, module: nn.Module) -> bool:
    for m in model.modules():
        if isinstance(m, (LowRankConv, LowRankLinear, QuantConv, QuantLinear)) and m is not module:
            if any(sub is module for sub in m.modules()):
                return True
    return False


def param_count(model: nn.Module) -> int:
    """Number of stored numbers: parameters plus quantised weight buffers (not BN statistics)."""
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for name, b in model.named_buffers() if name.endswith("w_int"))
    return int(n)
