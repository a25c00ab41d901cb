"""`testbed study paper`: the paper's whole study as one resumable command."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, err_console, make_progress, print_json, split_csv

app = typer.Typer(help="Resumable studies on the zoo, reported against the paper's claims.", no_args_is_help=True)


@app.command("paper")
def paper(
    quick: bool = typer.Option(False, "--quick", help="the smoke grid: 16 clips per cell, two bounds, short "
                                                      "attacks (minutes on a tiny zoo)"),
    data: str = typer.Option(None, "--data", help="ambient:PATH runs the grid on a scene data set (its zoo is "
                                                  "built under the zoo folder the first time)"),
    root: Path = typer.Option(None, "--root", envvar="TESTBED_MODELS_DIR",
                              help="zoo folder (default: env TESTBED_MODELS_DIR or ./models)"),
    out: Path = typer.Option(None, "--out", "-o", help="study folder (default analysis/study-paper; "
                                                       "-ambient with --data ambient:..., -quick with --quick)"),
    only: str = typer.Option(None, "--only", help="only these figures' cells, e.g. fig6,fig7 (fig9 reads "
                             "fig4's); every model of the grid is still recorded and archived"),
    cluster: str = typer.Option("none", "--cluster", help="none | local[:N] | tcp://host:8786: compute cells as "
                                                          "Dask tasks (this process stores every result)"),
    report_only: bool = typer.Option(False, "--report-only",
                                     help="write the report from the cells already stored and compute none "
                                          "(while other processes or machines compute the rest)"),
    new_weights: bool = typer.Option(False, "--new-weights",
                                     help="measure zoo models whose weights differ from those the stored cells "
                                          "were computed on (the study folder's zoo.json); without it that is "
                                          "an error, so a retrained or --quick model never silently replaces "
                                          "the real one's results"),
    json_out: bool = typer.Option(False, "--json", help="print the run's counts and the report path as JSON"),
) -> None:
    """Run the grid behind the paper's Figures 4-9 and its defence claim (ETE / LM / LMS x fp32 /
    lowrank / INT16 / INT8 / INT4 x FGSM / PGD / APGD / NES / Square x eps, delay, transfer,
    ensemble size, SLR against the baselines, the certified baseline), and write
    report.html with one figure per paper figure and a "paper says / we measure" table.

    Every finished cell is stored at once, so an interrupted study (Ctrl-C, a crash, the end of
    a working day) resumes where it stopped; LM cells come first; the report marks unfinished
    cells. The cells, zoo.json (the weights they were computed on) and a copy of those weights
    (weights/) are committed with the docs that cite them: a clean clone without the zoo reports
    them with --report-only, and a run restores the exact models before computing more.

    Example: testbed study paper --quick

    Example (a report of what is stored so far): testbed study paper --report-only
    """
    from testbed.models.zoo import default_root
    from testbed.scale import open_client, parse_cluster
    from testbed.study import study_paper
    from testbed.study.tasks import CellExecutor

    ambient = bool(data and data.startswith("ambient:"))
    out = out or Path("analysis") / ("study-paper" + ("-ambient" if ambient else "") + ("-quick" if quick else ""))
    spec = parse_cluster(cluster)
    stop = {"now": False}
    with open_client(spec) as client, make_progress(disable=json_out) as progress:
        task = progress.add_task("study cells", total=None)
        build = progress.add_task("scene zoo", total=None, visible=False)

        def on_cell(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=f"cells: {what}"[:60])

        def on_build(desc: str, done: int, total: int) -> None:
            progress.update(build, visible=True, completed=done, total=total, description=desc[:40])

        try:
            res = study_paper(models_root=root or default_root(), out_dir=out, quick=quick, data=data,
                              only=split_csv(only) or None,
                              progress=on_cell, should_stop=lambda: stop["now"],
                              executor=CellExecutor(client) if client is not None else None,
                              build_progress=on_build, report_only=report_only, new_weights=new_weights)
        except KeyboardInterrupt:
            stop["now"] = True
            err_console.print("interrupted: finished cells are stored; run the same command to resume")
            raise typer.Exit(130) from None
    if json_out:
        print_json(res.as_dict())
        return
    if res.restored:
        err_console.print(f"restored from the study's copy of the weights: {', '.join(res.restored)}")
    if res.weights_changed:
        err_console.print(f"reported from the recorded weights, not the zoo's: {', '.join(res.weights_changed)}")
    if res.not_in_zoo:
        err_console.print(f"not in the zoo (stored cells reported, none computed): {', '.join(res.not_in_zoo)}")
    r = res.run
    console.print(f"{r.cached + r.computed} of {r.total} cells finished ({r.cached} stored before, {r.computed} now"
                  f"{', ' + str(len(r.failed)) + ' failed' if r.failed else ''}; {r.undone} unfinished) in "
                  f"{r.seconds:.0f} s")
    console.print(f"report: {res.report}")
