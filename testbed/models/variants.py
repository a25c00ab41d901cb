"""Model variants: the float model and its compressed forms, made and rebuilt from a card.

The trained robust variants (``slr4``, ``rse``, ...) live in :mod:`testbed.models.robust`, which
this module imports; robust never imports this module or :mod:`testbed.models.build`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from testbed.errors import ModelError
from testbed.models.lowrank import (
    DEFAULT_RANK_FRACTION,
    PAPER_CONV_RANK,
    PAPER_FC_RANK,
    factorize,
)
from testbed.models.quantize import quantize_model
from testbed.models.robust import ROBUST_VARIANTS, restructure_robust

VARIANTS: tuple[str, ...] = ("fp32", "lowrank", "int16", "int8", "int4")

_RANK_NOTE = ("conv kernels reshaped to out x (in*kh*kw); the paper's rank is used where it truncates, "
              "else ceil(rank_fraction * full rank)")


def variant_bits(variant: str) -> int | None:
    """16 / 8 / 4 for the fixed-point variants, None otherwise."""
    return int(variant[3:]) if variant.startswith("int") else None


def check_variant(variant: str) -> str:
    """Lower-case ``variant`` or raise ModelError listing the known variants."""
    v = variant.lower()
    if v not in VARIANTS and v not in ROBUST_VARIANTS:
        raise ModelError(f"unknown variant {variant!r} (have: {', '.join(VARIANTS + tuple(ROBUST_VARIANTS))})")
    return v


def compress(model: nn.Module, variant: str, *, calib_x: np.ndarray | None = None,
             rank_fraction: float = DEFAULT_RANK_FRACTION, fc_rank: int = PAPER_FC_RANK,
             conv_rank: int = PAPER_CONV_RANK) -> dict:
    """Turn a trained float model into ``variant``, in place; return the card's ``compression`` entry.

    Parameters
    ----------
    model : nn.Module
        Trained fp32 model (a copy if the float one is still needed).
    variant : str
        One of :data:`VARIANTS`.
    calib_x : ndarray (n, samples), optional
        Sample inputs for the fixed-point activation ranges (required for int variants).
    rank_fraction, fc_rank, conv_rank
        Low-rank settings (see :func:`testbed.models.lowrank.factorize`).
    """
    variant = check_variant(variant)
    if variant not in VARIANTS:
        raise ModelError(f"variant {variant} is trained, not compressed: build it with build_zoo / train_robust")
    if variant == "fp32":
        return {"kind": "none"}
    if variant == "lowrank":
        infos = factorize(model, fc_rank=fc_rank, conv_rank=conv_rank, rank_fraction=rank_fraction)
        return {"kind": "lowrank", "fc_rank": fc_rank, "conv_rank": conv_rank,
                "rank_fraction": rank_fraction, "rule": _RANK_NOTE,
                "fraction_used_for": [i.layer for i in infos if i.rule == "fraction"],
                "layers": [i.as_dict() for i in infos]}
    bits = variant_bits(variant)
    if calib_x is None:
        raise ModelError(f"variant {variant}: needs sample inputs to choose the fixed-point scales")
    infos = quantize_model(model, bits, torch.as_tensor(np.asarray(calib_x, dtype=np.float32)))
    return {"kind": "fixed-point", "bits": bits, "scheme": "dynamic fixed point, per-layer fractional "
            "length for weights and input activations; batch-norm folded into convs; int32 bias; "
            "raw PCM read by a first layer kept at 16 bits",
            "n_calibration_clips": int(len(calib_x)), "layers": [i.as_dict() for i in infos]}


def restructure(model: nn.Module, compression: dict) -> nn.Module:
    """Give a freshly built model the layer structure a card's ``compression`` entry describes.

    The values are placeholders until the stored weights are loaded.
    """
    kind = compression.get("kind", "none")
    if kind == "none":
        return model
    if kind == "lowrank":
        factorize(model, ranks={layer["layer"]: layer["rank"] for layer in compression["layers"]})
        return model
    if kind == "fixed-point":
        quantize_model(model, int(compression["bits"]), None)
        return model
    if kind in ("slr", "rse", "smooth"):      # stochastic ensembles wrap the model: use the return value
        return restructure_robust(model, compression)
    raise ModelError(f"model card: unknown compression kind {kind!r}")
