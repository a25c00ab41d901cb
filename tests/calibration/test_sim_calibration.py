"""Calibration on the simulated rig: known latency, drift and mic response are recovered."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testbed.audio.sim import SimBackend
from testbed.calibration import (
    CalibrationProfile,
    calibrate,
    check_sync,
    gcc_phat,
    load_profile,
    read_profile,
    save_profile,
)
from testbed.calibration.measure import frame
from testbed.calibration.signals import sync_click
from testbed.errors import CalibrationError
from testbed.rig import load_rig, parse_rig, read_toml


def test_recovers_a_known_fractional_latency_and_clock_drift(office_rig_path, tmp_path):
    rig = load_rig(office_rig_path)
    run = calibrate(rig, backend=SimBackend(rig, seed=3, extra_latency_samples=3.3), what=["latency", "drift"],
                    repeats=2, out_dir=tmp_path)
    dev = run.profile.device_latency_samples
    # ref and phone have exact clocks; cheap's 40 ppm clock shifts its mid-sweep latency
    assert dev["ref"] == pytest.approx(3.3, abs=0.05)
    assert dev["phone"] == pytest.approx(3.3, abs=0.05)
    assert run.profile.drift_ppm["cheap"] == pytest.approx(rig.mics["cheap"].clock_ppm, abs=3.0)
    assert abs(run.profile.drift_ppm["ref"]) < 3.0
    assert all(s < 0.05 for s in run.profile.latency_spread_samples.values())
    assert (tmp_path / "profile.toml").is_file()


def test_recovers_a_known_mic_response(office_rig_path, tmp_path):
    """Two mics at one spot in an anechoic room: their measured difference is the tier models' difference."""
    from testbed.acoustics import mic_response_db

    data = read_toml(office_rig_path)
    data["room"]["rt60_s"] = 0.0
    data["mics"] = {
        "ref": {"tier": "reference", "position_m": [3.0, 2.5, 1.0], "channel": 1},
        "cheap": {"tier": "electret-cheap", "position_m": [3.0, 2.5, 1.0], "channel": 2},
    }
    data["dut"]["mic"] = "cheap"
    data["placements"] = {}
    rig = parse_rig(data, tmp_path / "anechoic.toml")
    run = calibrate(rig, backend=SimBackend(rig, seed=1), what=["response"], out_dir=tmp_path)
    csv = tmp_path / run.profile.response_csv["user->cheap"]
    hz, meas_cheap = np.loadtxt(csv, delimiter=",", skiprows=1, unpack=True, usecols=(0, 1))  # 3rd column: phase
    _, meas_ref = np.loadtxt(tmp_path / run.profile.response_csv["user->ref"], delimiter=",", skiprows=1,
                             unpack=True, usecols=(0, 1))
    band = (hz >= 200) & (hz <= 6000)
    measured = (meas_cheap - meas_ref)[band]
    truth = (mic_response_db("electret-cheap", hz) - mic_response_db("reference", hz))[band]
    offset = np.median(measured - truth)     # sensitivity differs; the shape must match
    assert np.max(np.abs(measured - truth - offset)) < 1.0
    assert (tmp_path / "response_user.png").stat().st_size > 1000


def test_dropout_between_the_sync_clicks_fails_the_measurement():
    sr = 16000
    payload = np.zeros(8000, np.float32)
    fr = frame(payload, sr, 0.2)
    delayed = np.concatenate([np.zeros(100, np.float32), fr.signal])
    assert check_sync(delayed, fr, "t") == (pytest.approx(100, abs=0.01), pytest.approx(100, abs=0.01))
    dropped = np.delete(delayed, slice(fr.payload_at, fr.payload_at + 256))   # one lost block
    with pytest.raises(CalibrationError, match="dropped or inserted"):
        check_sync(dropped, fr, "latency user->ref")
    with pytest.raises(CalibrationError, match="did not come back"):
        check_sync(np.zeros_like(delayed), fr, "latency user->ref")


def test_gcc_phat_is_sub_sample_accurate():
    from testbed.acoustics import fractional_delay

    rng = np.random.default_rng(0)
    c = sync_click(16000, 0.3)
    for d in (0.25, 17.5, 200.73):
        y = fractional_delay(c, d, len(c) + 400) + 1e-3 * rng.standard_normal(len(c) + 400)
        est, peak = gcc_phat(y, c, 16000)
        assert est == pytest.approx(d, abs=0.02)
        assert peak > 0.9


def test_profile_round_trip_and_malformed_profile(office_rig_path, tmp_path, monkeypatch):
    rig = load_rig(office_rig_path)
    prof = CalibrationProfile(rig=rig.name, backend="sim", sample_rate=16000,
                              latency_samples={"user->ref": 70.25}, device_latency_samples={"ref": 3.5})
    save_profile(prof, tmp_path / "calibration" / rig.name)
    monkeypatch.setenv("TESTBED_CALIBRATION_DIR", str(tmp_path / "calibration"))
    back = load_profile(rig)
    assert back.latency_samples == {"user->ref": 70.25} and back.device_latency_samples == {"ref": 3.5}
    bad = tmp_path / "calibration" / rig.name / "profile.toml"
    bad.write_text(bad.read_text().replace("70.25", '"soon"'))
    with pytest.raises(CalibrationError, match=r"profile.toml: latency_samples.user->ref: expected a number"):
        read_profile(bad)


def test_cli_calibrate_sim_json_and_bad_what(office_rig_path, cli, tmp_path):
    res = cli(["calibrate", office_rig_path, "--what", "latency", "--repeats", "1", "--out", tmp_path, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert len(out["latency_samples"]) == 6
    assert out["device_latency_samples"]["ref"] == pytest.approx(0.0, abs=0.05)
    bad = cli(["calibrate", office_rig_path, "--what", "latency,loudness", "--out", tmp_path])
    assert bad.exit_code == 2
    assert "--what" in bad.output and "loudness" in bad.output and "Traceback" not in bad.output
