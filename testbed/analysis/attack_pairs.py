"""Paired comparisons of attacks: two attack configurations heard on the same utterances (McNemar).

A session that plays several attacks on the same utterances, delays, placements and mics asks
the same question of each: is attack A stronger than attack B *on the same commands*? The
paired answer is McNemar's exact test on the discordant cells; the difference of the error
rates gets a bootstrap interval over utterances (one utterance is heard at several delays, mics
and models, so its cells are not independent), and the p-values of all pairs are
Holm-adjusted together.
"""

from __future__ import annotations

from itertools import combinations

import pandas as pd

from testbed.analysis.compare import attacked, difference_interval, paired_wrong
from testbed.analysis.stats import BOOT_SEED, N_BOOT, holm, mcnemar

#: Columns that identify "the same command heard the same way" across attacks.
CELL_KEYS = ("session_id", "utterance_id", "delay_ms", "placement", "repetition", "mic", "model", "eval_source")


def paired_attack_errors(df: pd.DataFrame, attack_a: str, attack_b: str) -> pd.DataFrame:
    """Error indicators (True = wrong) of attack configurations ``attack_a`` and ``attack_b``
    (``attack_id`` values) on the cells both were played in, indexed by :data:`CELL_KEYS`;
    failed captures are dropped."""
    return paired_wrong(df, CELL_KEYS, "attack_id", attack_a, attack_b)


def _compare(pairs: pd.DataFrame, a: str, b: str, n_boot: int, seed: int) -> dict:
    """McNemar of the two columns and the utterance-bootstrap interval of error(a) - error(b)."""
    res = mcnemar(pairs[a].to_numpy(), pairs[b].to_numpy())
    diff = difference_interval(pairs, a, b, n_boot=n_boot, seed=seed, clusters=("session_id", "utterance_id"))
    return {**res.as_dict(), "diff": diff["diff"], "diff_lo": diff["diff_lo"], "diff_hi": diff["diff_hi"],
            "n_utterances": diff["n_trials"]}


def all_attack_pairs(df: pd.DataFrame, by: str | None = "delay_ms", n_boot: int = N_BOOT,
                     seed: int = BOOT_SEED) -> list[dict]:
    """McNemar results for every pair of attack configurations played on shared cells.

    Parameters
    ----------
    df : evaluations (clean trials are ignored).
    by : a cell column (default ``"delay_ms"``) to compare within as well: each pair then also gets
        one row per value of it when it takes several; None (or a column the data lack) for the
        pooled rows only.

    Returns
    -------
    dicts with ``attack_a``, ``attack_b`` (``attack_id``), ``group`` (None for pooled, else
    ``{by: value}``), :class:`~testbed.analysis.stats.McNemarResult`'s fields, ``diff`` /
    ``diff_lo`` / ``diff_hi`` (error A - error B, utterance bootstrap 95 %), ``n_utterances``,
    ``p_holm`` (Holm over every row returned) and ``n_comparisons``.
    """
    src = attacked(df)
    if src.empty or "attack_id" not in src.columns:
        return []
    ids = list(dict.fromkeys(src["attack_id"].astype(str)))
    out = []
    for a, b in combinations(sorted(ids), 2):
        pairs = paired_attack_errors(src, a, b)
        if pairs.empty:
            continue
        out.append({"attack_a": a, "attack_b": b, "group": None, **_compare(pairs, a, b, n_boot, seed)})
        if by is not None and by in pairs.index.names and pairs.index.get_level_values(by).nunique() > 1:
            for value, g in pairs.groupby(level=by, sort=True):
                out.append({"attack_a": a, "attack_b": b, "group": {by: value}, **_compare(g, a, b, n_boot, seed)})
    for r, p in zip(out, holm([r["p_value"] for r in out]) if out else []):
        r["p_holm"] = float(p)
        r["n_comparisons"] = len(out)
    return out
