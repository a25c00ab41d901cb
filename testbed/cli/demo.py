"""`testbed demo`: the whole story on the simulated office rig, on one command."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, err_console, make_progress, print_json

STAGES = {"zoo": "training the zoo", "craft": "crafting perturbations", "trials": "running trials",
          "replay": "replaying", "analysis": "analysing"}


def demo(
    fast: bool = typer.Option(False, "--fast", help="Tiny settings (2 commands, 1 bound, 2 delays): for tests."),
    out: Path = typer.Option(Path("demo-out"), "--out", "-o",
                             help="Workspace for models/, sessions/ and analysis/."),
    models_dir: Path | None = typer.Option(
        None, "--models-dir", help="Model zoo to use or fill (default: OUT/models)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the plan (utterances, attacks, simulated room noise)."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome (paths, findings, timings) as JSON."),
) -> None:
    """The whole pipeline on the simulated office rig: zoo, session, replay, analysis, report.

    Finishes in under 10 minutes on 2 CPU cores (seconds with --fast, once a zoo exists).

    Example: testbed demo --out demo-out
    """
    from testbed.demo import run_demo

    progress = make_progress(disable=json_out)
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int | None) -> None:
        key = stage.split(":")[0]
        if key not in tasks:
            tasks[key] = progress.add_task(STAGES.get(key, key), total=total)
        desc = stage if ":" in stage else STAGES.get(key, key)
        progress.update(tasks[key], description=desc, completed=done, total=total)

    with progress:
        result = run_demo(out, fast=fast, models_dir=models_dir, seed=seed, progress=on_progress)

    if json_out:
        print_json(result.as_dict())
        return
    t = result.timings
    console.print(f"[bold]session[/bold] {result.session_id} ({result.run_reason}): {result.session_dir}")
    console.print(f"[bold]Findings[/bold] (live: {', '.join(result.live_models)}; "
                  f"replayed through {result.replay_model})")
    for f in result.findings:
        console.print(f"  - {f['text']}")
    console.print(f"[bold]report[/bold]: {result.report_html}")
    err_console.print(f"demo finished in {t['total_s']:.0f} s (zoo {t['zoo_s']:.0f} s, session "
                      f"{t['session_s']:.0f} s, replay {t['replay_s']:.0f} s, analysis {t['analysis_s']:.0f} s)")
