"""Error rate against ensemble size (paper Fig. 8): clean and under a white-box attack."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from testbed.errors import ModelError

#: columns of :func:`ensemble_curve`'s table (and its CSV); ``*_ci_low/high`` are Wilson 95 %
#: bounds of the rate before them, ``mcnemar_p`` the exact McNemar p-value of the attacked
#: errors against the first ensemble size's on the same clips (NaN on the first row)
CURVE_COLUMNS = ("model", "n_members", "n", "clean_error", "clean_error_ci_low", "clean_error_ci_high",
                 "attack", "eps", "steps", "adaptive", "eot_samples", "error_rate", "error_ci_low",
                 "error_ci_high", "mcnemar_p")


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
    DataFrame with :data:`CURVE_COLUMNS`, one row per ensemble size; rates are fractions,
    each with its Wilson 95 % interval over the ``n`` clips.
    """
    # function-level: testbed.attacks is a sibling package that never imports testbed.models
    # (no cycle); importing it here keeps it out of every zoo load
    from testbed.attacks import craft, predictions
    from testbed.stats import mcnemar_exact, wilson_interval

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
    first_wrong = None
    y_np = yt.numpy()
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
            clean_wrong, wrong = clean != y_np, pred != y_np
            if first_wrong is None:
                first_wrong, p = wrong, float("nan")
            else:
                p = mcnemar_exact(int(np.sum(first_wrong & ~wrong)), int(np.sum(~first_wrong & wrong)))
            c_lo, c_hi = wilson_interval(int(clean_wrong.sum()), len(y_np))
            e_lo, e_hi = wilson_interval(int(wrong.sum()), len(y_np))
            rows.append({"model": name or getattr(model, "name", model.arch), "n_members": int(n),
                         "n": int(len(yt)), "clean_error": float(clean_wrong.mean()),
                         "clean_error_ci_low": c_lo, "clean_error_ci_high": c_hi,
                         "attack": attack, "eps": float(eps), "steps": int(params.get("steps", 1)),
                         "adaptive": bool(adaptive), "eot_samples": params["eot_samples"],
                         "error_rate": float(wrong.mean()), "error_ci_low": e_lo, "error_ci_high": e_hi,
                         "mcnemar_p": p})
    finally:
        model.n_members = before
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def plot_ensemble_curve(table: pd.DataFrame, path: Path | str, title: str = "") -> Path:
    """Error rate (%) against ensemble size, clean and attacked, with Wilson 95 % error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (model, adaptive), g in table.groupby(["model", "adaptive"], sort=False):
        g = g.sort_values("n_members")
        tag = "adaptive EOT" if adaptive else "non-adaptive"
        atk = f"{g['attack'].iloc[0]} eps {g['eps'].iloc[0]:g}"
        for rate, style, label in (("error", "o-", f"{model}: {atk} ({tag})"), ("clean_error", "s--",
                                                                                f"{model}: clean")):
            col = "error_rate" if rate == "error" else rate
            y = 100 * g[col].to_numpy(dtype=float)
            if f"{rate}_ci_low" in g:
                err = np.abs(np.vstack([y - 100 * g[f"{rate}_ci_low"].to_numpy(dtype=float),
                                        100 * g[f"{rate}_ci_high"].to_numpy(dtype=float) - y]))
                ax.errorbar(g["n_members"], y, yerr=err, fmt=style, capsize=3, label=label)
            else:
                ax.plot(g["n_members"], y, style, label=label)
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
