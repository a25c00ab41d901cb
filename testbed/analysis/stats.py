"""Small-sample statistics: Wilson score intervals and McNemar's paired test."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: Two-sided 95% normal quantile, ``scipy.stats.norm.ppf(0.975)``.
Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``.

    Parameters
    ----------
    k : number of successes (0 <= k <= n).
    n : number of trials.
    z : normal quantile; the default gives a two-sided 95% interval.

    Returns
    -------
    (low, high) : bounds in [0, 1]; ``(nan, nan)`` when ``n == 0``.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # exact bounds at the edges (floating point leaves ~1e-17 otherwise)
    if k == 0:
        lo = 0.0
    if k == n:
        hi = 1.0
    return (lo, hi)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired binary outcomes (A and B judged on the same items).

    ``a_only`` counts items where only A erred, ``b_only`` where only B erred;
    ``p_value`` is the exact two-sided binomial test on those discordant pairs.
    """

    n_pairs: int
    both_wrong: int
    a_only: int
    b_only: int
    both_right: int
    error_a: float
    error_b: float
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def mcnemar(a_wrong, b_wrong) -> McNemarResult:
    """Exact McNemar test of two paired error indicators.

    Parameters
    ----------
    a_wrong, b_wrong : boolean array-likes of shape (n_pairs,): whether A (B) erred on item i.

    Returns
    -------
    McNemarResult with the 2x2 table, both error rates and the exact two-sided p-value
    (1.0 when there are no discordant pairs).
    """
    import numpy as np
    from scipy.stats import binomtest

    a = np.asarray(a_wrong, dtype=bool)
    b = np.asarray(b_wrong, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"mcnemar: need two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    n = int(a.size)
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    disc = a_only + b_only
    p = 1.0 if disc == 0 else float(binomtest(min(a_only, b_only), disc, 0.5).pvalue)
    return McNemarResult(
        n_pairs=n,
        both_wrong=int(np.sum(a & b)),
        a_only=a_only,
        b_only=b_only,
        both_right=int(np.sum(~a & ~b)),
        error_a=float(a.mean()) if n else math.nan,
        error_b=float(b.mean()) if n else math.nan,
        p_value=min(1.0, p),
    )
