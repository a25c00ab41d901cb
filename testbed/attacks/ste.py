"""BPDA: straight-through gradients through a model's quantisers while an attack runs.

Quantised models round in their forward pass, whose true gradient is zero almost
everywhere; an attack that follows it would credit the quantiser with robustness it
does not have (gradient masking). The models package owns the switch (every quantised
layer has a boolean ``ste`` attribute, see ``testbed.models.set_ste``); this module turns
it on around an attack and restores each layer's previous setting afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Attribute of a quantised layer that selects straight-through rounding.
STE_ATTRIBUTE = "ste"


@contextmanager
def straight_through(model: torch.nn.Module, enabled: bool = True) -> Iterator[int]:
    """Make every quantiser in ``model`` pass gradients straight through, then restore.

    Parameters
    ----------
    model : torch.nn.Module
    enabled : bool
        False: leave the quantisers as they are (attack the true, masked gradient).

    Yields
    ------
    int : the number of quantised layers switched.
    """
    saved = [(m, getattr(m, STE_ATTRIBUTE)) for m in model.modules()
             if isinstance(getattr(m, STE_ATTRIBUTE, None), bool)] if enabled else []
    try:
        for m, _ in saved:
            setattr(m, STE_ATTRIBUTE, True)
        yield len(saved)
    finally:
        for m, old in saved:
            setattr(m, STE_ATTRIBUTE, old)


#: how an attack differentiates through a quantised model (see :func:`gradient_mode`)
GRADIENTS: tuple[str, ...] = ("ste", "bpda", "exact")


def _is_quant_layer(m: torch.nn.Module) -> bool:
    return (isinstance(getattr(m, STE_ATTRIBUTE, None), bool)
            and all(hasattr(m, a) for a in ("w_int", "b_int", "fl_w", "fl_a")))


def _fp32_surrogate(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The float layer with the quantised layer's own (dequantised) weights and bias, input unclipped."""
    import torch.nn.functional as F

    w = m.w_int.float() * 2.0 ** -int(m.fl_w)
    b = m.b_int.float() * 2.0 ** -(int(m.fl_w) + int(m.fl_a))
    if not hasattr(m, "dims"):
        return F.linear(x, w, b)
    conv = F.conv1d if m.dims == 1 else F.conv2d
    return conv(x, w, b, m.stride, m.padding, m.dilation, m.groups)


@contextmanager
def bpda(model: torch.nn.Module) -> Iterator[int]:
    """Full BPDA through every quantised layer of ``model``: quantised forward, fp32 backward.

    Each quantised layer's output keeps its exact fixed-point value, while its gradient is
    that of the float layer with the same (dequantised) weights on the unquantised,
    unclipped input (Athalye et al.'s backward pass differentiable approximation). Unlike
    the straight-through estimator, which still zeroes the gradient where an activation
    saturates the fixed-point range, BPDA passes it. The layers' ``ste`` switches are set
    to exact rounding while it is on and restored afterwards.

    Yields
    ------
    int : the number of quantised layers hooked.
    """
    layers = [m for m in model.modules() if _is_quant_layer(m)]
    saved = [(m, getattr(m, STE_ATTRIBUTE)) for m in layers]

    def hook(m, args, out):
        sur = _fp32_surrogate(m, args[0])
        return sur + (out - sur).detach()

    handles = []
    try:
        for m in layers:
            setattr(m, STE_ATTRIBUTE, False)
            handles.append(m.register_forward_hook(hook))
        yield len(layers)
    finally:
        for h in handles:
            h.remove()
        for m, old in saved:
            setattr(m, STE_ATTRIBUTE, old)


@contextmanager
def gradient_mode(model: torch.nn.Module, mode: str) -> Iterator[int]:
    """Differentiate through ``model``'s quantisers as ``mode`` says, then restore.

    ``"ste"``: straight-through rounding (:func:`straight_through`); ``"bpda"``: full BPDA
    (:func:`bpda`); ``"exact"``: the true, masked gradient.
    """
    if mode == "bpda":
        with bpda(model) as n:
            yield n
    else:
        with straight_through(model, mode == "ste") as n:
            yield n
