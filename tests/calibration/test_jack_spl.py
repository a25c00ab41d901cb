"""SPL calibration on the real JACK loopback: a synthetic 94 dB tone reads as the configured sensitivity."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.audio import Playback, open_backend
from testbed.calibration import calibrate
from testbed.rig import load_rig

pytestmark = pytest.mark.jack


@pytest.mark.parametrize("sensitivity_dbfs", [-30.0, -18.5])
def test_spl_calibration_on_the_loopback_gives_the_configured_sensitivity(jack_loopback, tmp_path,
                                                                         sensitivity_dbfs):
    from tests.conftest import RIGS

    rig = load_rig(RIGS / "jack-loopback.toml")
    sr = rig.sample_rate
    n = 2 * sr
    # a 94 dB calibrator on a mic of this sensitivity: a 1 kHz sine of that RMS dBFS
    amp = np.sqrt(2) * 10 ** (sensitivity_dbfs / 20)
    sine = (amp * np.sin(2 * np.pi * 1000.0 * np.arange(n + sr // 2) / sr)).astype(np.float32)
    by_channel = {s.channel: name for name, s in rig.speakers.items()}

    def stimulus(mic: str) -> dict[str, Playback]:   # loopback: output N feeds input N
        return {by_channel[rig.mics[mic].channel]: Playback(sine, 0.0)}

    backend = open_backend(rig, raw=True)
    try:
        run = calibrate(rig, backend=backend, what=["spl"], out_dir=tmp_path, stimulus=stimulus)
    finally:
        backend.close()
    assert set(run.profile.spl_dbfs_at_94) == set(rig.mics)
    for mic, v in run.profile.spl_dbfs_at_94.items():
        assert v == pytest.approx(sensitivity_dbfs, abs=0.1), mic
