"""Calibration keeps impulse responses: IR files, phase column, RT60/DRR in the profile, the measured twin."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from testbed.acoustics import sample_channel
from testbed.acoustics.irstats import ir_stats
from testbed.audio.sim import SimBackend
from testbed.audio.types import Playback
from testbed.calibration import calibrate, read_profile
from testbed.rig import load_rig


def _vowel(fs: int = 16000, n_s: float = 0.8) -> np.ndarray:
    t = np.arange(int(n_s * fs)) / fs
    sig = sum(np.sin(2 * np.pi * 160 * k * t) / k for k in range(1, 20)) * np.hanning(t.size)
    return (0.3 * sig / np.max(np.abs(sig))).astype(np.float32)


def test_calibration_writes_irs_with_the_latency_removed(office_rig_path, tmp_path):
    rig = load_rig(office_rig_path)
    run = calibrate(rig, backend=SimBackend(rig, seed=3, extra_latency_samples=3.0), what=["latency", "response"],
                    repeats=1, out_dir=tmp_path)
    prof = read_profile(tmp_path / "profile.toml")
    assert set(prof.ir_wav) == {f"{s}->{m}" for s in rig.speakers for m in rig.mics}
    for key, rel in prof.ir_wav.items():
        s, m = key.split("->")
        info = sf.info(tmp_path / rel)
        assert info.samplerate == 16000 and info.subtype == "FLOAT" and info.channels == 1
        h, _ = sf.read(tmp_path / rel)
        truth = sample_channel(rig, m, rng=np.random.default_rng(0)).h[s].astype(np.float64)[:h.size]
        # sample 0 is the emission: the direct sound is at the geometric delay, as in the simulator
        assert abs(int(np.argmax(np.abs(h))) - int(np.argmax(np.abs(truth)))) <= 1, key
        if m != "cheap":  # cheap's 40 ppm clock smears a 2 s sweep's deconvolution
            assert np.dot(h, truth) / np.linalg.norm(h) / np.linalg.norm(truth) > 0.9, key
        # the profile's RT60 and DRR are those of the measured IR, and close to the simulated path's
        st, true_st = ir_stats(h, 16000), ir_stats(truth, 16000)
        assert prof.rt60_s[key]["broadband_t20_s"] == pytest.approx(st.t20_s, abs=1e-3)
        assert prof.rt60_s[key]["broadband_t20_s"] == pytest.approx(true_st.t20_s, rel=0.1), key
        assert prof.drr_db[key] == pytest.approx(true_st.drr_db, abs=1.0), key
        assert "1000_t20_s" in prof.rt60_s[key]
    csv = np.loadtxt(tmp_path / prof.response_csv["user->ref"], delimiter=",", skiprows=1)
    assert csv.shape[1] == 3 and np.all(np.abs(csv[:, 2]) <= 180.0)
    assert (tmp_path / "response_user_ref.csv").read_text().splitlines()[0] == "hz,db,deg"
    assert run.results["rt60_s"] == prof.rt60_s


def test_write_rig_makes_a_measured_twin_that_sounds_like_the_rig(cli, office_rig_path, tmp_path):
    cal = tmp_path / "calibration" / "office-sim"
    twin_path = tmp_path / "rigs" / "office-twin.toml"
    res = cli(["calibrate", office_rig_path, "--what", "latency,response", "--repeats", "1", "--out", cal,
               "--write-rig", twin_path, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["measured_rig"] == str(twin_path)
    twin = load_rig(twin_path)
    rig = load_rig(office_rig_path)
    assert twin.room.model == "measured" and twin.room.align == "file" and twin.name == "office-sim-measured"
    assert set(twin.mics) == set(rig.mics) and twin.placements == {}  # only base positions measured
    assert "Placements P1, P2, P3 are left out" in twin_path.read_text()
    x = _vowel()
    plays = {"user": Playback(x, 800.0)}
    a = SimBackend(rig, seed=5).run_trial(plays, record_s=1.2).mics["ref"].astype(np.float64)
    b = SimBackend(twin, seed=5).run_trial(plays, record_s=1.2).mics["ref"].astype(np.float64)
    assert np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.95
    assert 10 * np.log10(np.sum((a - b) ** 2) / np.sum(a ** 2)) < -10
    assert cli(["rig", "check", twin_path]).exit_code == 0
    # no IRs in the profile: --write-rig says what to run
    bad = cli(["calibrate", office_rig_path, "--what", "level", "--out", tmp_path / "c2",
               "--write-rig", tmp_path / "x.toml"])
    assert bad.exit_code == 2 and "--what response" in bad.output


@pytest.mark.jack
def test_jack_loopback_calibration_round_trips_into_a_measured_rig(jack_loopback, cli, tmp_path):
    from testbed.audio import open_backend
    from testbed.calibration import load_profile
    from tests.conftest import RIGS

    rig_file = tmp_path / "rigs" / "jack-loopback.toml"
    rig_file.parent.mkdir()
    rig_file.write_text((RIGS / "jack-loopback.toml").read_text())
    twin_path = tmp_path / "rigs" / "jack-twin.toml"
    res = cli(["calibrate", rig_file, "--what", "latency,response", "--mode", "loopback", "--repeats", "1",
               "--out", tmp_path / "calibration" / "jack-loopback", "--write-rig", twin_path, "--json"])
    assert res.exit_code == 0, res.output
    rig = load_rig(rig_file)
    twin = load_rig(twin_path)
    x = _vowel(n_s=0.5)
    backend = open_backend(rig, calibration=load_profile(rig))
    try:
        real = backend.run_trial({"user": Playback(x, 100.0)}, record_s=0.8).mics["ref"].astype(np.float64)
    finally:
        backend.close()
    sim = SimBackend(twin, seed=1).run_trial({"user": Playback(x, 100.0)}, record_s=0.8).mics["ref"]
    sim = sim.astype(np.float64)
    assert np.dot(real, sim) / np.linalg.norm(real) / np.linalg.norm(sim) > 0.99
    assert 10 * np.log10(np.sum((real - sim) ** 2) / np.sum(real ** 2)) < -20


def test_a_calibrated_physical_rig_crafts_through_its_measured_irs(office_rig_path, tmp_path):
    from testbed.attacks.channels import ChannelBank
    from testbed.session.craft_rig import crafting_channels

    rig_file = tmp_path / "rigs" / "lab.toml"
    rig_file.parent.mkdir()
    rig_file.write_text(office_rig_path.read_text().replace('backend = "sim"', 'backend = "sounddevice"')
                        .replace('name = "office-sim"', 'name = "lab"'))
    rig = load_rig(rig_file)
    before = ChannelBank.from_rig(crafting_channels(rig)[0], n_channels=2, position_jitter_m=0.0)
    assert before.source == "shoebox"
    calibrate(rig, backend=SimBackend(rig, seed=2), what=["response"], out_dir=tmp_path / "calibration" / "lab")
    twin, note = crafting_channels(rig)
    assert "measured IRs" in note
    bank = ChannelBank.from_rig(twin, n_channels=2, position_jitter_m=0.0)
    assert bank.source.startswith("measured IRs") and "calibration" in bank.source
    h, _ = sf.read(tmp_path / "calibration" / "lab" / "irs" / "user__cheap.wav", dtype="float32")
    assert np.array_equal(bank.h_user[0], h)          # the measured file, as written
    assert not np.array_equal(bank.h_user[0][:h.size], before.h_user[0][:h.size])
    plain = ChannelBank.from_rig(rig, n_channels=2, position_jitter_m=0.0)
    assert plain.source == "shoebox" and np.array_equal(plain.h_user[0], before.h_user[0])
