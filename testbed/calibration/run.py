"""``calibrate(rig, ...)``: run the measurements asked for and write calibration/<rig>/."""

from __future__ import annotations

import csv
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from testbed.audio import open_backend
from testbed.calibration.measure import (
    Progress,
    measure_drift,
    measure_latency,
    measure_level,
    measure_response,
)
from testbed.calibration.profile import CalibrationProfile, profile_dir, read_profile, save_profile, PROFILE_NAME
from testbed.errors import CalibrationError

if TYPE_CHECKING:
    from testbed.rig import Rig

MEASUREMENTS = ("latency", "response", "level", "drift")
#: Measurements run only when asked for (``--what spl`` needs a calibrator on each mic).
ON_REQUEST = ("spl",)
MODES = ("acoustic", "loopback")


@dataclass
class CalibrationRun:
    """What one ``calibrate`` call measured: the (merged) profile, a JSON-able summary, files written."""

    profile: CalibrationProfile
    results: dict
    files: list[Path] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def steps(rig: "Rig", what: tuple[str, ...] | list[str], repeats: int = 3) -> int:
    """Progress steps :func:`calibrate` reports, for a progress bar's total."""
    n = len(rig.speakers)
    per = {"latency": n * repeats, "response": n, "level": n, "drift": 1, "spl": len(rig.mics)}
    return sum(per[w] for w in what)


def _acoustic_delays(rig: "Rig", mode: str) -> dict[str, float]:
    from testbed.rig import path_geometry

    return {f"{g.speaker}->{g.mic}": (0.0 if mode == "loopback" else float(g.delay_samples))
            for g in path_geometry(rig, None)}


def _write_response(directory: Path, key: str, resp, sample_rate: int) -> list[Path]:
    """``response_<speaker>_<mic>.csv``: hz, dB, degrees (REW's text layout, comma-separated)."""
    from testbed.calibration.irs import phase_deg

    spk, mic = key.split("->")
    path = directory / f"response_{spk}_{mic}.csv"
    phase = phase_deg(resp, sample_rate)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["hz", "db", "deg"])
        for f, d, ph in zip(resp.freqs_hz, resp.response_db, phase):
            w.writerow([f"{f:.2f}", f"{d:.3f}", f"{ph:.2f}"])
    return [path]


def _keep_irs(directory: Path, rig: "Rig", prof: CalibrationProfile, captures: dict, mode: str) -> list[Path]:
    """Write each path's IR (device latency removed) and record its RT60 and DRR in ``prof``."""
    from testbed.calibration.irs import PathIr, extract_ir, path_stats, write_irs

    acoustic = _acoustic_delays(rig, mode)
    irs = {}
    for key, (seg, sw) in captures.items():
        mic = key.split("->")[1]
        if mic in prof.device_latency_samples:
            lat = prof.device_latency_samples[mic]
        else:  # no latency measurement: the sweep's arrival minus the path's travel time
            from testbed.calibration.gccphat import gcc_phat

            d, _ = gcc_phat(seg, sw.signal, rig.sample_rate, band_hz=(100.0, sw.f2_hz),
                            max_delay=int(0.25 * rig.sample_rate))
            lat = max(float(d) - acoustic[key], 0.0)
        irs[key] = PathIr(key, extract_ir(seg, sw, lat), rig.sample_rate, lat)
    n_ir = next(iter(irs.values())).ir.size if irs else 0
    for s in rig.speakers:  # an unwired loopback path: an all-zero IR keeps the folder complete
        for m in rig.mics:
            irs.setdefault(f"{s}->{m}", PathIr(f"{s}->{m}", np.zeros(n_ir), rig.sample_rate, 0.0))
    prof.ir_wav = write_irs(directory, irs)
    prof.rt60_s, prof.drr_db = path_stats(irs)
    return [directory / v for v in prof.ir_wav.values()]


