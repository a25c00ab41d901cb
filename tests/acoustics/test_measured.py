"""Measured-room rigs: IR folders load, resample, align to the geometry and drive the simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from testbed.acoustics import sample_channel
from testbed.acoustics.irstats import drr_db, ir_stats
from testbed.audio.sim import SimBackend
from testbed.audio.types import Playback
from testbed.rig import SPEED_OF_SOUND_M_S, load_rig
from tests.acoustics.irs import measured_rig, synthetic_ir


def _expected(h_at_rig_rate: np.ndarray, rig, speaker: str, mic: str) -> np.ndarray:
    """The stored IR moved so its -20 dB onset sits at the path's geometric delay (whole samples)."""
    a = np.abs(h_at_rig_rate)
    onset = int(np.nonzero(a >= 0.1 * a.max())[0][0])
    d = math.dist(rig.speakers[speaker].position_m, rig.mics[mic].position_m)
    target = round(d / SPEED_OF_SOUND_M_S * rig.sample_rate)
    if target >= onset:
        return np.concatenate([np.zeros(target - onset), h_at_rig_rate])
    return h_at_rig_rate[onset - target:]


def test_an_impulse_through_a_measured_rig_reproduces_the_stored_ir(tmp_path, office_rig_path):
    # stored at 48 kHz with the direct sound 30 ms in (later than any geometric delay of the rig)
    h48 = synthetic_ir(48000, rt60_s=0.25, onset_s=0.03, seed=3)
    path = measured_rig(tmp_path, office_rig_path, {"user__ref": h48}, sample_rate=48000, quiet=True)
    rig = load_rig(path)
    want = _expected(resample_poly(h48, 1, 3), rig, "user", "ref")
    at = 1600  # after the limiter's 5 ms fade-in
    x = np.zeros(16000, dtype=np.float32)
    x[at] = 0.25
    cap = SimBackend(rig, seed=1).run_trial({"user": Playback(x, 0.0)}, record_s=1.2)
    got = cap.mics["ref"][at:at + want.size] / 0.25
    n = min(got.size, want.size)
    assert np.max(np.abs(got[:n] - want[:n])) < 1e-4
    # the direct sound sits at the geometric delay, as in a shoebox channel
    ch = sample_channel(rig, "ref", rng=np.random.default_rng(0))
    assert int(np.argmax(np.abs(ch.h["user"]))) == round(ch.direct_delay_samples["user"])


def test_a_44k1_stereo_24_bit_and_a_96k_mono_file_import(tmp_path, office_rig_path):
    h_left = synthetic_ir(44100, rt60_s=0.2, onset_s=0.002, seed=1)
    h_right = synthetic_ir(44100, rt60_s=0.5, onset_s=0.002, seed=2)
    h96 = synthetic_ir(96000, rt60_s=0.35, onset_s=0.003, seed=4)
    path = measured_rig(tmp_path, office_rig_path, edit=lambda d: d["room"].update(channel=2, gain_db=-6.0))
    folder = tmp_path / "irs"
    (folder / "user__ref.wav").unlink()
    sf.write(folder / "user__ref.wav", np.stack([h_left, h_right], 1) * 0.9, 44100, subtype="PCM_24")
    (folder / "adversary__cheap.wav").unlink()
    sf.write(folder / "adversary__cheap.flac", h96, 96000, subtype="PCM_24")
    rig = load_rig(path)
    ch = sample_channel(rig, "ref", rng=np.random.default_rng(0))
    right, _ = sf.read(folder / "user__ref.wav", always_2d=True)
    want = _expected(resample_poly(right[:, 1], 160, 441), rig, "user", "ref") * 10 ** (-6 / 20)
    n = min(want.size, ch.h["user"].size)
    assert np.max(np.abs(ch.h["user"][:n] - want[:n])) < 1e-6
    # channel 2 is the long-tailed one: its decay says so at the rig rate
    assert ir_stats(ch.h["user"], 16000).t30_s == pytest.approx(0.5, rel=0.15)
    adv = sample_channel(rig, "cheap", rng=np.random.default_rng(0)).h["adversary"]
    assert ir_stats(adv, 16000).t30_s == pytest.approx(0.35, rel=0.15)
    assert int(np.argmax(np.abs(adv))) == round(
        math.dist(rig.speakers["adversary"].position_m, rig.mics["cheap"].position_m) / SPEED_OF_SOUND_M_S * 16000)


def test_ir_stats_of_a_known_decay():
    h = synthetic_ir(16000, rt60_s=0.4, onset_s=0.01, seed=0, n_s=1.2)
    st = ir_stats(h, 16000)
    assert st.onset_samples == 160 and st.peak_samples == 160
    assert st.t20_s == pytest.approx(0.4, rel=0.1) and st.t30_s == pytest.approx(0.4, rel=0.1)
    assert st.bands["1000"]["t30_s"] == pytest.approx(0.4, rel=0.15)
    assert set(st.bands) >= {"125", "500", "4000"}
    e = h ** 2
    direct = e[160 - 40:160 + 41].sum()
    assert drr_db(h, 16000) == pytest.approx(10 * np.log10(direct / e[201:].sum()))
    # a louder direct sound is a larger DRR
    assert drr_db(synthetic_ir(16000, drr=0.3), 16000) > drr_db(synthetic_ir(16000, drr=1.0), 16000) + 5


def test_a_placement_reads_its_own_file_for_the_paths_it_moves(tmp_path, office_rig_path):
    def edit(d):
        d["placements"] = {"P2": {"adversary": [3.8, 2.6, 1.0]}}
    path = measured_rig(tmp_path, office_rig_path, edit=edit)
    for m in ("ref", "phone", "cheap"):
        sf.write(tmp_path / "irs" / f"adversary__{m}__P2.wav", synthetic_ir(16000, rt60_s=0.8, seed=9), 16000,
                 subtype="FLOAT")
    rig = load_rig(path)
    rng = np.random.default_rng(0)
    base, p2 = sample_channel(rig, "ref", rng=rng), sample_channel(rig, "ref", "P2", rng=rng)
    assert np.array_equal(base.h["user"], p2.h["user"])  # the user did not move: same file
    assert ir_stats(p2.h["adversary"], 16000).t30_s == pytest.approx(0.8, rel=0.15)
    assert ir_stats(base.h["adversary"], 16000).t30_s == pytest.approx(0.3, rel=0.15)
