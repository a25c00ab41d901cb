"""`testbed session ...`: plan (dry run), run, resume, status, list, replay, import-folder, export."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from testbed.cli.common import console, err_console, make_progress, print_json, split_csv

app = typer.Typer(help="Sessions: run a plan on a rig, resume, replay, export.", no_args_is_help=True)

PlanArg = typer.Argument(..., help="plan TOML file, e.g. sessions/plans/quick-sim.toml", show_default=False)
IdArg = typer.Argument(..., help="session id (see 'testbed session list') or session folder", show_default=False)
RigOpt = typer.Option(..., "--rig", "-r", help="rig TOML file, e.g. rigs/office-sim.toml", show_default=False)
DirOpt = typer.Option(None, "--sessions-dir", help="sessions root (default: $TESTBED_SESSIONS_DIR or ./sessions)")
ModelsOpt = typer.Option(None, "--models-dir", help="model zoo root (default: $TESTBED_MODELS_DIR or ./models)")
ClusterOpt = typer.Option("none", "--cluster", help="where compute runs: none (this process) | local[:N] (N worker "
                          "processes) | tcp://host:8786 (a running Dask scheduler); session run: simulated rigs only")


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@app.command("plan")
def plan_cmd(
    plan_path: Path = PlanArg,
    rig_path: Path = RigOpt,
    models_dir: Path = ModelsOpt,
    json_out: bool = typer.Option(False, "--json", help="print the estimate as JSON"),
) -> None:
    """Dry run: validate a plan against a rig and the zoo, and estimate trials, time and disk.

    Example: testbed session plan sessions/plans/delay-sweep.toml --rig rigs/office-sim.toml
    """
    from testbed.errors import SessionError
    from testbed.rig import load_rig
    from testbed.session import check_plan, estimate_plan, load_plan
    from testbed.session.deps import Models, attack_kinds, attack_param_names, attack_param_problem

    plan = load_plan(plan_path)
    rig = load_rig(rig_path)
    try:
        labels = Models(models_dir).labels()
    except SessionError:
        labels = None
    check_plan(plan, rig, labels or None, attack_kinds(), attack_param_names(), attack_param_problem)
    est = estimate_plan(plan, rig)
    if json_out:
        print_json({"plan": plan.name, "rig": rig.name, "zoo_checked": bool(labels), **est.as_dict()})
        return
    console.print(f"[green]ok[/green] {plan_path}: plan {plan.name!r} on rig {rig.name!r} ({rig.backend})"
                  + ("" if labels else " [yellow](zoo empty: models not checked)[/yellow]"))
    console.print(f"  trials               {est.trials}  ({est.placements} placement(s), "
                  f"{est.placement_changes} move(s))")
    console.print(f"  captures             {est.captures}  (mics: {', '.join(est.mics)})")
    console.print(f"  evaluations          {est.evaluations}  (models: {', '.join(est.models)})")
    console.print(f"  perturbations        {est.perturbations} to craft")
    console.print(f"  audio                {_fmt_s(est.audio_s)}  ({est.record_s_per_trial:.2f} s per trial)")
    if rig.is_physical:
        console.print(f"  settle               {_fmt_s(est.settle_s)}")
    console.print(f"  estimated duration   {_fmt_s(est.duration_s)}  (compute {_fmt_s(est.compute_s)})")
    console.print(f"  disk                 {est.disk_bytes / 1e6:.1f} MB")


class _Stopper:
    """First Ctrl-C: finish the current trial and stop. Second: discard it and stop now."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> "_Stopper":
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        err_console.print("[yellow]stopping after the current trial (Ctrl-C again to discard it)[/yellow]")

    def __exit__(self, *exc) -> None:
        if self.requested:
            # the run is stopping and exits 130 right after printing the resume command; a
            # second press that arrives in between must not kill it half-way through that
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, self._old or signal.default_int_handler)


def _cluster_spec(cluster: str, rig) -> object:
    """Parse ``--cluster``; a physical rig refuses anything but none."""
    from testbed.errors import SessionError
    from testbed.scale import parse_cluster

    spec = parse_cluster(cluster)
    if not spec.is_none and rig.is_physical:
        raise SessionError(f"--cluster {cluster}: rig {rig.name!r} is physical ({rig.backend}): its trials run "
                           f"where the speakers are; use --cluster none (craft ahead with 'testbed attack craft "
                           f"PLAN --rig RIG --cluster {cluster}')")
    return spec


