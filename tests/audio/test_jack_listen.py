"""`testbed rig listen` on both hardware backends, over the real JACK loopback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import RIGS

pytestmark = pytest.mark.jack


@pytest.mark.parametrize("library", ["sounddevice", "pyaudio"])
def test_rig_listen_records_the_utterance_and_the_burst(library, jack_loopback, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_CALIBRATION_DIR", str(tmp_path / "no-calibration"))
    rig_file = tmp_path / "rig.toml"
    rig_file.write_text((RIGS / "jack-loopback.toml").read_text()
                        .replace('backend = "sounddevice"', f'backend = "{library}"'))
    out = tmp_path / "listen"
    res = cli(["rig", "listen", rig_file, "--out", out, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["backend"] == library
    by_mic = {m["mic"]: m for m in doc["mics"]}
    assert set(by_mic) == {"ref", "cheap"}
    fs = 16000
    ref, sr = sf.read(by_mic["ref"]["path"], dtype="float32")
    cheap, _ = sf.read(by_mic["cheap"]["path"], dtype="float32")
    assert sr == fs and ref.size == cheap.size == round(doc["record_s"] * fs)
    # loopback cabling: input 1 hears output 1 (the user's utterance), input 2 output 2 (the burst)
    b0 = int(doc["burst_start_s"] * fs)
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    assert rms(ref[:b0]) > 1e-3, "the synthesised utterance did not come back on input 1"
    assert rms(cheap[b0 + 1000: b0 + 6000]) > 1e-3, "the noise burst did not come back on input 2"
    assert rms(cheap[: int(0.5 * fs)]) < 1e-4, "input 2 should be silent while only the user speaks"
    # nothing left a speaker above its cap (user -6 dBFS, adversary -10 dBFS in this rig)
    assert np.max(np.abs(ref)) <= 10 ** (-6 / 20) + 1e-4
    assert np.max(np.abs(cheap)) <= 10 ** (-10 / 20) + 1e-4
