"""Randomised smoothing in the waveform domain (Cohen, Rosenfeld & Kolter 2019): the ``smooth`` variant.

The smoothed classifier is ``g(x) = argmax_c P[f(x + e) = c]``, ``e ~ N(0, sigma^2 I)`` on
the raw PCM samples, for a base classifier ``f`` (the architecture's fp32 model, optionally
fine-tuned with the same Gaussian noise on its inputs). :class:`SmoothedClassifier` is a
:class:`~testbed.models.robust.ensemble.StochasticEnsemble` whose members are noisy copies
of the input, so ``forward`` (mean softmax over ``n_members`` noise draws) is what
``models eval`` and the attacks see; certification by Monte-Carlo vote counting with a
Clopper-Pearson bound is in :mod:`testbed.models.robust.certify`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from testbed.errors import ModelError
from testbed.models.robust.ensemble import StochasticEnsemble, check_members, fan_out

#: noise std of the ``smooth`` variant, PCM full scale 1.0 (speech clips sit at -32..-14 dBFS
#: RMS, 0.025..0.2, so 0.02 is an SNR of about 2..20 dB)
DEFAULT_SIGMA = 0.02
#: noisy passes averaged by ``forward`` (the soft smoothed classifier) at inference
DEFAULT_MEMBERS = 16


class SmoothedClassifier(StochasticEnsemble):
    """A base classifier under Gaussian input noise, evaluated as an ensemble of noisy passes.

    Parameters
    ----------
    base : nn.Module
        A trained :class:`~testbed.models.archs.KwsModel` (the base classifier ``f``).
    sigma : float
        Noise standard deviation on the PCM samples (full scale 1.0); > 0.
    n_members : int
        Noise draws averaged per forward pass.
    seed : int
        Seed of the noise generator.
    """

    kind = "smooth"

    def __init__(self, base: nn.Module, sigma: float, n_members: int = DEFAULT_MEMBERS, seed: int = 0) -> None:
        super().__init__(base, n_members, seed)
        if not float(sigma) > 0:
            raise ModelError(f"randomised smoothing: sigma must be > 0, got {sigma!r}")
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def draw(self, n: int) -> int:
        return int(n)

    def draw_size(self, draw: Any) -> int:
        return int(draw)

    def noisy(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` noisy copies of clips ``x (B, S)``, member-major: ``(n * B, S)``."""
        xs = fan_out(x, n)
        return xs + self.sigma.to(xs.dtype) * self.randn(tuple(xs.shape), xs)

    def members_pass(self, x: torch.Tensor, draw: Any) -> torch.Tensor:
        n = int(draw)
        return self.base(self.noisy(x, n)).reshape(n, x.shape[0], -1)

    def extra_repr(self) -> str:
        return f"sigma={float(self.sigma):.4g}, n_members={self.n_members}, seed={self.seed}"


def make_smooth(model: nn.Module, sigma: float = DEFAULT_SIGMA, n_members: int = DEFAULT_MEMBERS,
                seed: int = 0) -> tuple[SmoothedClassifier, dict]:
    """Wrap a trained model as a smoothed classifier.

    Returns
    -------
    (SmoothedClassifier, compression) with ``compression`` the card entry (``kind: "smooth"``).
    """
    smooth = SmoothedClassifier(model, sigma, n_members, seed)
    compression = {"kind": "smooth", "sigma": float(sigma), "n_members": check_members(n_members),
                   "seed": int(seed),
                   "noise": "gaussian N(0, sigma^2) added to every PCM sample (full scale 1.0), Cohen et al. 2019",
                   "forward": "log of the mean softmax of n_members noisy passes; certification counts "
                              "hard votes (models eval --certify)"}
    return smooth, compression


def restructure_smooth(model: nn.Module, compression: dict) -> SmoothedClassifier:
    """Rebuild a smoothed classifier from its card entry (weights are loaded afterwards)."""
    try:
        return SmoothedClassifier(model, float(compression["sigma"]), int(compression["n_members"]),
                                  int(compression.get("seed", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model card: compression entry of kind 'smooth' lacks or mangles {exc}") from None


def gaussian_augment(sigma: float, then: Callable | None = None) -> Callable:
    """A training-batch augmentation: ``then`` (e.g. the zoo's waveform augmentation), then
    ``N(0, sigma^2)`` on every sample, drawn from the training loop's seeded generator."""

    def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if then is not None:
            x = then(x, rng)
        noise = rng.standard_normal(tuple(x.shape)).astype(np.float32)
        return x + float(sigma) * torch.from_numpy(noise).to(x.device, x.dtype)

    return augment


def train_smooth(base: nn.Module, dataset: Any, *, sigma: float, n_members: int, steps: int, seed: int,
                 fit: Callable[..., dict], loss_fn, augment: Callable | None = None
                 ) -> tuple[SmoothedClassifier, dict, dict]:
    """The ``smooth`` variant: a copy of ``base`` fine-tuned on noisy inputs, then wrapped.

    Parameters
    ----------
    base : the trained fp32 model (left untouched).
    sigma : noise std, PCM scale; the same noise trains the base and smooths it.
    steps : noise-augmented fine-tuning steps (0: smooth the fp32 model as it is).
    fit : ``fit(model, dataset, steps, seed=..., loss_fn=..., augment=...) -> training facts``
        (the robust builder's fine-tuning loop).
    loss_fn : the loss ``fit`` applies (cross entropy on the noisy batch; None: ``fit``'s default).
    augment : the zoo's own waveform augmentation, applied before the noise.

    Returns
    -------
    (model, compression, robust) as :func:`~testbed.models.robust.build.train_robust` returns.
    """
    model = copy.deepcopy(base)
    robust: dict = {"kind": "smooth", "sigma": float(sigma)}
    if steps > 0:
        noise = gaussian_augment(sigma, then=augment)
        robust["training"] = fit(model, dataset, steps, seed=seed + 2, loss_fn=loss_fn, augment=noise)
        robust["loss"] = "cross entropy on x + N(0, sigma^2) (Gaussian data augmentation, Cohen et al.)"
    else:
        robust["training"] = {"steps": 0, "note": "the fp32 model smoothed as it is (no noise fine-tuning)"}
    model.eval()
    smooth, compression = make_smooth(model, sigma, n_members, seed)
    return smooth.eval(), compression, robust


def l2_to_linf(radius_l2: float | np.ndarray, n_samples: int) -> float | np.ndarray:
    """The L-inf bound a certified L2 radius covers on a clip of ``n_samples`` samples.

    An L-inf ball of radius ``eps`` lies inside the L2 ball of radius ``eps * sqrt(N)`` (its
    corners are that far), so a certified L2 radius ``R`` certifies every L-inf
    perturbation with ``eps <= R / sqrt(N)``; for a 1-s clip at 16 kHz, ``R / 126.5``.
    """
    return radius_l2 / np.sqrt(float(n_samples))


def linf_to_l2(eps: float | np.ndarray, n_samples: int) -> float | np.ndarray:
    """The L2 radius that must be certified to cover the L-inf ball of radius ``eps``: ``eps * sqrt(N)``."""
    return eps * np.sqrt(float(n_samples))
