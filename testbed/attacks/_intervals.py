"""Wilson score intervals and exact McNemar p-values for the attack tables.

Private to :mod:`testbed.attacks` for now (the attacks layer may not import
``testbed.analysis``); the signatures match the low-layer ``testbed.stats`` helpers so
the two can be folded into one module.
"""

from __future__ import annotations

import math


def wilson_interval(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the binomial proportion ``k / n``.

    Parameters
    ----------
    k : successes, ``0 <= k <= n``
    n : trials
    conf : two-sided confidence level in (0, 1)

    Returns
    -------
    (low, high) in [0, 1]; ``(nan, nan)`` when ``n == 0``.
    """
    from scipy.stats import norm

    k, n = int(k), int(n)
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"wilson_interval: conf must be in (0, 1), got {conf}")
    if n == 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + conf / 2.0))
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pair counts.

    Parameters
    ----------
    b : pairs where only the first condition erred
    c : pairs where only the second condition erred

    Returns
    -------
    float in [0, 1]: the two-sided binomial test of ``min(b, c)`` in ``b + c`` trials at
    1/2 (statsmodels' ``mcnemar(exact=True)``); 1.0 when there are no discordant pairs.
    """
    from scipy.stats import binomtest

    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact: counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return min(1.0, float(binomtest(min(b, c), b + c, 0.5).pvalue))
