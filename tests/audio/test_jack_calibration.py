"""Calibration on the real JACK loopback: the measured latency is the true one, and it aligns captures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testbed.audio import Playback
from testbed.calibration import load_profile
from testbed.rig import load_rig

pytestmark = pytest.mark.jack


@pytest.mark.parametrize("library", ["sounddevice", "pyaudio"])
def test_calibrated_latency_is_one_period_and_aligns_the_capture(library, jack_loopback, cli, tmp_path):
    from tests.conftest import RIGS

    rig_file = tmp_path / "rigs" / "jack-loopback.toml"
    rig_file.parent.mkdir()
    rig_file.write_text((RIGS / "jack-loopback.toml").read_text()
                        .replace('backend = "sounddevice"', f'backend = "{library}"'))
    res = cli(["calibrate", rig_file, "--what", "latency", "--mode", "loopback", "--repeats", "2",
               "--out", tmp_path / "calibration" / "jack-loopback", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    period = jack_loopback.period
    # loopback cabling: output 1 feeds input 1 only, so the crossed paths are not wired
    assert set(out["latency_samples"]) == {"user->ref", "adversary->cheap"}
    for path, lat in out["latency_samples"].items():
        assert lat == pytest.approx(period, abs=0.01), path
        assert out["latency_spread_samples"][path] < 0.01
    assert out["device_latency_samples"] == {"ref": pytest.approx(period, abs=0.01),
                                             "cheap": pytest.approx(period, abs=0.01)}

    # the profile next to the rig's workspace is found and used by the backend
    rig = load_rig(rig_file)
    prof = load_profile(rig)
    assert prof is not None and prof.mode == "loopback"
    from testbed.audio import open_backend

    backend = open_backend(rig, calibration=prof)
    try:
        click = np.zeros(1500, np.float32)
        click[300] = 0.2
        cap = backend.run_trial({"user": Playback(click, 50.0)}, record_s=0.25)
    finally:
        backend.close()
    assert int(np.argmax(np.abs(cap.mics["ref"]))) == 350
    assert cap.facts.latency_samples == pytest.approx(period, abs=0.01)
    assert cap.facts.arrival_offsets_samples["user"]["ref"] == pytest.approx(50.0, abs=0.01)
