"""`testbed positioner ...`: the motorised (GRBL) positioner that moves a speaker between placements."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, make_progress, print_json

app = typer.Typer(help="The GRBL positioner that moves a speaker between placements.", no_args_is_help=True)


@app.command("check")
def check(
    rig_path: Path = typer.Argument(..., help="rig TOML file with a [positioner] section", show_default=False),
    home: bool = typer.Option(False, "--home", help="run the homing cycle ($H) first"),
    tour: bool = typer.Option(False, "--tour", help="visit every placement of the carried speaker, then its rig position"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Talk to the rig's positioner: status, optional homing, optional tour of the placements.

    Example: testbed positioner check rigs/lab-gantry.toml --home --tour
    """
    from testbed.errors import RigError
    from testbed.rig import load_rig
    from testbed.serial import Positioner

    rig = load_rig(rig_path)
    cfg = rig.positioner
    if cfg is None:
        raise RigError(f"{rig_path}: positioner: the rig has no [positioner] section (port = ...)")
    stops = [(p, moves[cfg.speaker]) for p, moves in rig.placements.items() if cfg.speaker in moves]
    stops.append(("(rig position)", rig.speakers[cfg.speaker].position_m))
    report: dict = {"rig": rig.name, "port": cfg.port, "speaker": cfg.speaker, "homed": False, "visited": []}
    with Positioner.open(cfg, rig.room.size_m) as pos:
        report["status"] = pos.last_status.as_dict() if pos.last_status else None
        if home:
            pos.home()
            report["homed"] = True
        if tour:
            with make_progress(disable=json_out) as bar:
                task = bar.add_task(f"moving {cfg.speaker}", total=len(stops))
                for name, (x, y, _z) in stops:
                    pos.move_to(x, y)
                    st = pos.status()
                    report["visited"].append({"placement": name, "target_m": [x, y],
                                              "reported_m": [st.x_m, st.y_m]})
                    bar.advance(task)
        report["final"] = pos.status().as_dict()
    if json_out:
        print_json(report)
        return
    first = report["status"] or {}
    console.print(f"[green]ok[/green] positioner on {cfg.port} ({cfg.baud} baud) carries {cfg.speaker!r}; "
                  f"state at connect: {first.get('state', '?')}")
    if home:
        console.print("homed ($H)")
    for v in report["visited"]:
        console.print(f"  {v['placement']}: target ({v['target_m'][0]:.3f}, {v['target_m'][1]:.3f}) m, "
                      f"reported ({v['reported_m'][0]:.3f}, {v['reported_m'][1]:.3f}) m")
    fin = report["final"]
    where = f" at ({fin['x_m']:.3f}, {fin['y_m']:.3f}) m" if fin["x_m"] is not None else ""
    console.print(f"final state: {fin['state']}{where}")
