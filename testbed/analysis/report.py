"""The self-contained HTML report (plots embedded as PNG) and its ``summary.json`` twin."""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from testbed.analysis.attack_pairs import all_attack_pairs
from testbed.analysis.compare import all_mic_pairs
from testbed.analysis.dimensions import resolve_dimensions
from testbed.analysis.findings import findings as compute_findings
from testbed.analysis.load import Sessions, rig_from_meta
from testbed.analysis.metrics import RATE_COLUMNS, fmt_rate, rate_table
from testbed.analysis.plots import FIGURES, dut_view, figure_png
from testbed.errors import AnalysisError
from testbed.fileio import atomic_write

#: Environment variable naming the analysis root (default ``./analysis``).
ANALYSIS_ENV = "TESTBED_ANALYSIS_DIR"

#: The report's standard tables: id -> (title, dimensions, DUT mic only).
STANDARD_TABLES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "attack_eps": ("By attack and eps (DUT mic)", ("attack", "eps"), True),
    "model_attack": ("By model and attack (DUT mic)", ("model", "attack"), True),
    "mic_attack": ("By microphone and attack (every mic)", ("mic", "mic_tier", "attack"), False),
    "delay_attack": ("By sync delay and attack (DUT mic)", ("attack", "delay_ms"), True),
    "placement_attack": ("By adversary placement and attack (DUT mic)", ("placement", "attack"), True),
    "spr": ("By SPR at the DUT mic (attacks only)", ("spr_bin",), True),
    "dist_ratio": ("By adversary/user distance ratio (attacks only, every mic)", ("dist_ratio_bin",), False),
    "eval_source": ("By evaluation source and model (DUT mic)", ("eval_source", "model"), True),
    "crafted_played": ("Over-the-air attacks: crafted on, played in (DUT mic)",
                       ("crafted_on", "played_in", "attack", "eps"), True),
}


def analysis_root(root: Path | str | None = None) -> Path:
    """The analysis root: ``root``, else ``$TESTBED_ANALYSIS_DIR``, else ``./analysis``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ANALYSIS_ENV) or "analysis")


def report_dir(ids: Sequence[str], root: Path | str | None = None) -> Path:
    """``analysis/<ID>/`` for one session, ``analysis/<ID1>+<ID2>.../`` for several."""
    return analysis_root(root) / "+".join(ids)


@dataclass
class Report:
    """What :func:`build_report` wrote and computed."""

    html_path: Path
    summary_path: Path
    summary: dict
    findings: list[dict]
    table: pd.DataFrame
    figures: list[str] = field(default_factory=list)


def _clean(o):
    """JSON-safe copy: numpy scalars to Python, nan/inf to None, Paths to str."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (_dt.datetime, _dt.date)):
        return o.isoformat()
    if o is None or isinstance(o, (str, int, bool)):
        return o
    if hasattr(o, "model_dump"):
        return _clean(o.model_dump(mode="json"))
    return str(o)


def table_records(t: pd.DataFrame) -> list[dict]:
    """A rate table as JSON-safe records."""
    return _clean(t.to_dict(orient="records"))


