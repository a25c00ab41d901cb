"""Monte-Carlo certification of a smoothed classifier (Cohen, Rosenfeld & Kolter 2019, CERTIFY).

For a clip ``x``: ``n0`` noisy votes of the base classifier pick the candidate class ``cA``;
``n`` fresh votes count how often ``cA`` wins; the one-sided Clopper-Pearson lower bound
``pA_lower`` (confidence ``1 - alpha``) of that frequency gives the certified L2 radius
``R = sigma * Phi^-1(pA_lower)``, or an abstention when ``pA_lower <= 1/2``. With
probability at least ``1 - alpha`` over the noise, the smoothed classifier answers ``cA``
on every ``x + d`` with ``||d||_2 < R``.

An L-inf ball of radius ``eps`` lies inside the L2 ball of radius ``eps * sqrt(N)``, so a
certified L2 radius ``R`` on a clip of ``N`` samples certifies L-inf ``eps = R / sqrt(N)``
(a 1-s clip at 16 kHz: ``R / 126.5``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from testbed.errors import ModelError
from testbed.models.robust.smooth import SmoothedClassifier, l2_to_linf

#: Cohen et al.'s defaults: 100 selection votes, 100 000 estimation votes, alpha 0.001; we
#: default to 1 000 estimation votes (a CPU budget), which caps the radius at about 2.4 sigma
DEFAULT_N0, DEFAULT_N, DEFAULT_ALPHA = 100, 1000, 0.001
ABSTAIN = -1


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound of a binomial proportion ``k / n``.

    Equal to ``statsmodels...proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``;
    0.0 when ``k == 0``.
    """
    from scipy.stats import beta

    if not 0 <= k <= n or n < 1:
        raise ModelError(f"certification: need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


@torch.no_grad()
def vote_counts(model: SmoothedClassifier, x: torch.Tensor, num: int, batch: int = 200) -> np.ndarray:
    """Votes of the base classifier on ``num`` noisy copies of one clip.

    Parameters
    ----------
    model : the smoothed classifier (its ``base``, ``sigma`` and noise generator are used).
    x : Tensor (samples,), PCM.
    num : noisy copies.
    batch : copies per forward pass.

    Returns
    -------
    int64 array (n_labels,): how many copies the base classifier put in each class.
    """
    counts = np.zeros(len(model.labels), dtype=np.int64)
    left = int(num)
    xb = x.reshape(1, -1)
    while left > 0:
        b = min(batch, left)
        pred = model.base(model.noisy(xb, b)).argmax(dim=-1).cpu().numpy()
        counts += np.bincount(pred, minlength=counts.size)
        left -= b
    return counts


def certify(model: SmoothedClassifier, x: torch.Tensor, *, n0: int = DEFAULT_N0, n: int = DEFAULT_N,
            alpha: float = DEFAULT_ALPHA, batch: int = 200) -> tuple[int, float, float]:
    """Cohen et al.'s CERTIFY for one clip.

    Parameters
    ----------
    model : SmoothedClassifier (in eval mode).
    x : Tensor (samples,), PCM.
    n0 : selection votes; n : estimation votes; alpha : failure probability.

    Returns
    -------
    (prediction, radius_l2, pA_lower): the class index, or :data:`ABSTAIN` (-1) with radius
    0.0 when ``pA_lower <= 0.5``.
    """
    if n0 < 1 or n < 1 or not 0 < alpha < 1:
        raise ModelError(f"certification: need n0, n >= 1 and 0 < alpha < 1, got n0={n0}, n={n}, alpha={alpha}")
    from scipy.stats import norm

    c_a = int(np.argmax(vote_counts(model, x, n0, batch)))
    k = int(vote_counts(model, x, n, batch)[c_a])
    p_lower = clopper_pearson_lower(k, n, alpha)
    if p_lower <= 0.5:
        return ABSTAIN, 0.0, p_lower
    return c_a, float(model.sigma) * float(norm.ppf(p_lower)), p_lower


def certify_clips(model: SmoothedClassifier, x: np.ndarray, y: np.ndarray, *, n0: int = DEFAULT_N0,
                  n: int = DEFAULT_N, alpha: float = DEFAULT_ALPHA, batch: int = 200,
                  progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """:func:`certify` every clip; one dict per clip (``label, prediction, radius_l2, pA_lower, correct``)."""
    was = model.training
    model.eval()
    rows = []
    try:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        for i in range(len(xt)):
            pred, radius, p_lower = certify(model, xt[i], n0=n0, n=n, alpha=alpha, batch=batch)
            rows.append({"label": int(y[i]), "prediction": pred, "radius_l2": radius, "pA_lower": p_lower,
                         "correct": bool(pred == int(y[i]))})
            if progress:
                progress(i + 1, len(xt))
    finally:
        model.train(was)
    return rows


def certified_accuracy(rows: Sequence[dict], radii_l2: Sequence[float], n_samples: int) -> list[dict]:
    """Certified accuracy at each L2 radius, with its L-inf equivalent and Wilson 95 % interval.

    A clip counts at radius ``r`` when it is certified correct with ``radius_l2 >= r`` (at
    ``r = 0``: every correct, non-abstained clip).

    Returns
    -------
    one dict per radius: ``radius_l2, linf_eps`` (``r / sqrt(n_samples)``), ``k, n,
    certified_accuracy, ci_low, ci_high``.
    """
    from testbed.stats import wilson_interval

    out = []
    for r in radii_l2:
        k = sum(1 for row in rows if row["correct"] and row["radius_l2"] >= r)
        lo, hi = wilson_interval(k, len(rows))
        out.append({"radius_l2": float(r), "linf_eps": float(l2_to_linf(r, n_samples)), "k": k, "n": len(rows),
                    "certified_accuracy": k / len(rows) if rows else float("nan"), "ci_low": lo, "ci_high": hi})
    return out
