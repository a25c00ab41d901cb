"""`testbed bench`: performance figures as JSON ratios against same-run baselines."""

from __future__ import annotations

import typer

from testbed.cli.common import console, print_json, split_csv


def bench(
    only: str = typer.Option(None, "--only", help="comma-separated areas: sim, models, attacks, ensemble, session, scale"),
    quick: bool = typer.Option(False, "--quick", help="smaller workloads (for smoke runs)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Measure throughput and speed ratios (each against a baseline timed in the same run).

    Example: testbed bench --only sim --json
    """
    from testbed.bench import run

    results = run(split_csv(only) or None, quick=quick)
    if json_out:
        print_json(results)
        return
    for area, figures in results.items():
        console.print(f"[bold]{area}[/bold]")
        for k, v in figures.items():
            console.print(f"  {k:40s} {v}")