def _live_run(store, models_dir: Path | None, json_out: bool, quiet: bool, cluster: object = "none",
              allow_new_models: bool = False) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    from testbed.session import RunEvent, Runner, open_runner_parts

    rig, plan, models, calibration = open_runner_parts(store, models_dir, allow_new_models=allow_new_models)
    progress = make_progress(disable=quiet)
    craft_task = None
    task = progress.add_task("trials", total=None)
    state = {"line": "", "table": Table()}

    def render() -> Group:
        return Group(progress, state["table"], state["line"])

    def on_event(ev: RunEvent) -> None:
        nonlocal craft_task
        if ev.kind == "craft":
            if ev.total and craft_task is None:
                craft_task = progress.add_task("crafting", total=ev.total)
            if craft_task is not None:
                progress.update(craft_task, completed=ev.done)
            return
        if ev.kind in ("retry", "pause", "resume"):   # pause / resume: why it waits (issue 23's suspenders)
            state["line"] = Text(f"trial {ev.trial_id}: attempt {ev.attempt} again ({ev.message})" if ev.kind == "retry"
                                 else ev.message if ev.kind == "resume" else f"paused: {ev.message}", no_wrap=True)
            live.update(render())
            return
        if ev.kind != "trial":
            return   # start / failure / stop: the store's log and the final summary say it
        progress.update(task, total=ev.total, completed=ev.done)
        t = Table(box=None, show_header=True, pad_edge=False)
        t.add_column("model")
        t.add_column(f"error rate on {rig.dut.mic}", justify="right")
        for m in plan.eval_models(rig):
            r = ev.error_rate(m)
            t.add_row(m, "-" if r is None else f"{100 * r:.1f}%")
        state["table"] = t
        state["line"] = Text(f"trial {ev.trial_id}: {ev.label} / {ev.attack} / {ev.delay_ms:g} ms / "
                             f"{ev.placement or 'default'}  ->  "
                             + ", ".join(f"{m}={p}" for m, p in ev.predictions.items())
                             + f"   xruns {ev.xruns}  clipped {ev.clipped_trials}  failed {ev.failed_trials}",
                             no_wrap=True, overflow="ellipsis")
        live.update(render())

    def prompt_move(req) -> str:
        live.stop()
        try:
            while True:
                ans = console.input(f"[bold]{req.describe()}.[/bold] Press Enter when done, s to skip, q to stop: ")
                ans = ans.strip().lower()
                if ans in ("", "y", "ok"):
                    return "ok"
                if ans in ("s", "skip"):
                    return "skip"
                if ans in ("q", "quit"):
                    return "quit"
        finally:
            live.start()

    done0 = store.status(verify=False)
    progress.update(task, total=done0["total"], completed=done0["done"])
    import contextlib

    class _Quiet:
        def update(self, *a) -> None: ...
        def start(self) -> None: ...
        def stop(self) -> None: ...

    view = contextlib.nullcontext(_Quiet()) if quiet else Live(render(), console=err_console,
                                                                refresh_per_second=4, transient=False)
    from testbed.scale import PerturbationCache, open_executor

    with _Stopper() as stopper, open_executor(cluster) as executor, view as live:
        if executor is not None and executor.dashboard and not json_out:
            err_console.print(f"Dask dashboard: {executor.dashboard}")
        runner = Runner(store, rig, plan, models, calibration=calibration, prompt_move=prompt_move,
                        on_event=on_event, should_stop=lambda: stopper.requested, executor=executor,
                        craft_cache=PerturbationCache())
        try:
            result = runner.run()
        except KeyboardInterrupt:
            live.stop()
            err_console.print(f"interrupted: the current trial was discarded; resume with: "
                              f"testbed session resume {store.session_id}")
            raise typer.Exit(130) from None
    if not quiet and not err_console.is_terminal:
        err_console.print()   # Live leaves its last line open when it is not drawing on a terminal
    st = store.status(verify=False)
    if json_out:
        print_json({"id": store.session_id, "reason": result.reason,
                    **{k: st[k] for k in ("done", "total", "failed", "last_error")},
                    "store_s": result.stats.store_s, "audio_s": result.stats.audio_s})
    else:
        console.print(f"session {store.session_id}: {st['done']}/{st['total']} trials done, "
                      f"{st['failed']} failed ({result.reason})")
    if st["done"] < st["total"]:
        err_console.print(f"resume with: testbed session resume {store.session_id}")
    if result.reason == "stopped":
        raise typer.Exit(130)


