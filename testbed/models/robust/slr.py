"""The stochastic low-rank ensemble (SLR), the paper's defence (section 3.1).

Every conv and fully connected layer is factorised ``W = U diag(s) V`` (the low-rank layers of
:mod:`testbed.models.lowrank`). A member of the ensemble is the same network with Gaussian
noise ``N(mu, sigma)`` added to every layer's singular values ``s``; ``mu`` and ``sigma`` are
fixed per layer (as in the paper) and stored both as buffers in the weights and in the card.
A fresh draw is made on every forward pass -- after every update in training, and for every
prediction at inference.

The ``n`` members are evaluated in one batched pass. Only the singular values differ
between members, so a factorised layer computes ``V x`` once for the whole stacked batch
``(n * B)``, scales it by the member's ``s_k`` (a ``(n, 1, rank)`` broadcast, i.e. a stacked
``diag(s_k)``) and mixes with the shared ``U``. The first factorised layer computes ``V x``
on the ``B`` clips only and fans out to the ``n`` members at the scale, so the front end and
that first projection are never repeated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from testbed.errors import ModelError
from testbed.models.lowrank import (
    PAPER_CONV_RANK,
    PAPER_FC_RANK,
    SLR_RANK_CAP,
    SLR_RANK_FRACTION,
    LowRankConv,
    LowRankLinear,
    factorize,
    lowrank_layers,
)
from testbed.models.robust.ensemble import StochasticEnsemble, check_members

#: default noise on singular values, as fractions of the layer's mean singular value
DEFAULT_SIGMA_REL = 0.1
DEFAULT_MU_REL = 0.0


def _scale_members(h: torch.Tensor, s: torch.Tensor, fan_out: bool, channel_dim: int) -> torch.Tensor:
    """Multiply the rank channels of ``h`` by each member's singular values.

    Parameters
    ----------
    h : Tensor
        ``(B, ...)`` when ``fan_out`` (shared by all members) else ``(n * B, ...)``, member-major;
        the rank channels are on ``channel_dim`` (1 for convolutions, -1 for linear layers).
    s : Tensor (n, rank)
        Every member's singular values.

    Returns
    -------
    Tensor (n * B, ...)
    """
    n, rank = s.shape
    b = h.shape[0] if fan_out else h.shape[0] // n
    if not fan_out and b * n != h.shape[0]:
        raise ModelError(f"SLR layer: batch of {h.shape[0]} rows is not a multiple of {n} members")
    dim = channel_dim % h.dim()
    view = [1] * (h.dim() + 1)
    view[0], view[dim + 1] = n, rank
    hh = h.unsqueeze(0) if fan_out else h.reshape(n, b, *h.shape[1:])
    return (hh * s.reshape(view)).reshape(n * b, *h.shape[1:])


class _Stochastic:
    """Shared state of the stochastic layers (set by :class:`SLREnsemble` around a forward)."""

    member_s: torch.Tensor | None
    fan_out: bool

    def _init_noise(self, mu: float, sigma: float) -> None:
        self.register_buffer("noise_mu", torch.tensor(float(mu)))
        self.register_buffer("noise_sigma", torch.tensor(float(sigma)))
        self.member_s = None
        self.fan_out = False

    def noise_params(self) -> dict:
        """``{"mu": float, "sigma": float}`` of this layer's singular-value noise."""
        return {"mu": round(float(self.noise_mu), 8), "sigma": round(float(self.noise_sigma), 8)}


class StochasticLowRankLinear(_Stochastic, LowRankLinear):
    """A factorised fully connected layer whose members scale by ``s + N(mu, sigma)``.

    Without member values set it is the deterministic low-rank layer (noise-free ``s``).
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True,
                 mu: float = 0.0, sigma: float = 0.0) -> None:
        super().__init__(in_features, out_features, rank, bias=bias)
        self._init_noise(mu, sigma)

    @classmethod
    def from_lowrank(cls, layer: LowRankLinear, mu: float, sigma: float) -> StochasticLowRankLinear:
        new = cls(layer.in_features, layer.out_features, layer.rank, layer.bias is not None, mu, sigma)
        new.load_state_dict(layer.state_dict(), strict=False)
        return new

    def forward(self, x: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        s = self.member_s if s is None else s
        if s is None or s.dim() == 1:
            return super().forward(x, s)
        h = _scale_members(F.linear(x, self.V), s, self.fan_out, channel_dim=-1)
        return F.linear(h, self.U, self.bias)


class StochasticLowRankConv(_Stochastic, LowRankConv):
    """A factorised convolution whose members scale the ``rank`` channels by ``s + N(mu, sigma)``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel_size: tuple[int, ...],
                 rank: int, stride: tuple[int, ...], padding: tuple[int, ...],
                 dilation: tuple[int, ...], bias: bool = True, mu: float = 0.0, sigma: float = 0.0) -> None:
        super().__init__(dims, in_channels, out_channels, kernel_size, rank, stride, padding, dilation, bias)
        self._init_noise(mu, sigma)

    @classmethod
    def from_lowrank(cls, layer: LowRankConv, mu: float, sigma: float) -> StochasticLowRankConv:
        new = cls(layer.dims, layer.in_channels, layer.out_channels, layer.kernel_size, layer.rank,
                  layer.stride, layer.padding, layer.dilation, layer.bias is not None, mu, sigma)
        new.load_state_dict(layer.state_dict(), strict=False)
        return new

    def forward(self, x: torch.Tensor, s: torch.Tensor | None = None,
                affine: tuple[torch.Tensor, torch.Tensor] | None = None, pool: int | None = None,
                relu: bool = False) -> torch.Tensor:
        s = self.member_s if s is None else s
        if s is None or s.dim() == 1:
            return super().forward(x, s, affine, pool, relu)
        # member k mixes with U diag(s_k): one (n, out, rank) stack, one batched matmul
        return self._mix(self._project(x), self.U.unsqueeze(0) * s.unsqueeze(1), affine, pool, relu,
                         shared=self.fan_out)


