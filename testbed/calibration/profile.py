"""Calibration profiles: what ``testbed calibrate`` measured, stored as calibration/<rig>/profile.toml."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from testbed.errors import CalibrationError
from testbed.fileio import atomic_write

if TYPE_CHECKING:
    from testbed.rig import Rig

PROFILE_NAME = "profile.toml"


@dataclass
class CalibrationProfile:
    """One rig's calibration. Paths are keyed ``"speaker->mic"``; all latencies in samples.

    Attributes
    ----------
    rig, backend, sample_rate, created : what was measured, with which backend, when (ISO 8601).
    mode : "acoustic" (speakers play into the room; the rig's geometry gives the acoustic
        part of each path) or "loopback" (outputs wired straight to inputs).
    latency_samples : measured output->input latency of each path (device + acoustic), mean of repeats.
    latency_spread_samples : max - min over the repeats, per path.
    device_latency_samples : per mic, the device's own latency (path latency minus the direct
        sound's travel time, median over speakers): what the hardware backends skip so that
        captures start when the user speaker starts.
    level_dbfs : per path, RMS at the mic of the reference tone (``reference_level_dbfs`` RMS at the speaker).
    mic_sensitivity_db : per mic, level relative to the ``reference`` tier mic (mean over speakers).
    drift_ppm : per mic, sample-clock drift of the input relative to the output (+: input runs fast).
    response_csv : per path, the CSV (hz, db) of the Farina sweep response, relative to the profile folder.
    thd_percent : per path, harmonic distortion of the sweep measurement.
    checks : measurement -> "ok" or what failed (dropouts, no signal).
    ir_wav : per path, its impulse response (32-bit float WAV, sample 0 = emission, device
        latency removed), relative to the profile folder (``irs/<speaker>__<mic>.wav``).
    rt60_s : per path, reverberation times from the IR's Schroeder integral:
        ``broadband_t20_s``, ``broadband_t30_s`` and ``<octave Hz>_t20_s`` / ``_t30_s``
        (a band whose decay is not measurable is left out).
    drr_db : per path, direct-to-reverberant ratio (+/-2.5 ms around the direct peak), dB.
    spl_dbfs_at_94 : per mic, the RMS dBFS it reads from a 94 dB SPL calibrator (REW's
        convention; ``testbed calibrate --what spl``): ``dB SPL = dBFS - spl_dbfs_at_94 + 94``.
    spl_calibrator_db : the calibrator's level used for ``spl_dbfs_at_94``, dB SPL.
    """

    rig: str
    backend: str
    sample_rate: int
    created: str = ""
    mode: str = "acoustic"
    latency_samples: dict[str, float] = field(default_factory=dict)
    latency_spread_samples: dict[str, float] = field(default_factory=dict)
    device_latency_samples: dict[str, float] = field(default_factory=dict)
    level_dbfs: dict[str, float] = field(default_factory=dict)
    reference_level_dbfs: float | None = None
    mic_sensitivity_db: dict[str, float] = field(default_factory=dict)
    drift_ppm: dict[str, float] = field(default_factory=dict)
    response_csv: dict[str, str] = field(default_factory=dict)
    thd_percent: dict[str, float] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    ir_wav: dict[str, str] = field(default_factory=dict)
    rt60_s: dict[str, dict[str, float]] = field(default_factory=dict)
    drr_db: dict[str, float] = field(default_factory=dict)
    spl_dbfs_at_94: dict[str, float] = field(default_factory=dict)
    spl_calibrator_db: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def calibration_root(root: Path | str | None = None) -> Path:
    """The folder holding one sub-folder per rig: ``root``, env TESTBED_CALIBRATION_DIR, or ./calibration."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("TESTBED_CALIBRATION_DIR", "calibration"))


def profile_dir(rig: "Rig | str", root: Path | str | None = None) -> Path:
    """``calibration/<rig name>/``."""
    name = rig if isinstance(rig, str) else rig.name
    return calibration_root(root) / name


def save_profile(profile: CalibrationProfile, directory: Path | str) -> Path:
    """Write ``profile`` to ``directory/profile.toml`` (atomically, fsynced) and return the path."""
    import tomli_w

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in profile.as_dict().items() if v is not None}
    text = "# written by `testbed calibrate`; latencies in samples, levels in dBFS\n" + tomli_w.dumps(data)
    return atomic_write(directory / PROFILE_NAME, text)


def read_profile(path: Path | str) -> CalibrationProfile:
    """Read one profile file; a malformed one is a :class:`CalibrationError` naming file and field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read calibration profile: {exc}") from None
    names = {f.name for f in fields(CalibrationProfile)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CalibrationError(f"{path}: {unknown[0]}: unknown field in calibration profile")
    for req in ("rig", "backend", "sample_rate"):
        if req not in data:
            raise CalibrationError(f"{path}: {req}: required field is missing")
    for key in ("latency_samples", "latency_spread_samples", "device_latency_samples", "level_dbfs",
                "mic_sensitivity_db", "drift_ppm", "thd_percent", "drr_db", "spl_dbfs_at_94"):
        for k, v in data.get(key, {}).items():
            if not isinstance(v, (int, float)):
                raise CalibrationError(f"{path}: {key}.{k}: expected a number, got {v!r}")
    return CalibrationProfile(**data)


def load_profile(rig: "Rig", root: Path | str | None = None) -> CalibrationProfile | None:
    """The profile of ``rig`` from ``calibration/<rig.name>/profile.toml``, or None if it was never calibrated.

    Looks in ``root`` (default: env TESTBED_CALIBRATION_DIR or ./calibration), then next to
    the rig file's workspace (``<rig dir>/../calibration``).

    Raises
    ------
    CalibrationError
        The profile exists but is malformed, or was measured for another rig or sample rate.
    """
    cands = [profile_dir(rig, root) / PROFILE_NAME]
    if root is None and rig.source is not None:
        cands.append(Path(rig.source).resolve().parent.parent / "calibration" / rig.name / PROFILE_NAME)
    for path in cands:
        if path.is_file():
            prof = read_profile(path)
            if prof.rig != rig.name:
                raise CalibrationError(f"{path}: rig: profile is for rig {prof.rig!r}, not {rig.name!r}")
            if int(prof.sample_rate) != rig.sample_rate:
                raise CalibrationError(
                    f"{path}: sample_rate: measured at {prof.sample_rate} Hz but rig {rig.name!r} runs at "
                    f"{rig.sample_rate} Hz; run testbed calibrate again"
                )
            return prof
    return None
