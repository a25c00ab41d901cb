"""One cell of a study: one attack crafted on one source model at one bound, evaluated on some
target models at some sync delays, on fixed clips. A cell's result keeps every clip's outcome,
so two models attacked on the same clips can be compared with a paired test later.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from testbed.attacks.base import fit_length, label_index
from testbed.attacks.evaluate import craft, predictions
from testbed.attacks.timing import ms_to_samples, shift_perturbation

#: bump when a cell's computation changes in a way its fields do not show (cached cells are redone)
STUDY_FORMAT = 1


@dataclass(frozen=True)
class Cell:
    """What one cell computes.

    Attributes
    ----------
    figure : the paper figure the cell feeds (``fig4`` ... ``fig9``, ``defence``).
    source : the zoo model the perturbation is crafted on (white-box) or queries (black-box).
    targets : zoo models the perturbation is evaluated on (the source itself for white-box).
    attack : a registered attack kind, or ``none`` (clean outcomes only).
    eps : L-inf bound, PCM scale.
    delays_ms : sync delays of the perturbation against the command, ms.
    target_label : a label to aim for (targeted), or None.
    params : the attack's hyper-parameters, as sorted ``(name, value)`` pairs.
    n_clips : clips asked for (fewer when the test split is smaller).
    clip_seed : seed of the clips' choice.
    """

    figure: str
    source: str
    targets: tuple[str, ...]
    attack: str
    eps: float
    delays_ms: tuple[float, ...] = (0.0,)
    target_label: str | None = None
    params: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    n_clips: int = 200
    clip_seed: int = 0

    @property
    def arch(self) -> str:
        """The source's architecture (the name's prefix: ``lm-int8`` -> ``lm``)."""
        return self.source.split("-", 1)[0]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["targets"], d["delays_ms"] = list(self.targets), list(self.delays_ms)
        d["params"] = dict(self.params)
        return d

    def key(self, weights: Mapping[str, str]) -> str:
        """Content key: the cell, the weights hash of every model it touches and the format."""
        payload = {"cell": self.as_dict(), "format": STUDY_FORMAT,
                   "weights": {m: weights.get(m) for m in sorted({self.source, *self.targets})}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def compute_cell(cell: Cell, models: Mapping[str, torch.nn.Module], x: np.ndarray, y: np.ndarray,
                 sample_rate: int) -> dict:
    """Craft ``cell.attack`` on the source and record each target's outcome on every clip.

    Parameters
    ----------
    models : name -> model, holding the source and every target.
    x : float32 (n, n_samples) PCM clips; y : int64 (n,) label indices.

    Returns
    -------
    ``{"cell", "n", "clean_wrong": {target: [0/1 per clip]}, "wrong": {"target@delay": [...]},
    "hit": {...} (targeted: the model said the target label), "snr_db", "queries", "seconds"}``.
    """
    t0 = time.perf_counter()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    yn = yt.numpy()
    out: dict[str, Any] = {"cell": cell.as_dict(), "n": int(len(yn)), "clean_wrong": {}, "wrong": {}, "hit": {},
                           "snr_db": None, "queries": 0.0}
    if cell.attack == "certify":
        return _certify(cell, models[cell.source], x, y, out, t0)
    for t in cell.targets:
        out["clean_wrong"][t] = (predictions(models[t], xt) != yn).astype(int).tolist()
    if cell.attack == "none":
        out["seconds"] = time.perf_counter() - t0
        return out
    src = models[cell.source]
    tgt_idx = None if cell.target_label is None else label_index(src, cell.target_label)
    target = None if tgt_idx is None else torch.full_like(yt, tgt_idx)
    delta, queries = craft(src, cell.attack, cell.eps, xt, yt, target=target, params=dict(cell.params))
    delta = fit_length(delta, xt.shape[1])
    snrs = []
    for d_ms in cell.delays_ms:
        shifted = shift_perturbation(delta, ms_to_samples(d_ms, sample_rate), n_out=xt.shape[1])
        x_adv = (xt + shifted).clamp(-1.0, 1.0)
        p = (x_adv - xt).double()
        with np.errstate(divide="ignore"):
            snr = 10 * np.log10((xt.double() ** 2).sum(-1).numpy() / (p ** 2).sum(-1).numpy())
        snrs.extend(snr[np.isfinite(snr)].tolist())
        for t in cell.targets:
            pred = predictions(models[t], x_adv)
            out["wrong"][f"{t}@{d_ms:g}"] = (pred != yn).astype(int).tolist()
            if tgt_idx is not None:
                out["hit"][f"{t}@{d_ms:g}"] = (pred == tgt_idx).astype(int).tolist()
    out["snr_db"] = float(np.mean(snrs)) if snrs else None
    out["queries"] = float(queries)
    out["seconds"] = time.perf_counter() - t0
    return out


def _certify(cell: Cell, model: torch.nn.Module, x: np.ndarray, y: np.ndarray, out: dict, t0: float) -> dict:
    """Randomised-smoothing certification of every clip (Cohen et al.): the certified L2 radius of
    each clip, 0 where it abstains or is wrong; ``cell.params`` may set ``n0``, ``n``, ``alpha``."""
    from testbed.models.robust.certify import certify_clips

    p = dict(cell.params)
    rows = certify_clips(model, x, y, **{k: p[k] for k in ("n0", "n", "alpha") if k in p})
    out["certified"] = [{"correct": bool(r["correct"]), "radius_l2": float(r["radius_l2"])} for r in rows]
    out["n_samples"] = int(np.asarray(x).shape[1])
    out["seconds"] = time.perf_counter() - t0
    return out
