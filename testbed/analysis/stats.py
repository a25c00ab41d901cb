"""Paired tests on session rows; the pure statistics live in :mod:`testbed.stats`.

``wilson_interval``, ``mcnemar_exact``, ``holm`` and ``cluster_bootstrap_ci`` are re-exported
here so analysis code keeps one import site.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from testbed.stats import (
    Z95, cluster_bootstrap_ci, cluster_bootstrap_rate, holm, mcnemar_exact, rate_interval, wilson_interval,
)

__all__ = [
    "Z95", "McNemarResult", "cluster_bootstrap_ci", "cluster_bootstrap_rate", "holm", "mcnemar", "mcnemar_exact",
    "BOOT_SEED", "N_BOOT", "TRIAL_KEYS", "rate_interval", "trial_codes", "trial_interval", "wilson_interval",
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


#: Columns naming one trial (one played clip) across the mics and models that judged it.
TRIAL_KEYS = ("session_id", "trial_id")

#: Bootstrap resamples and seed of every trial-level interval in the analysis.
N_BOOT = 2000
BOOT_SEED = 0


def trial_codes(df):
    """Integer trial (cluster) code of each row, from :data:`TRIAL_KEYS`; None without ``trial_id``."""
    import numpy as np
    import pandas as pd

    keys = [k for k in TRIAL_KEYS if k in df.columns]
    if "trial_id" not in keys:
        return None
    codes = pd.MultiIndex.from_frame(df[keys].astype(str)).factorize()[0] if len(keys) > 1 else \
        pd.factorize(df["trial_id"].astype(str))[0]
    return np.asarray(codes, dtype=np.int64)


def trial_interval(events, df, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict | None:
    """Trial-level (cluster) bootstrap 95 % interval of the rate of ``events`` over ``df``'s rows.

    Parameters
    ----------
    events : boolean array-like, shape (len(df),): the event per row (e.g. a wrong prediction).
    df : the rows, with ``trial_id`` (and ``session_id``) columns.

    Returns
    -------
    ``{"lo", "hi", "n_trials", "ci": "trial bootstrap"}`` when some trial holds several rows
    (several mics or models judged it), None when every row is its own trial or no
    ``trial_id`` exists (then a per-row Wilson interval is the right one).
    """
    import numpy as np

    codes = trial_codes(df)
    ev = np.asarray(events, dtype=bool)
    if codes is None or ev.size == 0:
        return None
    n_c = np.bincount(codes)
    if n_c.size == ev.size:
        return None
    k_c = np.bincount(codes, weights=ev.astype(float))
    lo, hi = cluster_bootstrap_rate(k_c, n_c, n_boot=n_boot, seed=seed)
    return {"lo": lo, "hi": hi, "n_trials": int(n_c.size), "ci": "trial bootstrap"}
