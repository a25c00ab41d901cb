"""Random self-ensemble (RSE, Liu et al. 2018), one of the paper's baselines (section 4.3.3).

Gaussian noise layers sit before every convolution (and every fully connected layer): a
larger ``sigma_init`` before the first layer, ``sigma_inner`` before the others. The
network is trained with the noise on (one draw per clip) and predicts with the averaged
softmax of ``n`` noisy passes, run as one batch of ``n x batch`` rows. The noise levels
are fractions of the standard deviation of each layer's input measured on sample clips
when the ensemble is made, then fixed (absolute values in the card and the weights).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from testbed.errors import ModelError
from testbed.models.robust.ensemble import StochasticEnsemble, check_members, fan_out

DEFAULT_SIGMA_INIT_REL = 0.2
DEFAULT_SIGMA_INNER_REL = 0.1


class NoiseLayer(nn.Module):
    """Adds ``N(0, sigma^2)`` to its input; the first one of a model also fans out to the members.

    ``sigma`` is a buffer (stored with the weights). Noise comes from the owning
    :class:`RSEEnsemble`'s generator, which sets ``members`` and ``draw`` around a forward.
    """

    def __init__(self, sigma: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.members = 1
        self.fan_out = False
        self.draw = None   # callable(shape, like) -> standard normal tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fan_out and self.members > 1:
            x = fan_out(x, self.members)
        if self.draw is None:
            return x
        return x + self.sigma * self.draw(tuple(x.shape), x)

    def extra_repr(self) -> str:
        return f"sigma={float(self.sigma):.4g}"


def _targets(model: nn.Module) -> list[tuple[str, nn.Module]]:
    kinds = (nn.Conv1d, nn.Conv2d, nn.Linear)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds) and n.startswith(("features", "classifier"))]


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def noise_layers(model: nn.Module) -> list[tuple[str, NoiseLayer]]:
    """The RSE noise layers of ``model`` as ``(name, module)``, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NoiseLayer)]


def insert_noise_layers(model: nn.Module, sigmas: dict[str, float]) -> None:
    """Put a :class:`NoiseLayer` before every conv / linear layer named in ``sigmas``, in place.

    The layer ``name`` becomes ``nn.Sequential(NoiseLayer, layer)`` (so its weights are then
    under ``name.1``).
    """
    for name, layer in _targets(model):
        if name not in sigmas:
            raise ModelError(f"RSE: no noise level for layer {name!r}")
        _set_submodule(model, name, nn.Sequential(NoiseLayer(sigmas[name]), layer))


class RSEEnsemble(StochasticEnsemble):
    """Random self-ensemble: noise before every weight layer, ``n`` passes averaged.

    Example
    -------
    >>> rse, comp = make_rse(trained_fp32, calib_x, n_members=8)
    >>> rse(x).softmax(-1)     # mean of 8 noisy passes
    """

    kind = "rse"

    def __init__(self, base: nn.Module, n_members: int, seed: int = 0) -> None:
        super().__init__(base, n_members, seed)
        if not noise_layers(base):
            raise ModelError("RSE: the model has no noise layer; build it with make_rse")

    def noise_params(self) -> dict[str, float]:
        """Name of the layer each noise layer precedes -> sigma (absolute), as in the card."""
        return {name.rpartition(".")[0]: round(float(m.sigma), 8) for name, m in noise_layers(self.base)}

    def draw(self, n: int) -> int:
        return n         # the noise is drawn inside the pass, row by row

    def draw_size(self, draw: int) -> int:
        return check_members(draw, "members")

    def members_pass(self, x: torch.Tensor, draw: int) -> torch.Tensor:
        """``draw`` noisy passes of clips ``x (B, S)`` in one batch: Tensor (draw, B, n_labels)."""
        n = check_members(draw, "members")
        layers = noise_layers(self.base)
        try:
            for i, (_, layer) in enumerate(layers):
                layer.members, layer.fan_out, layer.draw = n, i == 0, self.randn
            logits = self.base(x)
        finally:
            for _, layer in layers:
                layer.members, layer.fan_out, layer.draw = 1, False, None
        return logits.reshape(n, x.shape[0], logits.shape[-1])


@torch.no_grad()
def input_stds(model: nn.Module, calib_x: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Standard deviation of the input of every conv / linear layer of ``model`` on clips ``calib_x``."""
    stds: dict[str, float] = {}
    hooks = []
    for name, layer in _targets(model):
        def hook(_m, args, name=name):
            stds[name] = float(args[0].float().std())
        hooks.append(layer.register_forward_pre_hook(hook))
    was = model.training
    model.eval()
    try:
        model(torch.as_tensor(np.asarray(calib_x, dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return stds


def make_rse(model: nn.Module, calib_x: np.ndarray | torch.Tensor, n_members: int = 8, *,
             sigma_init_rel: float = DEFAULT_SIGMA_INIT_REL, sigma_inner_rel: float = DEFAULT_SIGMA_INNER_REL,
             seed: int = 0) -> tuple[RSEEnsemble, dict]:
    """Turn a trained model into a random self-ensemble (noise layers inserted in place).

    Parameters
    ----------
    model : nn.Module
        A trained dense KwsModel.
    calib_x : array (n, samples)
        Sample clips to measure each layer's input scale.
    n_members : int
        Noisy passes averaged at inference.
    sigma_init_rel, sigma_inner_rel : float
        Noise std before the first layer / the others, as fractions of that input's std.
    seed : int
        Seed of the noise generator.

    Returns
    -------
    (RSEEnsemble, compression) with ``compression`` the card entry (``kind: "rse"``).
    """
    if sigma_init_rel < 0 or sigma_inner_rel < 0:
        raise ModelError("RSE: noise levels must be >= 0")
    stds = input_stds(model, calib_x)
    names = [n for n, _ in _targets(model)]
    sigmas = {n: (sigma_init_rel if i == 0 else sigma_inner_rel) * stds[n] for i, n in enumerate(names)}
    insert_noise_layers(model, sigmas)
    rse = RSEEnsemble(model, n_members, seed)
    compression = {"kind": "rse", "n_members": check_members(n_members), "seed": int(seed),
                   "noise": {"distribution": "gaussian, added to the input of every conv / linear layer",
                             "sigma_init_rel": sigma_init_rel, "sigma_inner_rel": sigma_inner_rel,
                             "units": "absolute (input units of the layer); *_rel are fractions of the input "
                                      "std measured at conversion",
                             "layers": rse.noise_params()}}
    return rse, compression


def restructure_rse(model: nn.Module, compression: dict) -> RSEEnsemble:
    """Rebuild an RSE ensemble's structure from its card entry (weights are loaded afterwards)."""
    try:
        insert_noise_layers(model, {k: float(v) for k, v in compression["noise"]["layers"].items()})
        return RSEEnsemble(model, int(compression["n_members"]), int(compression.get("seed", 0)))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"model card: compression entry of kind 'rse' lacks {exc}") from None