StochasticLayer = StochasticLowRankLinear | StochasticLowRankConv


class SLREnsemble(StochasticEnsemble):
    """Stochastic low-rank ensemble: members differ by noise on every layer's singular values.

    Build one with :func:`make_slr` (from a trained model) or :func:`restructure_slr` (from a
    card, before loading weights).

    Example
    -------
    >>> slr = make_slr(trained_fp32, n_members=8, sigma_rel=0.1, seed=0)
    >>> logits = slr(x)                 # (B, n_labels): log of the 8 members' mean softmax
    >>> slr.member_logits(x, 16).shape  # (16, B, n_labels), members stacked in one batch
    >>> noise = slr.draw_noise(8); slr.member_logits(x, draw=noise)   # a chosen draw
    """

    kind = "slr"

    def __init__(self, base: nn.Module, n_members: int, seed: int = 0) -> None:
        super().__init__(base, n_members, seed)
        layers = stochastic_layers(base)
        if not layers:
            raise ModelError("SLR: the model has no stochastic low-rank layer; build it with make_slr")
        for i, (_, layer) in enumerate(layers):
            layer.fan_out = i == 0   # module order is execution order in KwsModel

    def layers(self) -> list[tuple[str, StochasticLayer]]:
        """The stochastic low-rank layers as ``(name, module)``, in execution order."""
        return stochastic_layers(self.base)

    def noise_params(self) -> dict[str, dict]:
        """Layer name -> ``{"mu", "sigma"}`` (absolute, in singular-value units)."""
        return {name: layer.noise_params() for name, layer in self.layers()}

    def draw_noise(self, n: int | None = None) -> dict[str, torch.Tensor]:
        """One noise draw per member and layer: name -> Tensor (n, rank) of ``N(mu, sigma)``."""
        n = self.n_members if n is None else check_members(n, "members")
        out = {}
        for name, layer in self.layers():
            z = self.randn((n, layer.rank), layer.s)
            out[name] = layer.noise_mu + layer.noise_sigma * z
        return out

    def draw(self, n: int) -> dict[str, torch.Tensor]:
        return self.draw_noise(n)

    def draw_size(self, draw: dict[str, torch.Tensor]) -> int:
        counts = {v.shape[0] for v in draw.values()}
        if len(counts) != 1 or set(draw) != {name for name, _ in self.layers()}:
            raise ModelError("SLR: noise must give every stochastic layer the same number of members")
        return counts.pop()

    def members_pass(self, x: torch.Tensor, draw: dict[str, torch.Tensor]) -> torch.Tensor:
        """Clips ``x (B, S)`` through the members whose singular-value noise is ``draw`` -> (n, B, L).

        ``draw`` is a :meth:`draw_noise` result: layer name -> Tensor (n, rank).
        """
        n = self.draw_size(draw)
        layers = self.layers()
        try:
            for name, layer in layers:
                layer.member_s = layer.s + draw[name]    # gradients reach the noise-free s
            logits = self.base(x)
        finally:
            for _, layer in layers:
                layer.member_s = None
        return logits.reshape(n, x.shape[0], logits.shape[-1])