def _html_rows(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    dims = [c for c in t.columns if c not in RATE_COLUMNS]
    show_t = bool((t["n_targeted"] > 0).any())
    head = [*dims, "n", "error rate [95% CI]"] + (["target hit [95% CI]"] if show_t else []) + ["failed"]
    rows = []
    for _, r in t.iterrows():
        cells = [f"{r[d]:g}" if isinstance(r[d], (float, np.floating)) else str(r[d]) for d in dims]
        cells += [str(int(r["n"])), fmt_rate(r["error_rate"], r["error_lo"], r["error_hi"])]
        if show_t:
            cells.append(fmt_rate(r["success_rate"], r["success_lo"], r["success_hi"]))
        cells.append(str(int(r["failed"])))
        rows.append(cells)
    return head, rows


def _standard(df: pd.DataFrame) -> dict[str, tuple[str, pd.DataFrame]]:
    out = {}
    for tid, (title, dims, dut_only) in STANDARD_TABLES.items():
        data = dut_view(df) if dut_only else df
        if tid in ("spr", "dist_ratio"):
            data = data[data["attack"].astype(str) != "none"]
        if tid == "crafted_played":  # r1-follow: only over-the-air perturbations have a craft rig
            data = data[data["crafted_on"].notna()] if "crafted_on" in data.columns else data.iloc[0:0]
        if data.empty or any(d in ("placement", "eval_source") and (d not in data.columns or data[d].nunique() < 2)
                             for d in dims):
            continue
        try:
            out[tid] = (title, rate_table(data, dims))
        except AnalysisError:
            continue  # the store lacks what this table derives from
    return out


def _provenance(sessions: Sessions) -> list[dict]:
    out = []
    for sid, meta in sessions.meta.items():
        scalars = {k: v for k, v in meta.items() if not isinstance(v, (dict, list))}
        nested = {k: json.dumps(_clean(v), indent=2) for k, v in meta.items() if isinstance(v, (dict, list))}
        out.append({"id": sid, "path": str(sessions.paths[sid]), "scalars": _clean(scalars), "nested": nested})
    return out


def build_report(
    sessions: Sessions,
    out_dir: Path | str,
    by: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Compute tables, paired mic tests, findings and figures; write ``report.html`` + ``summary.json``.

    Parameters
    ----------
    sessions : pooled evaluations and metadata from :func:`testbed.analysis.load_sessions`.
    out_dir : folder to write into (created).
    by : dimensions of the main table (first in the report); empty means ``attack, eps``.
    progress : called with (done, total) as figures are drawn.
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from testbed.workspace import assets_dir

    df = sessions.evaluations
    dims = resolve_dimensions(list(by) or ["attack", "eps"], df.columns)
    main = rate_table(df, dims)
    tables = _standard(df)
    mic_pairs = all_mic_pairs(df) if df["mic"].nunique() > 1 else []
    attack_pairs = all_attack_pairs(df)
    found = compute_findings(df)

    first = next(iter(sessions.paths))
    rig = rig_from_meta(sessions.meta.get(first, {}), sessions.paths[first])
    figs, fig_ids = [], []
    total = len(FIGURES)
    for i, (fid, (caption, fn)) in enumerate(FIGURES.items()):
        fig = fn(df, rig)
        if fig is not None:
            png = figure_png(fig)
            figs.append({"id": fid, "caption": caption, "b64": base64.b64encode(png).decode("ascii")})
            fig_ids.append(fid)
        if progress:
            progress(i + 1, total)

    from testbed.analysis.spl import spl_html_rows, spl_summary   # issue 23: levels in dB SPL

    spl = spl_summary(sessions)
    from testbed.analysis.audibility import audibility_html_rows, audibility_section   # issue 24

    audible = audibility_section(sessions)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    summary = _clean({
        "sessions": sessions.ids,
        "generated_utc": now,
        "n_evaluations": int(len(df)),
        "by": dims,
        "main_table": table_records(main),
        "tables": {tid: {"title": title, "rows": table_records(t)} for tid, (title, t) in tables.items()},
        "mic_pairs": mic_pairs,
        "attack_pairs": attack_pairs,
        "findings": found,
        "figures": fig_ids,
        "spl": spl,
        "audibility": audible,
        "provenance": {sid: sessions.meta[sid] for sid in sessions.ids},
    })

    env = Environment(loader=FileSystemLoader(str(assets_dir() / "templates")),
                      autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        title=f"Session report: {', '.join(sessions.ids)}",
        generated=now,
        n_evaluations=len(df),
        findings=found,
        main={"title": "By " + ", ".join(dims), "table": _html_rows(main)},
        tables=[{"title": title, "table": _html_rows(t)} for title, t in tables.values()],
        mic_pairs=mic_pairs,
        attack_pairs=attack_pairs,
        figures=figs,
        spl={"table": spl_html_rows(spl), "note": spl["note"], "source": spl["source"]},
        audibility={"table": audibility_html_rows(audible), "note": audible["note"]},
        provenance=_provenance(sessions),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "report.html"
    summary_path = out / "summary.json"
    atomic_write(html_path, html)
    atomic_write(summary_path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return Report(html_path, summary_path, summary, found, main, fig_ids)