@app.command("run")
def run_cmd(
    plan_path: Path = PlanArg,
    rig_path: Path = RigOpt,
    session_id: str = typer.Option(None, "--id", help="session id (default: <plan name>-<date>-<time>)"),
    sessions_dir: Path = DirOpt,
    models_dir: Path = ModelsOpt,
    json_out: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live view"),
    cluster: str = ClusterOpt,
    tag: list[str] = typer.Option(None, "--tag", help="KEY=VALUE stored with the session (repeatable); "
                                  "find it later with 'testbed session list --tag KEY=VALUE'"),
    watch: bool = typer.Option(False, "--watch", help="serve the live web monitor (127.0.0.1:8765) beside the run"),
) -> None:
    """Run a plan on a rig: craft perturbations, play, record, evaluate, store (resumable).

    Example: testbed session run sessions/plans/quick-sim.toml --rig rigs/office-sim.toml --cluster local:2
    """
    from testbed.cli.watch import watching
    from testbed.rig import load_rig
    from testbed.session import create_session
    from testbed.session.catalogue import parse_tags

    tags = parse_tags(tag)
    spec = _cluster_spec(cluster, load_rig(rig_path))
    store = create_session(plan_path, rig_path, root=sessions_dir, session_id=session_id, models_root=models_dir,
                           tags=tags)
    if not json_out:
        console.print(f"session {store.session_id} created in {store.path}")
    with store, watching(store.path if watch else None):
        _live_run(store, models_dir, json_out, quiet, spec)


@app.command("resume")
def resume_cmd(
    session: str = IdArg,
    sessions_dir: Path = DirOpt,
    models_dir: Path = ModelsOpt,
    json_out: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live view"),
    cluster: str = ClusterOpt,
    allow_new_models: bool = typer.Option(False, "--allow-new-models",
                                          help="go on although the zoo's weights differ from those the session "
                                               "was created with (recorded as an event in the session)"),
) -> None:
    """Continue a session where it stopped (even after kill -9); a running, paused one is told to go on.

    Example: testbed session resume quick-sim-20250101-120000
    """
    from testbed.session import SessionStore, resume_running, stored_rig_plan

    if resume_running(session, sessions_dir, console.print):   # paused by suspenders, resume = "manual"
        return
    with SessionStore.open(session, sessions_dir) as store:
        spec = _cluster_spec(cluster, stored_rig_plan(store)[0]) if cluster.strip().lower() != "none" else "none"
        _live_run(store, models_dir, json_out, quiet, spec, allow_new_models)


@app.command("status")
def status_cmd(
    session: str = IdArg,
    sessions_dir: Path = DirOpt,
    json_out: bool = typer.Option(False, "--json", help="JSON with keys done, total, failed, last_error"),
) -> None:
    """Progress of a session, and any capture whose FLAC is missing or corrupted.

    Example: testbed session status quick-sim-20250101-120000 --json
    """
    from testbed.session import SessionStore

    with SessionStore.open(session, sessions_dir, readonly=True) as store:
        st = store.status()
    if json_out:
        print_json(st)
        return
    console.print(f"session {st['id']} (plan {st['plan']}, rig {st['rig']}): {st['done']}/{st['total']} "
                  f"trials done, {st['failed']} failed, {st['evaluations']} evaluations, state {st['state']}")
    if st["last_error"]:
        console.print(f"  last error: {st['last_error']}")
    for c in st["corrupted"]:
        console.print(f"  [red]corrupted[/red] trial {c['trial_id']} mic {c['mic']}: {c['path']}: {c['problem']}")