def stochastic_layers(model: nn.Module) -> list[tuple[str, StochasticLayer]]:
    """All stochastic low-rank layers of ``model`` as ``(name, module)``, in module order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (StochasticLowRankLinear, StochasticLowRankConv))]


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def make_stochastic(model: nn.Module, sigma_rel: float = DEFAULT_SIGMA_REL,
                    mu_rel: float = DEFAULT_MU_REL, noise: dict[str, dict] | None = None) -> dict[str, dict]:
    """Swap every low-rank layer of ``model`` for its stochastic form, in place.

    Parameters
    ----------
    model : nn.Module
        Holds :class:`~testbed.models.lowrank.LowRankLinear` / ``LowRankConv`` layers.
    sigma_rel, mu_rel : float
        Noise standard deviation and mean as fractions of each layer's mean singular value
        (then fixed per layer in absolute units for all of training and inference).
    noise : dict, optional
        Layer name -> ``{"mu", "sigma"}`` in absolute units (rebuilding a stored model).

    Returns
    -------
    dict
        Layer name -> ``{"mu", "sigma"}`` used, absolute units.
    """
    if sigma_rel < 0:
        raise ModelError(f"SLR: sigma_rel must be >= 0, got {sigma_rel}")
    layers = lowrank_layers(model)
    if not layers:
        raise ModelError("SLR: the model has no low-rank layer to make stochastic (factorize it first)")
    used = {}
    for name, layer in layers:
        if noise is not None:
            if name not in noise:
                raise ModelError(f"SLR: no stored noise parameters for layer {name!r}")
            mu, sigma = float(noise[name]["mu"]), float(noise[name]["sigma"])
        else:
            scale = float(layer.s.detach().abs().mean())
            mu, sigma = mu_rel * scale, sigma_rel * scale
        cls = StochasticLowRankLinear if isinstance(layer, LowRankLinear) else StochasticLowRankConv
        new = cls.from_lowrank(layer, mu, sigma)
        _set_submodule(model, name, new)
        used[name] = new.noise_params()
    return used


def make_slr(model: nn.Module, n_members: int = 8, *, sigma_rel: float = DEFAULT_SIGMA_REL,
             mu_rel: float = DEFAULT_MU_REL, seed: int = 0, fc_rank: int | None = None,
             conv_rank: int | None = None, rank_fraction: float | None = None,
             rank_cap: int | None = None) -> tuple[SLREnsemble, dict]:
    """Turn a trained model into an SLR ensemble (factorising it first if it is dense).

    Parameters
    ----------
    model : nn.Module
        A trained KwsModel, dense or already factorised; modified in place and wrapped.
    n_members : int
        Members per forward pass at inference.
    sigma_rel, mu_rel : float
        Singular-value noise, fractions of each layer's mean singular value.
    seed : int
        Seed of the ensemble's noise generator.
    fc_rank, conv_rank, rank_fraction, rank_cap
        Low-rank settings for a dense model (default: the paper's ranks, the
        ``SLR_RANK_FRACTION`` where they would not truncate, at most ``SLR_RANK_CAP``; see
        :func:`testbed.models.lowrank.factorize`).

    Returns
    -------
    (SLREnsemble, compression) where ``compression`` is the card entry
    (``kind: "slr"``, the factorisation's ranks, the noise per layer, members, seed).
    """
    n_members = check_members(n_members)
    fc_rank = PAPER_FC_RANK if fc_rank is None else fc_rank
    conv_rank = PAPER_CONV_RANK if conv_rank is None else conv_rank
    rank_fraction = SLR_RANK_FRACTION if rank_fraction is None else rank_fraction
    rank_cap = SLR_RANK_CAP if rank_cap is None else rank_cap
    if lowrank_layers(model):
        ranks = [{"layer": n, "rank": m.rank, "full_rank": m.full_rank} for n, m in lowrank_layers(model)]
    else:
        infos = factorize(model, fc_rank=fc_rank, conv_rank=conv_rank, rank_fraction=rank_fraction,
                          rank_cap=rank_cap)
        ranks = [i.as_dict() for i in infos]
    noise = make_stochastic(model, sigma_rel=sigma_rel, mu_rel=mu_rel)
    slr = SLREnsemble(model, n_members, seed)
    compression = {
        "kind": "slr", "fc_rank": fc_rank, "conv_rank": conv_rank, "rank_fraction": rank_fraction,
        "rank_cap": rank_cap,
        "layers": ranks, "n_members": n_members, "seed": int(seed),
        "noise": {"distribution": "gaussian, added to every layer's singular values, fresh per forward pass",
                  "mu_rel": mu_rel, "sigma_rel": sigma_rel, "units": "singular-value units; *_rel are "
                  "fractions of the layer's mean singular value at conversion", "layers": noise},
    }
    return slr, compression


def restructure_slr(model: nn.Module, compression: dict) -> SLREnsemble:
    """Rebuild an SLR ensemble's structure from its card entry (weights are loaded afterwards)."""
    try:
        factorize(model, ranks={layer["layer"]: int(layer["rank"]) for layer in compression["layers"]})
        make_stochastic(model, noise=compression["noise"]["layers"])
        return SLREnsemble(model, int(compression["n_members"]), int(compression.get("seed", 0)))
    except (KeyError, TypeError) as exc:
        raise ModelError(f"model card: compression entry of kind 'slr' lacks {exc}") from None
