"""`testbed rig ...`: validate a rig, draw it, listen to it."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, print_json

app = typer.Typer(help="Rig files: check, map, listen.", no_args_is_help=True)

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

    from testbed.errors import RigError
    from testbed.rig import load_rig, path_geometry

    rig = load_rig(rig_path)
    if placement is not None and placement not in rig.placements:
        raise RigError(f"{rig_path}: placements: no placement {placement!r} "
                       f"(have: {', '.join(rig.placements) or 'none'})")
    geo = path_geometry(rig, placement)
    rt60 = _delivered_rt60(rig, placement)
    if json_out:
        print_json({"rig": rig.name, "backend": rig.backend, "sample_rate": rig.sample_rate,
                    "placement": placement, "paths": [g.as_dict() for g in geo],
                    **({"rt60": rt60} if rt60 is not None else {})})
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
    if rt60 is not None:
        _print_rt60(rt60)


def _delivered_rt60(rig, placement: str | None) -> dict | None:
    """The simulator's delivered RT60 next to the requested one (sim rigs with a shoebox room only).

    ``{"requested_s", "delivered_s", "miss_pct", "within_tolerance", "tolerance_pct", "bands_hz",
    "requested_bands_s", "delivered_bands_s", "paths": [...]}``; the room's values are the means
    over every speaker -> mic path; None for a hardware or measured-room rig or an anechoic room.
    """
    import warnings

    import numpy as np

    from testbed.acoustics.delivered import RT60_TOLERANCE, delivered_rt60

    if rig.backend != "sim" or getattr(rig.room, "model", "shoebox") == "measured":
        return None
    paths = delivered_rt60(rig, placement)
    if not paths:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan band -> nan
        bands = np.nanmean([p.delivered_bands_s for p in paths], axis=0)
        mean = float(np.nanmean([p.delivered_s for p in paths]))
    req = paths[0].requested_s
    miss = (mean - req) / req
    ok = bool(np.isfinite(miss) and abs(miss) <= RT60_TOLERANCE)

    def r(v: float) -> float | None:
        return round(float(v), 3) if np.isfinite(v) else None
    return {"requested_s": r(req), "delivered_s": r(mean), "miss_pct": r(100 * miss), "within_tolerance": ok,
            "tolerance_pct": round(100 * RT60_TOLERANCE),
            "method": "T30 (T20 where the decay is short), mean of the 500 Hz and 1 kHz octave bands",
            "bands_hz": paths[0].as_dict()["bands_hz"],
            "requested_bands_s": [r(v) for v in paths[0].requested_bands_s],
            "delivered_bands_s": [r(v) for v in bands], "paths": [p.as_dict() for p in paths]}


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
    from testbed.cli.common import make_progress
    from testbed.errors import RigError
    from testbed.rig import load_rig

    rig = load_rig(rig_path)
    if placement is not None and placement not in rig.placements:
        raise RigError(f"{rig_path}: placements: no placement {placement!r} "
                       f"(have: {', '.join(rig.placements) or 'none'})")
    with make_progress(transient=True, disable=json_out) as progress:
        task = progress.add_task(f"listening on {rig.backend}", total=2)
        utterance = spoken_phrase(rig.sample_rate, seed=seed)
        progress.advance(task)
        res = listen_rig(rig, out, utterance, placement=placement, seed=seed)
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
