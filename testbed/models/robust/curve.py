"""Error rate against ensemble size (paper Fig. 8): clean and under a white-box attack."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from testbed.errors import ModelError

#: columns of :func:`ensemble_curve`'s table (and its CSV)
CURVE_COLUMNS = ("model", "n_members", "n", "clean_error", "attack", "eps", "steps", "adaptive",
                 "eot_samples", "error_rate")


def ensemble_curve(model: nn.Module, x: np.ndarray, y: np.ndarray, *, members: Sequence[int] = (1, 2, 4, 8, 16),
                   attack: str = "pgd", eps: float = 0.005, steps: int = 20, adaptive: bool = True,
                   eot_samples: int = 8, seed: int = 0, batch_size: int = 64, name: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Clean error and error under attack of a stochastic ensemble for each ensemble size.

    For every ``n`` the ensemble answers with ``n`` members and the attack is crafted
    white-box against that same ``n``-member ensemble.

    Parameters
    ----------
    model : StochasticEnsemble
        Has a settable ``n_members`` (restored afterwards) and ``reseed``.
    x : float32 (n_clips, samples); y : int64 (n_clips,)
        The same clips for every ensemble size.
    members : ensemble sizes
    attack : attack kind (fgsm, pgd, eot-pgd, ...)
    eps : L-infinity bound, PCM scale
    steps : attack iterations (ignored by fgsm)
    adaptive : bool
        True: every gradient is an expectation over ``eot_samples`` draws of the ensemble's
        noise (EOT). False: one draw per gradient (the plain attack).
    seed : seeds the ensemble's noise and the attack for every size alike

    Returns
    -------
    DataFrame with :data:`CURVE_COLUMNS`, one row per ensemble size; rates are fractions.
    """
    # function-level: testbed.attacks is a sibling package that never imports testbed.models
    # (no cycle); importing it here keeps it out of every zoo load
    from testbed.attacks import craft, predictions

    if not hasattr(model, "n_members") or not getattr(model, "stochastic", False):
        raise ModelError(f"ensemble curve: {name or 'the model'} is not a stochastic ensemble "
                         "(give an slr or rse model)")
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    params = {"seed": seed, "eot_samples": int(eot_samples) if adaptive else 1}
    if attack != "fgsm":
        params["steps"] = int(steps)
    before = model.n_members
    rows = []
    total = len(members) * len(xt)
    try:
        for i, n in enumerate(members):
            model.n_members = n
            model.reseed(seed)
            clean = predictions(model, xt, batch_size)

            done = [i * len(xt)]

            def count(k: int) -> None:
                done[0] += k
                if progress:
                    progress(done[0], total)

            delta, _ = craft(model, attack, eps, xt, yt, batch_size=batch_size, params=params, progress=count)
            pred = predictions(model, (xt + delta).clamp(-1.0, 1.0), batch_size)
            rows.append({"model": name or getattr(model, "name", model.arch), "n_members": int(n),
                         "n": int(len(yt)), "clean_error": float((clean != yt.numpy()).mean()),
                         "attack": attack, "eps": float(eps), "steps": int(params.get("steps", 1)),
                         "adaptive": bool(adaptive), "eot_samples": params["eot_samples"],
                         "error_rate": float((pred != yt.numpy()).mean())})
    finally:
        model.n_members = before
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def plot_ensemble_curve(table: pd.DataFrame, path: Path | str, title: str = "") -> Path:
    """Error rate (%) against ensemble size, clean and attacked, one line pair per model/setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (model, adaptive), g in table.groupby(["model", "adaptive"], sort=False):
        g = g.sort_values("n_members")
        tag = "adaptive EOT" if adaptive else "non-adaptive"
        atk = f"{g['attack'].iloc[0]} eps {g['eps'].iloc[0]:g}"
        ax.plot(g["n_members"], 100 * g["error_rate"], "o-", label=f"{model}: {atk} ({tag})")
        ax.plot(g["n_members"], 100 * g["clean_error"], "s--", label=f"{model}: clean")
    ax.set_xscale("log", base=2)
    ticks = sorted(table["n_members"].unique())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("ensemble members n")
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "error rate vs ensemble size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
