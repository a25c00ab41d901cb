"""Paired comparisons: microphone A vs microphone B judged on the very same trials (McNemar).

Several models judge each trial, so the pairs of one trial are not independent: the
difference of the error rates gets a trial-level bootstrap interval, and the p-values of
all mic pairs are Holm-adjusted together (:func:`all_mic_pairs`).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from testbed.analysis.metrics import usable
from testbed.analysis.stats import BOOT_SEED, N_BOOT, McNemarResult, cluster_bootstrap_rate, holm, mcnemar, \
    trial_codes
from testbed.errors import AnalysisError

#: Columns that identify "the same trial heard by the same model" across microphones.
PAIR_KEYS = ("session_id", "trial_id", "model", "eval_source")


def mic_tiers(df: pd.DataFrame) -> dict[str, str]:
    """``{mic: tier}`` as the store recorded them (empty when it has no ``mic_tier``)."""
    if "mic_tier" not in df.columns:
        return {}
    d = df.drop_duplicates("mic")
    return dict(zip(d["mic"].astype(str), d["mic_tier"].astype(str)))


def attacked(df: pd.DataFrame) -> pd.DataFrame:
    """Evaluations of trials where an attack was played (``attack != 'none'``)."""
    return df[df["attack"].astype(str) != "none"]


def paired_errors(df: pd.DataFrame, mic_a: str, mic_b: str) -> pd.DataFrame:
    """Error indicators of ``mic_a`` and ``mic_b`` on the same (trial, model) pairs.

    Returns
    -------
    DataFrame indexed by :data:`PAIR_KEYS` (those present) with boolean columns ``mic_a``,
    ``mic_b`` (True = wrong prediction); pairs where either capture failed are dropped.
    """
    for m in (mic_a, mic_b):
        if m not in set(df["mic"].astype(str)):
            have = ", ".join(sorted(set(df["mic"].astype(str))))
            raise AnalysisError(f"mic comparison: no evaluations at mic {m!r} (have: {have})")
    return paired_wrong(df, PAIR_KEYS, "mic", mic_a, mic_b)


def paired_wrong(df: pd.DataFrame, keys, column: str, a: str, b: str) -> pd.DataFrame:
    """Error indicators (True = wrong prediction) of ``column`` values ``a`` and ``b`` on the rows
    both share, indexed by ``keys`` (those present); failed captures are dropped, and the result
    is empty (columns ``a``, ``b``) when either value has no usable row."""
    keys = [k for k in keys if k in df.columns]
    ok = usable(df)
    ok = ok[ok[column].astype(str).isin([a, b])]
    wrong = (~ok["correct"].astype(bool)).rename("wrong")
    table = (
        pd.concat([ok[keys + [column]], wrong], axis=1)
        .drop_duplicates(keys + [column])
        .pivot(index=keys, columns=column, values="wrong")
        .dropna()
    )
    if a not in table.columns or b not in table.columns:
        return pd.DataFrame(columns=[a, b], dtype=bool)
    return table[[a, b]].astype(bool)


def compare_mics(df: pd.DataFrame, mic_a: str, mic_b: str, attacked_only: bool = True) -> McNemarResult:
    """McNemar's exact test of mic A vs mic B on the same trials and models.

    Parameters
    ----------
    df : evaluations.
    mic_a, mic_b : mic names as in the rig.
    attacked_only : only trials where an attack was played (the question operators ask).
    """
    src = attacked(df) if attacked_only else df
    pairs = paired_errors(src, mic_a, mic_b)
    if pairs.empty:
        raise AnalysisError(f"mic comparison: no trial was evaluated at both {mic_a!r} and {mic_b!r}")
    return mcnemar(pairs[mic_a].to_numpy(), pairs[mic_b].to_numpy())


def difference_interval(pairs: pd.DataFrame, mic_a: str, mic_b: str, n_boot: int = N_BOOT,
                        seed: int = BOOT_SEED, clusters: tuple[str, ...] | None = None) -> dict:
    """95 % interval of ``error(mic_a) - error(mic_b)`` on paired evaluations, by trial.

    Parameters
    ----------
    pairs : :func:`paired_errors`' table (its index holds ``trial_id``), or any two-column table
        of :func:`paired_wrong`.
    clusters : index columns whose values make a cluster (e.g. ``("session_id", "utterance_id")``);
        None: the trial (:func:`~testbed.analysis.stats.trial_codes`).

    Returns
    -------
    ``{"diff", "diff_lo", "diff_hi", "n_trials", "ci"}``: a trial-level (cluster) bootstrap
    interval when trials hold several pairs, else the same bootstrap over single pairs
    (``ci`` says "trial bootstrap" or "pair bootstrap").
    """
    d = pairs[mic_a].to_numpy(dtype=float) - pairs[mic_b].to_numpy(dtype=float)
    idx = pairs.index.to_frame(index=False)
    if clusters is None:
        codes = trial_codes(idx)
    else:
        cols = [k for k in clusters if k in idx.columns]
        codes = pd.MultiIndex.from_frame(idx[cols].astype(str)).factorize()[0] if cols else None
    if codes is None:
        codes = np.arange(d.size)
    n_c = np.bincount(codes)
    lo, hi = cluster_bootstrap_rate(np.bincount(codes, weights=d), n_c, n_boot=n_boot, seed=seed)
    return {"diff": float(d.mean()), "diff_lo": lo, "diff_hi": hi, "n_trials": int(n_c.size),
            "ci": "trial bootstrap" if n_c.size < d.size else "pair bootstrap"}


def all_mic_pairs(df: pd.DataFrame, attacked_only: bool = True) -> list[dict]:
    """McNemar results for every pair of mics in ``df`` (dicts with mic names and tiers).

    Each dict also holds ``p_holm`` (the p-value Holm-adjusted over all pairs returned),
    ``n_comparisons`` and :func:`difference_interval`'s trial-level interval of the
    difference in error (``diff``, ``diff_lo``, ``diff_hi``, ``n_trials``, ``ci``).
    """
    mics = sorted(set(df["mic"].astype(str)))
    tiers = mic_tiers(df)
    src = attacked(df) if attacked_only else df
    out = []
    for a, b in combinations(mics, 2):
        try:
            res = compare_mics(df, a, b, attacked_only=attacked_only)
        except AnalysisError:
            continue
        diff = difference_interval(paired_errors(src, a, b), a, b)
        out.append({"mic_a": a, "mic_b": b, "tier_a": tiers.get(a), "tier_b": tiers.get(b), **res.as_dict(),
                    **diff})
    adjusted = holm([r["p_value"] for r in out]) if out else []
    for r, p in zip(out, adjusted):
        r["p_holm"] = float(p)
        r["n_comparisons"] = len(out)
    return out
