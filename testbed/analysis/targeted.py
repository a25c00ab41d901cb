"""Targeted command injection in a session: success per target and per source -> target pair.

Reads only the stored evaluation rows: ``label`` (the command played), ``target`` (the
attack config's target label, recorded with the config) and ``target_hit`` (prediction ==
target). A targeted attack *succeeds* only when the DUT reports the target; the untargeted
error (prediction != label) of the same rows is reported beside it, never in its place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from testbed.analysis.dimensions import resolve_dimensions, with_dimensions
from testbed.analysis.metrics import fmt_rate, is_targeted, usable
from testbed.analysis.stats import wilson_interval

#: Columns of :func:`targeted_table`, after the grouping columns.
TARGETED_COLUMNS = ("label", "target", "n", "hits", "success_rate", "success_lo", "success_hi",
                    "errors", "error_rate", "error_lo", "error_hi")


def targeted_table(df: pd.DataFrame, by: Sequence[str] = (), *, per_pair: bool = True) -> pd.DataFrame:
    """Targeted success and untargeted error with Wilson 95 % intervals, per target (and pair).

    Parameters
    ----------
    df : evaluations, one row per (trial, mic, model), as ``load_evaluations`` returns
    by : extra grouping dimensions (e.g. ``("model", "eps")``), see :mod:`testbed.analysis.dimensions`
    per_pair : group by the played label too (source -> target); False pools every source per target

    Returns
    -------
    DataFrame with ``by`` then :data:`TARGETED_COLUMNS` (``label`` is ``"*"`` when pooled); empty
    when the session has no usable targeted evaluation. ``success_rate`` is ``hits / n`` (the DUT
    said the target), ``error_rate`` is ``errors / n`` (it said anything but the command).
    """
    data = usable(df)
    data = data[is_targeted(data)]
    dims = resolve_dimensions(by, data.columns) if len(data) else list(by)
    cols = [*dims, *TARGETED_COLUMNS]
    if data.empty:
        return pd.DataFrame(columns=cols)
    data = with_dimensions(data, dims).copy()
    if not per_pair:
        data["label"] = "*"
    keys = [*dims, "label", "target"]
    rows = []
    for key, sub in data.groupby(keys, sort=True, observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        n = int(len(sub))
        hits = int(sub["target_hit"].fillna(False).astype(bool).sum())
        errors = int((~sub["correct"].astype(bool)).sum())
        s_lo, s_hi = wilson_interval(hits, n)
        e_lo, e_hi = wilson_interval(errors, n)
        rows.append({**dict(zip(keys, key)), "n": n, "hits": hits, "success_rate": hits / n if n else np.nan,
                     "success_lo": s_lo, "success_hi": s_hi, "errors": errors,
                     "error_rate": errors / n if n else np.nan, "error_lo": e_lo, "error_hi": e_hi})
    return pd.DataFrame(rows, columns=cols)


def targeted_lines(df: pd.DataFrame, by: Sequence[str] = ("model",)) -> list[str]:
    """One sentence per (``by``, source -> target): for reports and the CLI."""
    t = targeted_table(df, by)
    out = []
    for r in t.to_dict("records"):
        who = ", ".join(f"{d} {r[d]}" for d in by if d in r)
        out.append(f"{r['label']} -> {r['target']}{' (' + who + ')' if who else ''}: the DUT said "
                   f"{r['target']!r} in {r['hits']} of {r['n']} ({fmt_rate(r['success_rate'], r['success_lo'], r['success_hi'])}); "
                   f"any error {fmt_rate(r['error_rate'], r['error_lo'], r['error_hi'])}")
    return out



def targeted_finding(df: pd.DataFrame) -> dict | None:
    """The report's finding on targeted injection: per source -> target pair at the DUT's mic,
    success (the DUT said the target) beside any error, Wilson 95 %; None without targeted rows."""
    from testbed.analysis.plots import dut_view

    t = targeted_table(dut_view(df))
    if t.empty:
        return None
    parts = [f"{r['label']} -> {r['target']}: {fmt_rate(r['success_rate'], r['success_lo'], r['success_hi'])} "
             f"said the target (any error {fmt_rate(r['error_rate'], r['error_lo'], r['error_hi'])}, n = {r['n']})"
             for r in t.to_dict("records")]
    return {"id": "targeted-pairs", "text": "Targeted injection per pair at the DUT mic: " + "; ".join(parts) + ".",
            "values": {f"{r['label']}->{r['target']}": {
                "rate": float(r["success_rate"]), "lo": float(r["success_lo"]), "hi": float(r["success_hi"]),
                "n": int(r["n"]), "hits": int(r["hits"]), "error_rate": float(r["error_rate"])}
                for r in t.to_dict("records")}}
