"""Error rate, attack success rate and clean accuracy, with Wilson 95% intervals, by any dimension."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from testbed.analysis.dimensions import NA, resolve_dimensions, with_dimensions
from testbed.analysis.stats import wilson_interval
from testbed.errors import AnalysisError

#: Columns of every table :func:`rate_table` returns, after the grouping columns.
RATE_COLUMNS = (
    "n", "errors", "error_rate", "error_lo", "error_hi",
    "n_targeted", "hits", "success_rate", "success_lo", "success_hi", "failed",
)


def usable(df: pd.DataFrame) -> pd.DataFrame:
    """Evaluations that produced a prediction (``failed`` is false)."""
    if "failed" not in df.columns:
        return df
    return df[~df["failed"].fillna(False).astype(bool)]


def is_targeted(df: pd.DataFrame) -> pd.Series:
    """Rows of a targeted attack (``target`` is a label, not 'untargeted', and an attack ran)."""
    target = df.get("target", pd.Series("untargeted", index=df.index)).fillna("untargeted").astype(str)
    attack = df.get("attack", pd.Series("none", index=df.index)).fillna("none").astype(str)
    return (target != "untargeted") & (target != "") & (attack != "none")


def _rates(sub: pd.DataFrame) -> dict:
    ok = usable(sub)
    n = int(len(ok))
    errors = int((~ok["correct"].astype(bool)).sum())
    e_lo, e_hi = wilson_interval(errors, n)
    tgt = ok[is_targeted(ok)]
    n_t = int(len(tgt))
    hits = int(tgt["target_hit"].fillna(False).astype(bool).sum()) if n_t else 0
    s_lo, s_hi = wilson_interval(hits, n_t)
    return {
        "n": n,
        "errors": errors,
        "error_rate": errors / n if n else np.nan,
        "error_lo": e_lo,
        "error_hi": e_hi,
        "n_targeted": n_t,
        "hits": hits,
        "success_rate": hits / n_t if n_t else np.nan,
        "success_lo": s_lo,
        "success_hi": s_hi,
        "failed": int(len(sub) - n),
    }


def rate_table(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Error and attack-success rates with Wilson 95% intervals per group.

    Parameters
    ----------
    df : evaluations, one row per (trial, mic, model) as ``load_evaluations`` returns.
    by : grouping dimensions (aliases and derived dimensions allowed, see
        :mod:`testbed.analysis.dimensions`); empty pools everything into one row.

    Returns
    -------
    DataFrame with the grouping columns followed by :data:`RATE_COLUMNS`: ``error_rate``
    is the fraction of usable evaluations whose prediction was wrong (for ``attack == 'none'``
    it is the clean error, 1 - clean accuracy); ``success_rate`` is the fraction of
    targeted-attack evaluations that hit their target (nan where the group has none).
    Failed evaluations are counted in ``failed`` and left out of every rate.
    """
    if df.empty:
        raise AnalysisError("nothing to analyse: no evaluations")
    dims = resolve_dimensions(by, df.columns)
    data = with_dimensions(df, dims)
    if not dims:
        return pd.DataFrame([_rates(data)], columns=list(RATE_COLUMNS))
    rows = []
    for key, sub in data.groupby(dims, sort=True, observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**{d: (NA if _isna(k) else k) for d, k in zip(dims, key)}, **_rates(sub)})
    return pd.DataFrame(rows, columns=[*dims, *RATE_COLUMNS])


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def clean_accuracy(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Accuracy without attack (``attack == 'none'``) with Wilson 95% intervals per group.

    Returns
    -------
    DataFrame with the grouping columns and ``n, correct, accuracy, accuracy_lo, accuracy_hi``.
    """
    clean = df[df["attack"].astype(str) == "none"]
    if clean.empty:
        raise AnalysisError("no clean (attack = 'none') evaluations to compute clean accuracy from")
    t = rate_table(clean, by)
    out = t.drop(columns=[c for c in RATE_COLUMNS if c not in ("n",)])
    out["correct"] = t["n"] - t["errors"]
    out["accuracy"] = 1.0 - t["error_rate"]
    out["accuracy_lo"] = 1.0 - t["error_hi"]
    out["accuracy_hi"] = 1.0 - t["error_lo"]
    return out


def fmt_rate(rate: float, lo: float, hi: float) -> str:
    """'94% [89, 97]' (percent, Wilson 95% interval); '-' when undefined."""
    if rate is None or not np.isfinite(rate):
        return "-"
    return f"{100 * rate:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"
