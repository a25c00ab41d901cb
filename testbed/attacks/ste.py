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
