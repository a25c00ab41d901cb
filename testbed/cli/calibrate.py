"""`testbed calibrate RIG`: latency, response, level and drift -> calibration/<rig>/profile.toml."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, make_progress, print_json, split_csv


def calibrate(
    rig_path: Path = typer.Argument(..., help="rig TOML file, e.g. rigs/jack-loopback.toml", show_default=False),
    what: str = typer.Option("latency,response,level,drift", "--what", "-w",
                             help="comma-separated: latency, response, level, drift, spl (an acoustic "
                                  "calibrator on each mic in turn; not in the default)"),
    mode: str = typer.Option("acoustic", "--mode",
                             help="acoustic (speakers into the room) | loopback (outputs cabled to inputs)"),
    repeats: int = typer.Option(3, "--repeats", "-r", help="latency repetitions (spread is reported)"),
    out: Path = typer.Option(None, "--out", "-o", help="output folder (default calibration/<rig name>/)"),
    seed: int = typer.Option(0, "--seed", help="simulator seed (sim rigs)"),
    json_out: bool = typer.Option(False, "--json", help="print the results as JSON (latency per path: latency_samples)"),
    write_rig: Path = typer.Option(None, "--write-rig",
                                   help="also write a measured-room twin rig (TOML) whose paths are the profile's "
                                        "impulse responses (needs --what response, now or before)"),
    calibrator_db: float = typer.Option(94.0, "--calibrator-db",
                                        help="spl: the calibrator's level, dB SPL (94 or 114)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="spl: do not prompt before each mic (scripts)"),
) -> None:
    """Measure a rig: latency per path (sweep + GCC-PHAT), Farina response (CSV + PNG), level, clock drift.

    Every measurement is framed by sync clicks; a dropout fails it (exit 2). The profile is
    what the hardware backends and the session runner use to align captures and delays.

    With --what spl, hold a 94 dB (or --calibrator-db 114) calibrator on each mic when asked:
    its dBFS at 94 dB SPL is stored, and sessions then report levels in dB SPL.

    Example: testbed calibrate rigs/jack-loopback.toml --what latency --mode loopback --json
    """
    from rich.table import Table

    from testbed.calibration import calibrate as run_calibration
    from testbed.calibration import steps
    from testbed.rig import load_rig

    rig = load_rig(rig_path)
    whats = split_csv(what)
    with make_progress(transient=True, disable=json_out) as progress:
        from testbed.calibration.run import MEASUREMENTS, ON_REQUEST

        def prompt_mic(mic: str) -> str:
            progress.stop()
            answer = typer.prompt(f"Put the {calibrator_db:g} dB calibrator on mic {mic!r} and switch it on: "
                                  f"[o]k, [s]kip, [q]uit", default="o", err=True).strip().lower()[:1]
            progress.start()
            return {"s": "skip", "q": "quit"}.get(answer, "ok")

        total = steps(rig, [w for w in whats if w in MEASUREMENTS + ON_REQUEST], max(repeats, 1))
        task = progress.add_task(f"calibrating {rig.name}", total=total)
        run = run_calibration(rig, what=whats, mode=mode, repeats=repeats, out_dir=out, seed=seed,
                              progress=lambda label: progress.update(task, advance=1, description=label),
                              calibrator_db=calibrator_db, prompt_mic=None if yes else prompt_mic)
    if write_rig is not None:
        run.results["measured_rig"] = str(_write_measured_rig(rig, run, write_rig))
    if json_out:
        print_json(run.results)
        return
    p = run.profile
    t = Table(title=f"calibration of {rig.name} ({rig.backend}, {p.mode})")
    for col in ("path", "latency samples", "spread", "level dBFS", "THD %"):
        t.add_column(col, justify="left" if col == "path" else "right")
    for spk in rig.speakers:
        for mic in rig.mics:
            k = f"{spk}->{mic}"
            lat = p.latency_samples.get(k)
            t.add_row(k, "" if lat is None else f"{lat:.3f}",
                      "" if k not in p.latency_spread_samples else f"{p.latency_spread_samples[k]:.3f}",
                      "" if k not in p.level_dbfs else f"{p.level_dbfs[k]:.1f}",
                      "" if k not in p.thd_percent else f"{p.thd_percent[k]:.2f}")
    console.print(t)
    if p.device_latency_samples:
        console.print("device latency per mic (samples): "
                      + ", ".join(f"{m} {v:.3f}" for m, v in p.device_latency_samples.items()))
    if p.drift_ppm:
        console.print("clock drift per mic (ppm): " + ", ".join(f"{m} {v:+.1f}" for m, v in p.drift_ppm.items()))
    if p.spl_dbfs_at_94:
        console.print("dBFS at 94 dB SPL per mic: " + ", ".join(f"{m} {v:.2f}" for m, v in p.spl_dbfs_at_94.items()))
    if p.mic_sensitivity_db:
        console.print("mic sensitivity re reference (dB): "
                      + ", ".join(f"{m} {v:+.1f}" for m, v in p.mic_sensitivity_db.items()))
    console.print(f"wrote {run.files[0]}" + (f" and {len(run.files) - 1} response files" if len(run.files) > 1 else ""))
    if write_rig is not None:
        console.print(f"wrote {write_rig}: measured-room twin of {rig.name} (its paths are the measured IRs)")


def _write_measured_rig(rig, run, out: Path) -> Path:
    """Write the measured-room twin of ``rig`` from the profile's IRs to ``out`` and check it loads."""
    from testbed.calibration.irs import measured_rig_toml
    from testbed.errors import CalibrationError
    from testbed.fileio import atomic_write
    from testbed.rig import load_rig

    if not run.profile.ir_wav:
        raise CalibrationError(f"--write-rig: the profile of {rig.name} has no impulse responses; "
                               "run testbed calibrate with --what response")
    profile_folder = run.files[0].parent
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, measured_rig_toml(rig, profile_folder, out))
    load_rig(out)
    return out
