"""`testbed attack eval --target-matrix yes:go,no:up`: targeted command injection, per pair.

Kept apart from ``cli/attack.py`` (which only calls :func:`run_target_matrix`) so that new
attack options and this report change different files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from testbed.cli.common import console, make_progress, print_json


def _num(v):
    """A JSON-safe number: None for NaN, infinities and missing values."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _pct(rate: float, lo: float, hi: float, digits: int = 1) -> str:
    if rate != rate:
        return "-"
    return f"{100 * rate:.{digits}f} [{100 * lo:.{digits}f}-{100 * hi:.{digits}f}]"


def run_target_matrix(models: Mapping, sources: Sequence[str], target_names: Sequence[str], x, y, spec: str, *,
                      matrix: str, kind: str, eps: Sequence[float], delays: Sequence[float], params: dict,
                      sample_rate: int, batch_size: int, out: Path, json_out: bool) -> None:
    """Attack each pair's clips toward its target on every source; print and save per-pair intervals.

    Writes ``targeted.csv`` (:data:`~testbed.attacks.targeted.PAIR_COLUMNS`), ``targeted_clips.csv``
    (one row per attacked clip: hit, frames above, SNR) and the trade-off of success against
    audibility (``targeted_tradeoff.csv`` / ``.png``, :func:`~testbed.attacks.targeted.tradeoff`) to ``out``; with
    ``json_out`` prints ``{"attack", "sources", "data", "n", "pairs": [[src, tgt], ...], "csv",
    "rows": [{source, target, eps, delay_ms, source_label, target_label, n, success: {rate, ci95,
    k}, masked_success: {rate, ci95, k} (hits with at most MASKED_FRAMES of frames above the
    masking threshold), error: {rate, ci95, k}, snr_db, level_dbfs, loudness_lufs, masking_margin_db,
    frames_above, ...}], "tradeoff": [{source, target, eps, delay_ms, source_label, target_label,
    fraction, k, n, rate, lo, hi}], "tradeoff_png"}``.
    """
    from rich import box
    from rich.table import Table

    import pandas as pd

    from testbed.attacks.plots import plot_tradeoff
    from testbed.attacks.targeted import MASKED_FRAMES, evaluate_target_matrix, parse_target_matrix, tradeoff

    first = models[sources[0]]
    pairs = parse_target_matrix(matrix, list(first.labels))
    with make_progress(transient=json_out) as bar:
        task = bar.add_task(f"{kind} toward {matrix}", total=None)
        table = evaluate_target_matrix(
            {s: models[s] for s in sources}, {t: models[t] for t in target_names}, x, y, pairs,
            kind=kind, eps=eps, delays_ms=delays, params=params, sample_rate=sample_rate,
            batch_size=batch_size, progress=lambda done, total: bar.update(task, completed=done, total=total),
            clips_out=(clips := []))
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "targeted.csv"
    table.to_csv(csv_path, index=False)
    pd.DataFrame(clips).to_csv(out / "targeted_clips.csv", index=False)
    curve = tradeoff(clips)
    curve.to_csv(out / "targeted_tradeoff.csv", index=False)
    png = plot_tradeoff(curve, out / "targeted_tradeoff.png",
                        title=f"targeted {kind}: success vs frames above the mask")
    if json_out:
        rows = []
        for r in table.to_dict("records"):
            row = {k: r[k] for k in ("source", "target", "eps", "delay_ms", "source_label", "target_label")}
            row["n"] = int(r["n"])
            for what, k in (("success", "hits"), ("masked_success", "masked_hits"), ("error", "errors")):
                row[what] = {"rate": _num(r[f"{what}_rate"]), "ci95": [_num(r[f"{what}_lo"]), _num(r[f"{what}_hi"])],
                             "k": int(r[k])}
            for k in ("queries", "snr_db", "level_dbfs", "level_db_spl", "level_dba", "loudness_lufs",
                      "masking_margin_db", "frames_above"):
                row[k] = _num(r.get(k))
            rows.append(row)
        curve_rows = [{k: (r[k] if k in ("source", "target", "source_label", "target_label") else
                           int(r[k]) if k in ("k", "n") else _num(r[k])) for k in r} for r in curve.to_dict("records")]
        print_json({"attack": kind, "sources": list(sources), "data": spec, "n": int(len(x)),
                    "pairs": [list(p) for p in pairs], "csv": str(csv_path), "rows": rows,
                    "tradeoff": curve_rows, "tradeoff_png": str(png)})
        return
    # eps and delay get a column only when they vary; otherwise the title says them (80 columns)
    varying = [c for c, vals in (("eps", eps), ("ms", delays)) if len(set(vals)) > 1]
    fixed = "".join(f", {label} {vals[0]:g}" for c, label, vals in (("eps", "eps", eps), ("ms", "delay ms", delays))
                    if c not in varying)
    for name in target_names:
        for src in sources:
            g = table[(table["target"] == name) & (table["source"] == src)]
            t = Table(title=f"{name}: targeted {kind} crafted on {src}, {len(x)} clips{fixed} (CI: Wilson 95 %); hit = says the "
                            f"target; masked: a hit with <= {100 * MASKED_FRAMES:g} % of frames above the masking threshold; "
                            f">mask: % of frames above it",
                      box=box.SIMPLE, pad_edge=False)
            for col in ("pair", *varying, "n", "hit % [CI]", "masked %", "error % [CI]", "SNR dB", ">mask"):
                t.add_column(col, justify="left" if col == "pair" else "right", no_wrap=True)
            for r in g.itertuples():
                cells = {"eps": f"{r.eps:g}", "ms": f"{r.delay_ms:g}"}
                t.add_row(f"{r.source_label}->{r.target_label}", *(cells[c] for c in varying), str(r.n),
                          _pct(r.success_rate, r.success_lo, r.success_hi),
                          _pct(r.masked_success_rate, r.masked_success_lo, r.masked_success_hi, 0),
                          _pct(r.error_rate, r.error_lo, r.error_hi),
                          "-" if _num(r.snr_db) is None else f"{r.snr_db:.1f}",
                          "-" if _num(r.frames_above) is None else f"{100 * r.frames_above:.0f}")
            console.print(t)
    console.print(f"wrote {csv_path}, targeted_clips.csv, targeted_tradeoff.csv and {png.name} "
                  "(success with at most a given fraction of frames above the masking threshold)")
