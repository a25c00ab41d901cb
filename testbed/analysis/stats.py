"""Paired tests on session rows; the pure statistics live in :mod:`testbed.stats`.

``wilson_interval``, ``mcnemar_exact``, ``holm`` and ``cluster_bootstrap_ci`` are re-exported
here so analysis code keeps one import site.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from testbed.stats import Z95, cluster_bootstrap_ci, holm, mcnemar_exact, rate_interval, wilson_interval

__all__ = [
    "Z95", "McNemarResult", "cluster_bootstrap_ci", "holm", "mcnemar", "mcnemar_exact",
    "rate_interval", "wilson_interval",
]


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

    a = np.asarray(a_wrong, dtype=bool)
    b = np.asarray(b_wrong, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"mcnemar: need two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    n = int(a.size)
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    return McNemarResult(
        n_pairs=n,
        both_wrong=int(np.sum(a & b)),
        a_only=a_only,
        b_only=b_only,
        both_right=int(np.sum(~a & ~b)),
        error_a=float(a.mean()) if n else math.nan,
        error_b=float(b.mean()) if n else math.nan,
        p_value=mcnemar_exact(a_only, b_only),
    )
