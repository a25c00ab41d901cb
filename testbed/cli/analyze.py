"""`testbed analyze`: metrics with intervals, plots and the HTML report of recorded sessions."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, make_progress, print_json, split_csv
from testbed.stats import NOISE_P


def analyze(
    sessions: list[str] = typer.Argument(..., help="Session IDs under the sessions root, or session folders."),
    by: str = typer.Option(
        "attack,eps", "--by",
        help="Comma-separated grouping dimensions: model, variant, attack, eps, delay_ms, mic, tier, "
             "placement, distance, dist_user, ratio, angle, spr, bits, ensemble, source, session.",
    ),
    compare: bool = typer.Option(False, "--compare", help="Compare sessions side by side (adds session to --by)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: analysis/<ID>/)."),
    sessions_dir: Path | None = typer.Option(
        None, "--sessions-dir", help="Sessions root (default: $TESTBED_SESSIONS_DIR or ./sessions)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html and summary.json."),
    json_out: bool = typer.Option(False, "--json", help="Print the table and findings as JSON."),
) -> None:
    """Error rates with Wilson 95% intervals by any dimension, findings, and analysis/<ID>/report.html.

    Attacks played on the same utterances are compared pairwise (McNemar, Holm-adjusted; pooled
    and per delay): the report's "Attack vs attack" table and "attack_pairs" in --json.

    Several sessions are pooled (or compared with --compare).

    Example: testbed analyze 20250101-120000-delay-sweep --by mic,delay_ms
    """
    from testbed.analysis import build_report, fmt_rate, load_sessions, rate_table, report_dir

    dims = split_csv(by)
    if compare:
        dims = ["session_id", *[d for d in dims if d not in ("session", "session_id")]]
    data = load_sessions(sessions, sessions_dir)
    table = rate_table(data.evaluations, dims)
    rep = None
    if report:
        out_dir = out or report_dir(data.ids)
        with make_progress(transient=True, disable=json_out) as prog:
            task = prog.add_task("drawing figures", total=None)
            rep = build_report(data, out_dir, dims,
                               progress=lambda done, total: prog.update(task, completed=done, total=total))
    from testbed.analysis.metrics import RATE_COLUMNS

    if json_out:
        from testbed.analysis.attack_pairs import all_attack_pairs
        from testbed.analysis.findings import findings
        from testbed.analysis.report import table_records

        print_json({
            "sessions": data.ids,
            "by": [c for c in table.columns if c not in RATE_COLUMNS],
            "n_evaluations": int(len(data.evaluations)),
            "rows": table_records(table),
            "findings": rep.findings if rep else findings(data.evaluations),
            "attack_pairs": rep.summary["attack_pairs"] if rep else all_attack_pairs(data.evaluations),
            "report": str(rep.html_path) if rep else None,
            "summary": str(rep.summary_path) if rep else None,
        })
        return
    from rich.table import Table

    group_cols = [c for c in table.columns if c not in RATE_COLUMNS]
    show_t = bool((table["n_targeted"] > 0).any())
    t = Table(title=f"{', '.join(data.ids)}: {len(data.evaluations)} evaluations", show_lines=False)
    for c in group_cols:
        t.add_column(c)
    t.add_column("n", justify="right")
    t.add_column("error rate [95% CI]", justify="right")
    if show_t:
        t.add_column("target hit [95% CI]", justify="right")
    t.add_column("failed", justify="right")
    for _, r in table.iterrows():
        cells = [f"{r[c]:g}" if isinstance(r[c], float) else str(r[c]) for c in group_cols]
        cells += [str(int(r["n"])), fmt_rate(r["error_rate"], r["error_lo"], r["error_hi"])]
        if show_t:
            cells.append(fmt_rate(r["success_rate"], r["success_lo"], r["success_hi"]))
        cells.append(str(int(r["failed"])))
        t.add_row(*cells)
    console.print(t)
    if rep:
        if rep.findings:
            console.print("[bold]Findings[/bold]")
            for f in rep.findings:
                console.print(f"  - {f['text']}")
        pooled = [p for p in rep.summary.get("attack_pairs", []) if p.get("group") is None]
        if pooled:
            console.print("[bold]Attack vs attack on the same utterances[/bold] (McNemar, Holm-adjusted)")
            for p in pooled:
                verdict = "within noise" if p["p_holm"] >= NOISE_P else "differ"
                console.print(f"  - {p['attack_a']} vs {p['attack_b']}: {100 * p['error_a']:.1f} % vs "
                              f"{100 * p['error_b']:.1f} % on {p['n_pairs']} pairs, A - B "
                              f"{100 * p['diff']:+.1f} [{100 * p['diff_lo']:+.1f}, {100 * p['diff_hi']:+.1f}] pts, "
                              f"Holm p {p['p_holm']:.2g} ({verdict})")
        console.print(f"report: {rep.html_path}")
        console.print(f"summary: {rep.summary_path}")
