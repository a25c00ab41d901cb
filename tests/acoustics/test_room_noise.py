"""Noise recorded in a measured room (``[room] noise``): the simulator and the EOT mix it at the rig's level."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from testbed.acoustics.measured import check_measured
from testbed.acoustics.room_noise import read_room_noise, room_noise_rms
from testbed.attacks.channels import ChannelBank, OverTheAir
from testbed.audio import Playback
from testbed.audio.sim import SimBackend
from testbed.errors import RigError
from testbed.rig import load_rig
from tests.acoustics.irs import measured_rig

HUM_HZ = 440.0


def _noise_file(path, fs=44100, seconds=2.0, channels=2):
    """A 440 Hz hum over faint white noise, stereo 24-bit at 44.1 kHz (the second channel is silent)."""
    t = np.arange(int(fs * seconds)) / fs
    x = 0.3 * np.sin(2 * np.pi * HUM_HZ * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    data = np.stack([x] + [np.zeros_like(x)] * (channels - 1), axis=1)
    sf.write(path, data, fs, subtype="PCM_24")
    return path


def _rig(tmp_path, office_rig_path, noise: str | None = "room-noise.wav"):
    def edit(d):
        d["room"]["noise_dbspl"] = 60.0
        for mic in d["mics"].values():
            mic.update(self_noise_dba=-20.0, clock_ppm=0.0)
        if noise is not None:
            d["room"]["noise"] = noise
    _noise_file(tmp_path / "room-noise.wav")
    return load_rig(measured_rig(tmp_path, office_rig_path, edit=edit))


def _hum_share(x: np.ndarray, fs: int) -> float:
    """Fraction of the signal's power within +-20 Hz of the hum."""
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / fs)
    return float(p[np.abs(f - HUM_HZ) < 20].sum() / p.sum())


def test_the_recording_is_resampled_to_the_rig_rate_at_unit_rms(tmp_path, office_rig_path):
    rig = _rig(tmp_path, office_rig_path)
    bed = read_room_noise(rig)
    assert bed.size == 2 * rig.sample_rate
    assert np.sqrt(np.mean(bed ** 2)) == pytest.approx(1.0, rel=1e-6)
    assert _hum_share(bed, rig.sample_rate) > 0.95


def test_the_simulator_plays_the_room_noise_at_the_diffuse_fields_level(tmp_path, office_rig_path):
    rig = _rig(tmp_path, office_rig_path)
    (tmp_path / "plain").mkdir()
    plain = _rig(tmp_path / "plain", office_rig_path, noise=None)
    silence = {"user": Playback(np.zeros(100, np.float32), 0.0)}
    for r, hum in ((rig, True), (plain, False)):
        cap = SimBackend(r, seed=0).run_trial(silence, 1.0)
        for m in r.mics:
            y = cap.mics[m][2000:]        # past the (silent) playback
            assert np.sqrt(np.mean(y ** 2)) == pytest.approx(room_noise_rms(r, m), rel=0.15), m
            assert (_hum_share(y, r.sample_rate) > 0.8) == hum, m


def test_eot_on_a_measured_rig_mixes_the_recorded_noise(tmp_path, office_rig_path):
    rig = _rig(tmp_path, office_rig_path)
    bank = ChannelBank.from_rig(rig, n_channels=4, seed=0)
    assert bank.noise_bed is not None and "recorded noise (room-noise.wav)" in bank.source
    assert np.allclose(bank.bed_rms, room_noise_rms(rig, rig.dut.mic))
    ota = OverTheAir(bank, sample_rate=rig.sample_rate, noise_db=(0.0, 0.0), gain_db=(0.0, 0.0))
    g = torch.Generator().manual_seed(0)
    y = ota.mix(torch.zeros(8, 16000), torch.zeros(1, 16000), g).numpy()
    for row in y:
        assert np.sqrt(np.mean(row ** 2)) == pytest.approx(bank.noise_rms[0], rel=0.1)
        assert _hum_share(row, rig.sample_rate) > 0.8
    starts = {tuple(np.round(row[:4], 6)) for row in y}
    assert len(starts) > 1                        # each draw starts somewhere else in the recording
    (tmp_path / "p").mkdir()
    plain = ChannelBank.from_rig(_rig(tmp_path / "p", office_rig_path, noise=None), n_channels=4, seed=0)
    assert plain.noise_bed is None
    y0 = OverTheAir(plain, sample_rate=rig.sample_rate, noise_db=(0.0, 0.0)).mix(
        torch.zeros(4, 16000), torch.zeros(1, 16000), g).numpy()
    assert all(_hum_share(r, rig.sample_rate) < 0.1 for r in y0)


@pytest.mark.parametrize("content, msg", [
    (None, "cannot read the noise recording"),
    (b"not audio at all", "not an audio file"),
    ("nan", "NaN or infinite"),
    ("silent", "silent"),
])
def test_a_bad_noise_file_is_one_line_naming_it(tmp_path, office_rig_path, content, msg, cli):
    def edit(d):
        d["room"]["noise"] = "bad.wav"
    path = measured_rig(tmp_path, office_rig_path, edit=edit)
    bad = tmp_path / "bad.wav"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    elif content == "nan":
        sf.write(bad, np.array([0.1, np.nan] * 4000), 16000, subtype="FLOAT")
    elif content == "silent":
        sf.write(bad, np.zeros(4000), 16000, subtype="FLOAT")
    with pytest.raises(RigError, match=r"room\.noise: .*bad\.wav: .*" + msg):
        check_measured(load_rig(path))      # what opening the rig (sim backend, rig check) runs
    res = cli(["rig", "check", path])
    assert res.exit_code == 2 and "bad.wav" in res.output and "Traceback" not in res.output


def test_noise_is_refused_on_a_shoebox_rig(tmp_path, office_rig_path):
    import tomllib

    import tomli_w

    d = tomllib.loads(office_rig_path.read_text())
    d["room"]["noise"] = "x.wav"
    p = tmp_path / "r.toml"
    p.write_text(tomli_w.dumps(d))
    with pytest.raises(RigError, match="room.*noise.*only read when model = 'measured'"):
        load_rig(p)
