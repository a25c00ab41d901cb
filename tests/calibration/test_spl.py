"""SPL calibration: the sim's own calibrator, the CLI's per-mic prompt, the profile round trip."""

from __future__ import annotations

import json

import pytest

from testbed.audio.sim import SimBackend
from testbed.audio.sim_spl import sim_dbfs_at_94
from testbed.calibration import calibrate, measure_spl, read_profile
from testbed.errors import CalibrationError
from testbed.rig import load_rig


@pytest.mark.parametrize("calibrator_db", [94.0, 114.0])
def test_sim_calibrator_gives_the_sims_own_sensitivity(office_rig_path, tmp_path, calibrator_db):
    rig = load_rig(office_rig_path)
    run = calibrate(rig, backend=SimBackend(rig, seed=1), what=["spl"], out_dir=tmp_path,
                    calibrator_db=calibrator_db)
    want = sim_dbfs_at_94(rig)
    assert set(run.profile.spl_dbfs_at_94) == set(rig.mics)
    for mic, v in run.profile.spl_dbfs_at_94.items():
        assert v == pytest.approx(want[mic], abs=0.1), mic
    back = read_profile(tmp_path / "profile.toml")
    assert back.spl_dbfs_at_94 == run.profile.spl_dbfs_at_94 and back.spl_calibrator_db == calibrator_db


def test_no_calibrator_tone_fails_and_stores_nothing(office_rig_path):
    rig = load_rig(office_rig_path)
    with pytest.raises(CalibrationError, match="no 1000 Hz calibrator tone"):
        measure_spl(SimBackend(rig), rig, mics=["ref"])    # nobody put a calibrator on the mic


def test_cli_prompts_per_mic_and_skips_and_keeps_other_measurements(office_rig_path, tmp_path, cli):
    out = tmp_path / "cal"
    res = cli(["calibrate", office_rig_path, "--what", "level", "--out", out, "--json"])
    assert res.exit_code == 0, res.output
    # ok for the first mic, skip the second, ok for the third
    res = cli(["calibrate", office_rig_path, "--what", "spl", "--out", out], input="o\ns\no\n")
    assert res.exit_code == 0, res.output
    assert res.output.count("calibrator on mic") == 3
    prof = read_profile(out / "profile.toml")
    mics = list(load_rig(office_rig_path).mics)
    assert set(prof.spl_dbfs_at_94) == {mics[0], mics[2]}
    assert prof.level_dbfs, "the level measured before is kept"
    res = cli(["calibrate", office_rig_path, "--what", "spl", "--yes", "--calibrator-db", "114", "--out", out,
               "--json"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output)["spl_dbfs_at_94"]) == set(mics)
