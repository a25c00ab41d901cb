"""`testbed rig ...`: validate a rig, draw it, listen to it."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, print_json

app = typer.Typer(help="Rig files: check, map, listen, from-irs.", no_args_is_help=True)

RigArg = typer.Argument(..., help="rig TOML file, e.g. rigs/office-sim.toml", show_default=False)


@app.command("check")
def check(
    rig_path: Path = RigArg,
    placement: str = typer.Option(None, "--placement", "-p", help="apply a named placement"),
    json_out: bool = typer.Option(False, "--json", help="print the geometry as JSON"),
) -> None:
    """Validate a rig and print its geometry (distance, angle, direct-path delay per path).

    Example: testbed rig check rigs/office-sim.toml --placement P2
    """
    from rich.table import Table

    from testbed.acoustics.delivered import delivered_rt60_summary
    from testbed.errors import RigError
    from testbed.rig import load_rig, path_geometry

    rig = load_rig(rig_path)
    if placement is not None and placement not in rig.placements:
        raise RigError(f"{rig_path}: placements: no placement {placement!r} "
                       f"(have: {', '.join(rig.placements) or 'none'})")
    geo = path_geometry(rig, placement)
    measured = None
    if rig.room.model == "measured":
        from testbed.acoustics.measured import check_measured, measured_path_stats

        check_measured(rig)     # every file the rig names (IRs, room noise): RigError naming the file
        measured = measured_path_stats(rig, placement)
    rt60 = delivered_rt60_summary(rig, placement)
    if json_out:
        doc = {"rig": rig.name, "backend": rig.backend, "sample_rate": rig.sample_rate,
               "placement": placement, "paths": [g.as_dict() for g in geo]}
        if measured is not None:
            doc["measured"] = measured
        if rt60 is not None:
            doc["rt60"] = rt60
        print_json(doc)
        return
    console.print(f"[green]ok[/green] {rig_path}: rig {rig.name!r}, backend {rig.backend}, "
                  f"{rig.sample_rate} Hz, {len(rig.speakers)} speakers, {len(rig.mics)} mics, "
                  f"DUT mic {rig.dut.mic!r}, placements: {', '.join(rig.placements) or 'none'}")
    t = Table(title=f"geometry{f' (placement {placement})' if placement else ''}")
    for col in ("speaker", "mic", "distance m", "angle deg", "delay ms", "delay samples"):
        t.add_column(col, justify="right" if col[0] in "dae" else "left")
    for g in geo:
        t.add_row(g.speaker, g.mic, f"{g.distance_m:.3f}", f"{g.angle_deg:.1f}",
                  f"{g.delay_ms:.3f}", f"{g.delay_samples:.2f}")
    console.print(t)
    if measured is not None:
        _print_measured(measured, rig.room.irs)
    if rt60 is not None:
        _print_rt60(rt60)


def _print_measured(rows: list[dict], irs: str | None) -> None:
    """The measured paths: IR length, RT60 (T30, else T20), DRR and onset next to the geometric delay."""
    from rich.table import Table

    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    t = Table(title=f"measured impulse responses ({irs}); the onset is moved to the geometric delay")
    for col in ("speaker", "mic", "file", "length s", "RT60 s", "DRR dB", "energy dB", "onset ms", "geometric ms"):
        t.add_column(col, justify="left" if col in ("speaker", "mic", "file") else "right")
    for r in rows:
        t.add_row(r["speaker"], r["mic"], r["file"].rsplit("/", 1)[-1], f"{r['length_s']:.3f}",
                  num(r["rt60_s"], ".3f"), num(r["drr_db"], ".1f"), f"{r['energy_db']:.1f}", f"{r['onset_ms']:.2f}",
                  f"{r['geometric_delay_ms']:.2f}")
    console.print(t)


@app.command("from-irs")
def from_irs(
    folder: Path = typer.Argument(..., help="folder of <speaker>__<mic>[__<placement>].wav|flac files",
                                  show_default=False),
    out: Path = typer.Option(..., "-o", "--out", help="rig TOML to write"),
    name: str = typer.Option(None, "--name", help="rig name (default: the folder's name)"),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="the rig's rate, Hz; IRs are resampled to it"),
    force: bool = typer.Option(False, "--force", help="replace an existing rig file"),
) -> None:
    """Write a measured-room rig skeleton from a folder of impulse responses.

    Speakers, mics and placements come from the file names; positions and the room size are
    placeholders marked PLACEHOLDER that you must edit to where the IRs were measured.

    Example: testbed rig from-irs lab-irs/ -o rigs/lab-measured.toml
    """
    from testbed.acoustics.measured import skeleton_toml
    from testbed.errors import RigError
    from testbed.fileio import atomic_write
    from testbed.rig import load_rig

    if out.exists() and not force:
        raise RigError(f"{out}: already exists (use --force to replace it)")
    text = skeleton_toml(folder, out, name=name, sample_rate=sample_rate)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text)
    rig = load_rig(out)  # the skeleton must load: every IR file is read once here
    console.print(f"wrote {out}: rig {rig.name!r}, {len(rig.speakers)} speakers, {len(rig.mics)} mics, "
                  f"placements: {', '.join(rig.placements) or 'none'}; edit the PLACEHOLDER positions")


def _print_rt60(rt60: dict) -> None:
    """Print the delivered-RT60 lines of ``rig check`` (see :func:`_delivered_rt60`)."""
    def s(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"
    bands = ", ".join(f"{b} Hz {s(q)}/{s(d)}" for b, q, d in
                      zip(rt60["bands_hz"], rt60["requested_bands_s"], rt60["delivered_bands_s"]))
    miss = "n/a" if rt60["miss_pct"] is None else f"{rt60['miss_pct']:+.0f} %"
    verdict = ("[green]within[/green]" if rt60["within_tolerance"]
               else "[red]misses by more than[/red]")
    console.print(f"RT60 requested {s(rt60['requested_s'])} s, delivered {s(rt60['delivered_s'])} s "
                  f"(T30 on the simulated IRs, 500 Hz-1 kHz, mean of {len(rt60['paths'])} paths): "
                  f"{miss}, "
                  f"{verdict} {rt60['tolerance_pct']} %")
    console.print(f"RT60 per band, requested/delivered s: {bands}")
    for p in rt60["paths"]:
        if not p["within_tolerance"]:
            miss = "n/a" if p["miss_pct"] is None else f"{p['miss_pct']:+.0f} %"
            console.print(f"  path {p['speaker']} -> {p['mic']}: delivered {s(p['delivered_s'])} s, {miss} "
                          f"from the requested {s(p['requested_s'])} s")


@app.command("map")
def map_(
    rig_path: Path = RigArg,
    out: Path = typer.Option(..., "-o", "--out", help="PNG file to write"),
    placement: str = typer.Option(None, "--placement", "-p", help="draw with a named placement applied"),
) -> None:
    """Draw a top-down picture of room, speakers, mics and placements.

    Example: testbed rig map rigs/office-sim.toml -o office.png
    """
    from testbed.errors import RigError
    from testbed.rig import load_rig
    from testbed.rig.mapping import save_rig_map

    rig = load_rig(rig_path)
    if placement is not None and placement not in rig.placements:
        raise RigError(f"{rig_path}: placements: no placement {placement!r}")
    path = save_rig_map(rig, out, placement)
    console.print(f"wrote {path}")


@app.command("listen")
def listen(
    rig_path: Path = RigArg,
    out: Path = typer.Option(..., "--out", "-o", help="folder for one FLAC per mic"),
    placement: str = typer.Option(None, "--placement", "-p", help="apply a named placement"),
    seed: int = typer.Option(0, "--seed", help="seed of the noise burst and the simulator's noise"),
    json_out: bool = typer.Option(False, "--json", help="print levels and file paths as JSON"),
) -> None:
    """Play a test utterance (user speaker) and a noise burst (adversary); write each mic as FLAC.

    Example: testbed rig listen rigs/office-sim.toml --out listen/ --placement P2
    """
    from rich.table import Table

    from testbed.audio.listen import TEST_PHRASE, listen as listen_rig, spoken_phrase
    from testbed.calibration import load_profile
    from testbed.cli.common import make_progress
    from testbed.errors import RigError
    from testbed.rig import load_rig

    rig = load_rig(rig_path)
    if placement is not None and placement not in rig.placements:
        raise RigError(f"{rig_path}: placements: no placement {placement!r} "
                       f"(have: {', '.join(rig.placements) or 'none'})")
    # hardware captures are aligned with the rig's measured latency, when it has been calibrated
    calibration = load_profile(rig) if rig.is_physical else None
    with make_progress(transient=True, disable=json_out) as progress:
        task = progress.add_task(f"listening on {rig.backend}", total=2)
        utterance = spoken_phrase(rig.sample_rate, seed=seed)
        progress.advance(task)
        res = listen_rig(rig, out, utterance, calibration=calibration, placement=placement, seed=seed)
        progress.advance(task)
    if json_out:
        print_json(res.as_dict())
        return
    console.print(f"rig {rig.name!r} ({rig.backend}): user said {TEST_PHRASE!r} "
                  f"({res.utterance_s:.2f} s), adversary noise burst at {res.burst_start_s:.2f} s"
                  + (f", placement {placement}" if placement else ""))
    t = Table(title=f"captures in {out}")
    for col in ("mic", "tier", "peak dBFS", "rms dBFS", "clipped", "file"):
        t.add_column(col, justify="right" if col[0] in "prc" else "left")
    for m in res.mics:
        t.add_row(m.mic, m.tier, f"{m.peak_dbfs:.1f}", f"{m.rms_dbfs:.1f}", str(m.clipped_samples), str(m.path))
    console.print(t)