def _plot_responses(directory: Path, rig_name: str, responses: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for spk in sorted({k.split("->")[0] for k in responses}):
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, r in responses.items():
            if key.startswith(spk + "->"):
                ax.semilogx(r.freqs_hz, r.response_db, label=f"{key} (THD {r.thd_percent:.1f}%)")
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("response (dB re wire)")
        ax.set_title(f"{rig_name}: speaker {spk}, Farina sweep")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        path = directory / f"response_{spk}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out.append(path)
    return out


def calibrate(
    rig: "Rig",
    *,
    what: tuple[str, ...] | list[str] = MEASUREMENTS,
    backend=None,
    out_dir: Path | str | None = None,
    mode: str = "acoustic",
    repeats: int = 3,
    seed: int = 0,
    drift_s: float = 4.0,
    progress: Progress | None = None,
    calibrator_db: float = 94.0,
    prompt_mic=None,
    stimulus=None,
) -> CalibrationRun:
    """Measure ``what`` on ``rig`` and write ``profile.toml`` (+ response CSV/PNG) to ``out_dir``.

    Parameters
    ----------
    rig : the rig.
    what : any of "latency", "response", "level", "drift".
    backend : an AudioBackend that does not compensate latency (default:
        ``testbed.audio.open_backend(rig, seed=seed, raw=True)``).
    out_dir : default ``calibration/<rig.name>/``; an existing profile there is updated, so
        ``--what level`` keeps the latency measured before.
    mode : "acoustic" (the rig's geometry gives each path's acoustic delay) or "loopback"
        (outputs wired to inputs: all measured latency is the device's).
    repeats : latency repetitions (the spread is reported).
    seed : the simulator's seed.
    drift_s : length of the drift measurement, seconds.
    progress : called with a short label after each trial.
    calibrator_db, prompt_mic, stimulus : ``spl`` only (see
        :func:`testbed.calibration.spl.measure_spl`): the calibrator's level in dB SPL, the
        per-mic prompt (None: no prompt, ``--yes``), what to play while each mic is recorded.

    Raises
    ------
    CalibrationError
        A measurement failed its checks (dropout, no signal); the others are still saved
        and the message names the failed ones and the profile path.
    """
    unknown = [w for w in what if w not in MEASUREMENTS + ON_REQUEST]
    if unknown:
        raise CalibrationError(f"--what: unknown measurement {', '.join(unknown)} "
                               f"(use {', '.join(MEASUREMENTS + ON_REQUEST)})")
    if mode not in MODES:
        raise CalibrationError(f"--mode: {mode!r} is not one of {', '.join(MODES)}")
    if repeats < 1:
        raise CalibrationError(f"--repeats: must be >= 1, got {repeats}")
    directory = Path(out_dir) if out_dir is not None else profile_dir(rig)
    old = directory / PROFILE_NAME
    prof = read_profile(old) if old.is_file() else None
    if prof is None or prof.rig != rig.name or int(prof.sample_rate) != rig.sample_rate:
        prof = CalibrationProfile(rig=rig.name, backend=rig.backend, sample_rate=rig.sample_rate)
    prof.backend = rig.backend
    prof.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    own = backend is None
    be = open_backend(rig, seed=seed, raw=True) if own else backend
    results: dict = {"rig": rig.name, "backend": rig.backend, "mode": mode}
    failures: dict[str, str] = {}
    files: list[Path] = []
    directory.mkdir(parents=True, exist_ok=True)
    try:
        for w in MEASUREMENTS + ON_REQUEST:
            if w not in what:
                continue
            try:
                if w == "spl":   # issue 23: dB SPL from an acoustic calibrator (calibration/spl.py)
                    from testbed.calibration.spl import calibrate_spl

                    calibrate_spl(be, rig, prof, results, calibrator_db=calibrator_db, prompt=prompt_mic,
                                  stimulus=stimulus, progress=progress)
                elif w == "latency":
                    lat = measure_latency(be, rig, repeats=repeats, skip_silent=mode == "loopback",
                                          progress=progress)
                    acoustic = _acoustic_delays(rig, mode)
                    prof.mode = mode
                    prof.latency_samples = {k: round(v["mean"], 4) for k, v in lat.items()}
                    prof.latency_spread_samples = {k: round(v["spread"], 4) for k, v in lat.items()}
                    prof.device_latency_samples = {
                        m: round(float(np.median([lat[f"{s}->{m}"]["mean"] - acoustic[f"{s}->{m}"]
                                                  for s in rig.speakers if f"{s}->{m}" in lat])), 4)
                        for m in rig.mics
                    }
                    results["latency_samples"] = prof.latency_samples
                    results["latency_spread_samples"] = prof.latency_spread_samples
                    results["latency_repeats"] = {k: v["repeats"] for k, v in lat.items()}
                    results["device_latency_samples"] = prof.device_latency_samples
                elif w == "response":
                    captures: dict = {}
                    resp = measure_response(be, rig, progress=progress, captures=captures,
                                            skip_silent=mode == "loopback")
                    prof.response_csv = {}
                    for k, r in resp.items():
                        files += _write_response(directory, k, r, rig.sample_rate)
                        prof.response_csv[k] = files[-1].name
                        prof.thd_percent[k] = round(r.thd_percent, 3)
                    files += _keep_irs(directory, rig, prof, captures, mode)
                    results["ir_wav"] = {k: str(directory / v) for k, v in prof.ir_wav.items()}
                    results["rt60_s"] = dict(prof.rt60_s)
                    results["drr_db"] = dict(prof.drr_db)
                    files += _plot_responses(directory, rig.name, resp)
                    results["response_csv"] = {k: str(directory / v) for k, v in prof.response_csv.items()}
                    results["thd_percent"] = dict(prof.thd_percent)
                elif w == "level":
                    ref, lev = measure_level(be, rig, progress=progress)
                    prof.reference_level_dbfs = round(ref, 3)
                    prof.level_dbfs = {k: round(v, 3) for k, v in lev.items()}
                    refmic = next((m for m, mic in rig.mics.items() if mic.tier == "reference"), None)
                    if refmic is not None:
                        prof.mic_sensitivity_db = {
                            m: round(float(np.mean([lev[f"{s}->{m}"] - lev[f"{s}->{refmic}"] for s in rig.speakers])), 3)
                            for m in rig.mics
                        }
                    results["reference_level_dbfs"] = prof.reference_level_dbfs
                    results["level_dbfs"] = prof.level_dbfs
                    results["mic_sensitivity_db"] = prof.mic_sensitivity_db
                elif w == "drift":
                    prof.drift_ppm = {k: round(v, 3) for k, v in measure_drift(be, rig, duration_s=drift_s, progress=progress).items()}
                    results["drift_ppm"] = prof.drift_ppm
                prof.checks[w] = "ok"
            except CalibrationError as exc:
                failures[w] = str(exc)
                prof.checks[w] = f"failed: {exc}"
    finally:
        if own:
            be.close()
    path = save_profile(prof, directory)
    files.insert(0, path)
    results["profile"] = str(path)
    results["checks"] = dict(prof.checks)
    run = CalibrationRun(profile=prof, results=results, files=files, failures=failures)
    if failures:
        raise CalibrationError(
            f"calibration of {rig.name}: {'; '.join(failures.values())} (other measurements saved to {path})"
        )
    return run
