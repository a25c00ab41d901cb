"""Small-sample statistics shared by attacks, models and analysis.

Wilson score intervals for rates, the exact McNemar test for paired outcomes, Holm's
step-down correction for several comparisons, and a cluster (trial-level) bootstrap for
rates whose rows are not independent (several mics and models judged on one trial).

This module is deliberately low in the layering: it imports numpy, scipy and pandas
only (never other ``testbed`` modules), so every subpackage may use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

#: Two-sided 95% normal quantile, ``scipy.stats.norm.ppf(0.975)``.
Z95 = 1.959963984540054
#: A paired difference whose (corrected) p-value is at or above this is "within noise".
NOISE_P = 0.05

__all__ = [
    "NOISE_P", "Z95", "cluster_bootstrap_ci", "cluster_bootstrap_rate", "holm", "mcnemar_exact", "rate_interval",
    "wilson_interval",
]


def _z_of(conf: float) -> float:
    """Two-sided normal quantile of confidence level ``conf`` (0 < conf < 1)."""
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got conf={conf}")
    if conf == 0.95:
        return Z95
    from scipy.stats import norm

    return float(norm.ppf(0.5 + conf / 2.0))


def wilson_interval(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) of a binomial proportion ``k / n``.

    Parameters
    ----------
    k : number of successes, ``0 <= k <= n``.
    n : number of trials.
    conf : two-sided confidence level, e.g. 0.95.

    Returns
    -------
    (low, high) : bounds of the proportion, in [0, 1]; ``(nan, nan)`` when ``n == 0``.
    Equal to ``statsmodels.stats.proportion.proportion_confint(k, n, 1 - conf, "wilson")``.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    z = _z_of(conf)
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


def rate_interval(k: int, n: int, conf: float = 0.95) -> dict[str, float | int]:
    """A rate with its Wilson interval, as a JSON-ready dict.

    Returns
    -------
    ``{"k": k, "n": n, "rate": k / n, "ci_low": ..., "ci_high": ..., "conf": conf}``;
    the rate and bounds are ``nan`` when ``n == 0``.
    """
    lo, hi = wilson_interval(k, n, conf)
    return {
        "k": int(k), "n": int(n), "rate": (k / n) if n else math.nan,
        "ci_low": lo, "ci_high": hi, "conf": conf,
    }


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts of a paired 2x2 table.

    Parameters
    ----------
    b : items where only the first of the pair erred (or succeeded).
    c : items where only the second erred (or succeeded).

    Returns
    -------
    p : ``min(1, 2 * P[X <= min(b, c)])`` for ``X ~ Binomial(b + c, 1/2)``; 1.0 when
    ``b + c == 0``. Equal to ``statsmodels.stats.contingency_tables.mcnemar(table,
    exact=True).pvalue``.
    """
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact: discordant counts must be >= 0, got b={b}, c={c}")
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (family-wise error control).

    Parameters
    ----------
    pvalues : raw p-values, shape (m,), each in [0, 1]; NaN entries are left NaN and
        do not count towards ``m``.

    Returns
    -------
    adjusted : shape (m,), in the input order; reject hypothesis i at level alpha when
    ``adjusted[i] <= alpha``. Equal to ``multipletests(p, method="holm")[1]``.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm: need a 1-D array of p-values, got shape {p.shape}")
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("holm: p-values must lie in [0, 1]")
    out = np.full_like(p, np.nan)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    scaled = (m - np.arange(m)) * q[order]
    adj = np.minimum(1.0, np.maximum.accumulate(scaled))
    back = np.empty(m)
    back[order] = adj
    out[ok] = back
    return out


def cluster_bootstrap_ci(
    df,
    cluster_col: str,
    stat_fn: Callable[[object], float],
    n_boot: int = 2000,
    seed: int = 0,
    conf: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic, resampling whole clusters.

    Rows of one cluster (e.g. every mic and model judged on one trial) share the trial's
    audio and are not independent; resampling clusters with replacement keeps that
    correlation, so the interval is wider than a per-row Wilson interval when rows of
    a cluster agree.

    Parameters
    ----------
    df : pandas DataFrame, one row per observation.
    cluster_col : column naming each row's cluster (e.g. ``"trial_id"``).
    stat_fn : maps a DataFrame (a resample with the same columns) to a float, e.g.
        ``lambda d: d["error"].mean()``.
    n_boot : number of bootstrap resamples.
    seed : seed of the ``numpy.random.Generator`` that draws the clusters.
    conf : two-sided confidence level.

    Returns
    -------
    (low, high) : percentile bounds; ``(nan, nan)`` for an empty frame.
    """
    if n_boot < 1:
        raise ValueError(f"cluster_bootstrap_ci: n_boot must be >= 1, got {n_boot}")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got conf={conf}")
    if cluster_col not in df.columns:
        raise ValueError(f"cluster_bootstrap_ci: no column {cluster_col!r} in the frame")
    if len(df) == 0:
        return (math.nan, math.nan)
    codes, _ = _factorize(df[cluster_col])
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_clusters = counts.size
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, n_clusters, size=n_clusters)
        lens = counts[pick]
        within = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        rows = order[np.repeat(starts[pick], lens) + within]
        stats[i] = float(stat_fn(df.iloc[rows]))
    alpha = 1.0 - conf
    if np.all(np.isnan(stats)):
        return (math.nan, math.nan)
    lo, hi = np.nanquantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(lo), float(hi))


def cluster_bootstrap_rate(
    k_per_cluster: Sequence[int] | np.ndarray,
    n_per_cluster: Sequence[int] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    conf: float = 0.95,
) -> tuple[float, float]:
    """Cluster bootstrap interval of a pooled rate (or row mean) ``sum(k) / sum(n)``, vectorised.

    The same resamples as :func:`cluster_bootstrap_ci` with ``stat_fn`` the mean of a
    column (same seed, same clusters drawn), computed from per-cluster sums in one pass.

    Parameters
    ----------
    k_per_cluster : per-cluster sum of the per-row value, shape (n_clusters,): events (e.g.
        wrong predictions) for a rate, any real values for a mean (e.g. a paired difference).
    n_per_cluster : rows per cluster, shape (n_clusters,), each >= 1.
    n_boot, seed, conf : as in :func:`cluster_bootstrap_ci`.

    Returns
    -------
    (low, high) : percentile bounds of the rate; ``(nan, nan)`` without clusters.
    """
    k = np.asarray(k_per_cluster, dtype=float)
    n = np.asarray(n_per_cluster, dtype=float)
    if k.shape != n.shape or k.ndim != 1:
        raise ValueError(f"cluster_bootstrap_rate: need two 1-D arrays of equal length, got {k.shape}, {n.shape}")
    if np.any(n < 1):
        raise ValueError("cluster_bootstrap_rate: every cluster needs n >= 1 rows")
    if n_boot < 1:
        raise ValueError(f"cluster_bootstrap_rate: n_boot must be >= 1, got {n_boot}")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got conf={conf}")
    m = k.size
    if m == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    rates = np.empty(n_boot)
    chunk = max(1, 2_000_000 // m)          # bound the (chunk, m) index array to ~16 MB
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        pick = rng.integers(0, m, size=(b, m))
        rates[start:start + b] = k[pick].sum(axis=1) / n[pick].sum(axis=1)
    alpha = 1.0 - conf
    lo, hi = np.quantile(rates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(lo), float(hi))


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes 0..k-1 of a column's values (NaN counts as its own cluster)."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques)
