"""The study's HTML report: the claims table, one figure per paper figure, the certified
baseline and every row, written self-contained (figures embedded) beside a ``summary.json``."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from testbed.fileio import atomic_write
from testbed.models.robust.certify import certified_accuracy
from testbed.models.robust.smooth import linf_to_l2
from testbed.study.claims import verdicts
from testbed.study.figures import draw_figures
from testbed.study.run import StudyRun
from testbed.study.table import results_table
from testbed.workspace import assets_dir


def _certified(results: list[dict]) -> list[dict]:
    out = []
    for r in results:
        if r.get("cell", {}).get("attack") != "certify" or "certified" not in r:
            continue
        n_samples = int(r["n_samples"])
        radii = [0.0] + [float(linf_to_l2(e, n_samples)) for e in (0.0005, 0.001, 0.002, 0.005)]
        for row in certified_accuracy(r["certified"], radii, n_samples):
            out.append({"model": r["cell"]["source"], **row})
    return out


def code_revisions(results: list[dict]) -> dict[str, int]:
    """Cells per git commit that computed them ("not recorded" for cells stored before results
    carried their versions)."""
    return dict(Counter(str((r.get("versions") or {}).get("git") or "not recorded") for r in results))


def write_report(run: StudyRun, out_dir: Path | str, *, title: str, zoo: str, data: str, n_clips: int,
                 missing: list[str], planned: list[dict]) -> Path:
    """Write ``report.html``, ``summary.json``, ``rows.csv`` and the figures' PNGs; return the report.

    ``planned`` is every cell of the grid (as dicts): those without a result are reported as
    unfinished, per figure.
    """
    out = Path(out_dir)
    table = results_table(run.results)
    claims = verdicts(table)
    pngs = draw_figures(table, out / "figures")
    done = {json.dumps(r["cell"], sort_keys=True) for r in run.results if "cell" in r}
    unfinished = Counter(c["figure"] for c in planned if json.dumps(c, sort_keys=True) not in done)
    figures = [(name, base64.b64encode(p.read_bytes()).decode()) for name, p in pngs.items()]
    certified, computed_by = _certified(run.results), code_revisions(run.results)
    rows = table.drop(columns=["outcome"]).sort_values(["figure", "source", "target", "attack", "eps", "delay_ms"])
    env = Environment(loader=FileSystemLoader(str(assets_dir() / "templates")), autoescape=select_autoescape())
    html = env.get_template("study.html.j2").render(
        title=title, run=run, claims=claims, figures=figures, figure_names=[f for f, _ in figures],
        unfinished=dict(unfinished), certified=certified, rows=rows.to_dict("records"),
        zoo=zoo, data=data, n_clips=n_clips, missing=missing, computed_by=computed_by)
    atomic_write(out / "rows.csv", rows.to_csv(index=False))
    summary = {"run": run.as_dict(), "claims": claims, "unfinished": dict(unfinished),
               "computed_by": computed_by,
               "figures": {k: str(v) for k, v in pngs.items()}, "certified": certified}
    atomic_write(out / "summary.json", json.dumps(summary, indent=1, default=_jsonable))
    return atomic_write(out / "report.html", html)


def _jsonable(o):
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    return float(o) if hasattr(o, "__float__") else str(o)
