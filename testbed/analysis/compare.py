"""Paired comparisons: microphone A vs microphone B judged on the very same trials (McNemar)."""

from __future__ import annotations

from itertools import combinations

import pandas as pd

from testbed.analysis.metrics import usable
from testbed.analysis.stats import McNemarResult, mcnemar
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
    keys = [k for k in PAIR_KEYS if k in df.columns]
    ok = usable(df)
    ok = ok[ok["mic"].astype(str).isin([mic_a, mic_b])]
    wrong = (~ok["correct"].astype(bool)).rename("wrong")
    table = (
        pd.concat([ok[keys + ["mic"]], wrong], axis=1)
        .drop_duplicates(keys + ["mic"])
        .pivot(index=keys, columns="mic", values="wrong")
        .dropna()
    )
    return table[[mic_a, mic_b]].astype(bool)


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


def all_mic_pairs(df: pd.DataFrame, attacked_only: bool = True) -> list[dict]:
    """McNemar results for every pair of mics in ``df`` (dicts with mic names and tiers)."""
    mics = sorted(set(df["mic"].astype(str)))
    tiers = mic_tiers(df)
    out = []
    for a, b in combinations(mics, 2):
        try:
            res = compare_mics(df, a, b, attacked_only=attacked_only)
        except AnalysisError:
            continue
        out.append({"mic_a": a, "mic_b": b, "tier_a": tiers.get(a), "tier_b": tiers.get(b), **res.as_dict()})
    return out
