"""A study's stored cells as one table: one row per (cell, target, delay), every rate with its
Wilson 95 % interval and n, and each row's per-clip outcomes for paired comparisons."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from testbed.stats import cluster_bootstrap_rate, mcnemar_exact, wilson_interval

COLUMNS = ("figure", "source", "target", "arch", "variant", "attack", "eps", "delay_ms", "target_label", "n",
           "errors", "error_rate", "ci_low", "ci_high", "clean_errors", "clean_error_rate", "hits", "success_rate",
           "snr_db", "queries", "outcome", "key")


def _variant(name: str) -> str:
    return name.split("-", 1)[-1] if "-" in name else name


def results_table(results: Iterable[dict]) -> pd.DataFrame:
    """One row per (cell, target, delay) of every finished (not failed) attack cell (a certification
    cell has certified radii, not errors: the report lists those on their own)."""
    rows = []
    for r in results:
        if "error" in r or "cell" not in r or r["cell"].get("attack") == "certify":
            continue
        c = r["cell"]
        delays = c["delays_ms"] if c["attack"] != "none" else [0.0]
        for t in c["targets"]:
            clean = np.asarray(r["clean_wrong"][t], dtype=int)
            for d in delays:
                tag = f"{t}@{float(d):g}"
                out = np.asarray(r["wrong"].get(tag, clean), dtype=int)
                hit = r.get("hit", {}).get(tag)
                n = int(out.size)
                lo, hi = wilson_interval(int(out.sum()), n)
                rows.append({
                    "figure": c["figure"], "source": c["source"], "target": t, "arch": t.split("-", 1)[0],
                    "variant": _variant(t), "attack": c["attack"], "eps": float(c["eps"]), "delay_ms": float(d),
                    "target_label": c.get("target_label") or "untargeted", "n": n, "errors": int(out.sum()),
                    "error_rate": out.mean() if n else float("nan"), "ci_low": lo, "ci_high": hi,
                    "clean_errors": int(clean.sum()), "clean_error_rate": clean.mean() if n else float("nan"),
                    "hits": None if hit is None else int(np.sum(hit)),
                    "success_rate": None if hit is None else float(np.mean(hit)),
                    "snr_db": r.get("snr_db"), "queries": r.get("queries"), "outcome": out.tolist(),
                    "key": r.get("key")})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def paired(a: pd.Series, b: pd.Series) -> dict:
    """Exact McNemar test of two rows' per-clip outcomes (the same clips, in the same order).

    Returns ``{"a": rate, "b": rate, "diff": b - a, "b_only": k, "a_only": k, "p": p, "n": n}``.
    """
    x, y = np.asarray(a["outcome"], dtype=int), np.asarray(b["outcome"], dtype=int)
    if x.size != y.size:
        raise ValueError("paired rows must cover the same clips")
    a_only, b_only = int(np.sum((x == 1) & (y == 0))), int(np.sum((x == 0) & (y == 1)))
    return {"a": float(x.mean()), "b": float(y.mean()), "diff": float(y.mean() - x.mean()),
            "a_only": a_only, "b_only": b_only, "p": mcnemar_exact(a_only, b_only), "n": int(x.size)}


def clip_bootstrap(rows: pd.DataFrame, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the pooled error of ``rows`` that judge the same clips in the same order
    (e.g. several models attacked on one cell's clips): a bootstrap that resamples clips, each
    clip carrying its outcomes in every row. Rows of different lengths cannot share clips.
    """
    outcomes = [np.asarray(o, dtype=int) for o in rows["outcome"]]
    if len({o.size for o in outcomes}) > 1:
        raise ValueError("pooled rows must cover the same clips")
    per_clip = np.vstack(outcomes)                      # (rows, clips)
    return cluster_bootstrap_rate(per_clip.sum(axis=0), np.full(per_clip.shape[1], per_clip.shape[0]),
                                  seed=seed)


def pick(table: pd.DataFrame, **where) -> pd.DataFrame:
    """Rows matching every ``column=value`` (floats compared with a tolerance)."""
    m = np.ones(len(table), dtype=bool)
    for col, val in where.items():
        if isinstance(val, float):
            m &= np.isclose(table[col].astype(float), val)
        else:
            m &= (table[col] == val).to_numpy()
    return table[m]
