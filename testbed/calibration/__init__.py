"""Calibration: latency, frequency response, level and drift of a rig; calibration profiles.

``calibrate(rig, what=...)`` measures through the rig's backend (uncompensated) and writes
``calibration/<rig>/profile.toml`` plus response CSV/PNG files; ``load_profile(rig)``
reads it back for the hardware backends and the session runner.
"""

from testbed.calibration.farina import SweepResponse, sweep_response
from testbed.calibration.gccphat import gcc_phat
from testbed.calibration.measure import check_sync, measure_drift, measure_latency, measure_level, measure_response
from testbed.calibration.profile import (
    CalibrationProfile,
    calibration_root,
    load_profile,
    profile_dir,
    read_profile,
    save_profile,
)
from testbed.calibration.run import MEASUREMENTS, MODES, CalibrationRun, calibrate, steps
from testbed.calibration.signals import Sweep, exp_sweep, sync_click, tone
from testbed.calibration.spl import measure_spl

__all__ = [
    "MEASUREMENTS", "MODES", "CalibrationProfile", "CalibrationRun", "Sweep", "SweepResponse",
    "calibrate", "calibration_root", "check_sync", "exp_sweep", "gcc_phat", "load_profile",
    "measure_drift", "measure_latency", "measure_level", "measure_response", "measure_spl",
    "profile_dir", "read_profile", "save_profile", "steps", "sweep_response", "sync_click", "tone",
]
