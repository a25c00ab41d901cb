"""`testbed demo`: the whole story on the simulated office rig, on one command.

Builds a quick zoo if it is missing, runs a small session (clean, FGSM, PGD and over-the-air
PGD x 2 bounds x 3 sync delays x 2 placements x 2 mic tiers), replays it through one more
model, analyses it and prints the findings and the report's path.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from testbed.cli.common import console, err_console, make_progress, print_json

#: Zoo variants of the LM architecture the demo needs; the last one is the replay model.
VARIANTS = ("fp32", "lowrank", "int8", "int4")
FAST_VARIANTS = ("fp32", "lowrank", "int8")


def demo_plan(fast: bool, live_models: list[str], seed: int = 1) -> dict:
    """The demo's plan as a TOML-ready mapping (see DESIGN.md, "Plan file")."""
    if fast:
        labels, per_label, eps, steps, ota_steps, delays = ["yes", "no"], 1, [0.05], 3, 2, [0, 100]
    else:
        labels = ["yes", "no", "up", "down", "left", "right"]
        per_label, eps, steps, ota_steps, delays = 2, [0.01, 0.05], 20, 10, [0, 100, 250]
    src = "lm-fp32"
    return {
        "name": "demo-fast" if fast else "demo",
        "seed": seed,
        "repetitions": 1,
        "description": "testbed demo: clean vs FGSM vs PGD vs over-the-air PGD on the simulated office",
        "utterances": {"source": "synthetic", "labels": labels, "per_label": per_label},
        "attacks": [
            {"kind": "none"},
            {"kind": "fgsm", "eps": eps, "source_model": src},
            {"kind": "pgd", "eps": eps, "steps": steps, "source_model": src},
            {"kind": "pgd", "eps": eps, "steps": ota_steps, "source_model": src, "over_the_air": True},
        ],
        "sweep": {"delay_ms": delays, "delay_reference": "playback", "placements": ["P1", "P2"],
                  "mics": ["ref", "cheap"]},
        "evaluate": {"models": live_models},
        "timing": {"preroll_s": 0.1, "tail_s": 0.2},
    }


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

    Finishes in under 10 minutes on 2 CPU cores (seconds with --fast).

    Example: testbed demo --out demo-out
    """
    import tomli_w
    import torch

    from testbed.analysis import build_report, load_sessions
    from testbed.models import Zoo, build_zoo
    from testbed.session import Runner, TrialEvent, create_session, open_runner_parts, replay_session
    from testbed.workspace import assets_dir

    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rig_path = assets_dir() / "rigs" / "office-sim.toml"
    models_root = models_dir or out / "models"
    sessions_root = out / "sessions"
    variants = FAST_VARIANTS if fast else VARIANTS
    names = [f"lm-{v}" for v in variants]
    if fast:
        live, replay_model = ["lm-fp32", "lm-int8"], "lm-lowrank"
    else:
        live, replay_model = ["lm-fp32", "lm-lowrank", "lm-int8"], "lm-int4"
    progress = make_progress(disable=json_out)

    with progress:
        zoo = Zoo(models_root)
        missing = [n for n in names if not zoo.exists(n)]
        if missing:
            task = progress.add_task(f"training zoo ({', '.join(names)})", total=None)

            def on_build(desc: str, done: int, total: int) -> None:
                progress.update(task, description=f"zoo: {desc}", completed=done, total=total)

            extra = {"steps": 80, "finetune_steps": 20, "batch_size": 32} if fast else {}
            build_zoo(["lm"], list(variants), data="synthetic", quick=True, root=models_root, seed=0,
                      progress=on_build, **extra)
        timings["zoo_s"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        plan_path = out / "sessions" / "plans" / f"{'demo-fast' if fast else 'demo'}.toml"
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        plan_path.write_bytes(tomli_w.dumps(demo_plan(fast, live, seed)).encode())
        store = create_session(plan_path, rig_path, root=sessions_root, models_root=models_root)
        with store:
            rig, plan, models, calibration = open_runner_parts(store, models_root)
            craft = progress.add_task("crafting perturbations", total=None)
            trials = progress.add_task("running trials", total=None)

            def on_event(ev) -> None:
                if isinstance(ev, TrialEvent):
                    progress.update(trials, completed=ev.stats.done, total=ev.stats.total)
                elif isinstance(ev, tuple):
                    _, done, total = ev
                    progress.update(craft, completed=done, total=max(total, 1))

            result = Runner(store, rig, plan, models, calibration=calibration, on_event=on_event).run()
            sid, spath = store.session_id, store.path
        timings["session_s"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        rep_task = progress.add_task(f"replaying through {replay_model}", total=None)
        replay_session(spath, [replay_model], models_root=models_root,
                       progress=lambda d, n: progress.update(rep_task, completed=d, total=n))
        timings["replay_s"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        an_task = progress.add_task("analysing", total=None)
        data = load_sessions([spath])
        report = build_report(data, out / "analysis" / sid, ["attack", "eps"],
                              progress=lambda d, n: progress.update(an_task, completed=d, total=n))
        timings["analysis_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0

    if json_out:
        print_json({"session": sid, "session_dir": spath, "run": result.reason,
                    "live_models": live, "replay_model": replay_model,
                    "report": report.html_path, "summary": report.summary_path,
                    "findings": report.findings, "timings": timings})
        return
    console.print(f"[bold]session[/bold] {sid} ({result.reason}): {spath}")
    console.print(f"[bold]Findings[/bold] (live: {', '.join(live)}; replayed through {replay_model})")
    for f in report.findings:
        console.print(f"  - {f['text']}")
    console.print(f"[bold]report[/bold]: {report.html_path}")
    err_console.print(f"demo finished in {timings['total_s']:.0f} s "
                      f"(zoo {timings['zoo_s']:.0f} s, session {timings['session_s']:.0f} s, "
                      f"replay {timings['replay_s']:.0f} s, analysis {timings['analysis_s']:.0f} s)")