@app.command("replay")
def replay_cmd(
    session: str = IdArg,
    models: str = typer.Option(..., "--models", "-m", show_default=False,
                               help="comma-separated zoo models; NAME@kN evaluates a stochastic ensemble "
                                    "drawing N members (lm-slr8@k1,lm-slr8@k4: the ensemble-size curve)"),
    mics: str = typer.Option(None, "--mics", help="comma-separated mics (default: every recorded mic)"),
    sessions_dir: Path = DirOpt,
    models_dir: Path = ModelsOpt,
    json_out: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
    cluster: str = typer.Option("none", "--cluster", help="none (this process) | local[:N] | tcp://host:8786"),
) -> None:
    """Re-evaluate the recorded captures offline with other models (appends; never alters recordings).

    Example: testbed session replay quick-sim-20250101-120000 --models lm-slr8,lm-int4 --cluster local:2

    Example: testbed session replay ID --models lm-slr8@k1,lm-slr8@k2,lm-slr8@k4,lm-slr8@k8 --mics cheap
    """
    from testbed.scale import open_executor, parse_cluster
    from testbed.session import replay_session

    spec = parse_cluster(cluster)
    with open_executor(spec) as executor, make_progress(transient=True, disable=json_out) as progress:
        if executor is not None and executor.dashboard and not json_out:
            err_console.print(f"Dask dashboard: {executor.dashboard}")
        task = progress.add_task("replay", total=None)
        res = replay_session(session, split_csv(models), mics=split_csv(mics) or None, models_root=models_dir,
                             root=sessions_dir, progress=lambda d, n: progress.update(task, completed=d, total=n),
                             executor=executor)
    if json_out:
        print_json(res.as_dict())
        return
    if res.evaluations == 0 and res.already:
        console.print(f"already replayed: 0 new rows ({res.already} evaluations by "
                      f"{', '.join(split_csv(models))} were recorded before)")
    else:
        console.print(f"added {res.evaluations} evaluations ({res.captures} captures, "
                      f"{res.audio_s:.1f} s of audio per model)"
                      + (f"; {res.already} already recorded" if res.already else ""))
    for s in res.skipped:
        console.print(f"  [yellow]skipped[/yellow] trial {s['trial_id']} mic {s['mic']}: {s['path']}: {s['problem']}")


@app.command("import-folder")
def import_cmd(
    folder: Path = typer.Argument(..., help="folder of WAV/FLAC captures", show_default=False),
    csv_path: Path = typer.Option(None, "--csv", help="metadata CSV (default: FOLDER/metadata.csv)"),
    session_id: str = typer.Option(None, "--id", help="session id (default: import-<folder>-<date>)"),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="rate the captures are stored at, Hz"),
    sessions_dir: Path = DirOpt,
    json_out: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
) -> None:
    """Bring recordings made elsewhere into a session (CSV columns: file, label, and optional
    trial, mic, utterance_id, attack, eps, target, source_model, delay_ms, placement, repetition).

    Example: testbed session import-folder field-recordings/ --csv field-recordings/metadata.csv
    """
    from testbed.session import import_folder

    store = import_folder(folder, csv_path, root=sessions_dir, session_id=session_id, sample_rate=sample_rate)
    with store:
        st = store.status(verify=False)
    if json_out:
        print_json({"id": store.session_id, "path": str(store.path), "trials": st["done"]})
        return
    console.print(f"imported {st['done']} trials into session {store.session_id} ({store.path}); "
                  f"evaluate them with: testbed session replay {store.session_id} --models ...")


@app.command("export")
def export_cmd(
    session: str = IdArg,
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet or csv"),
    out: Path = typer.Option(None, "-o", "--out", help="output file (default: <id>.<format>)"),
    sessions_dir: Path = DirOpt,
    json_out: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
) -> None:
    """Write one row per evaluation with all trial metadata (parquet or CSV).

    Example: testbed session export quick-sim-20250101-120000 --format csv -o evals.csv
    """
    from testbed.session import export_session
    from testbed.session.store import resolve_session

    path, n = export_session(resolve_session(session, sessions_dir), fmt, out)
    if json_out:
        print_json({"path": str(path), "rows": n})
        return
    console.print(f"wrote {n} rows to {path}")


def _register_list() -> None:
    from testbed.cli.session_list import list_cmd

    app.command("list")(list_cmd)


_register_list()
