"""The simulated rig: timing, levels, tiers, clocks, noise, ADC and determinism (real physics, no mocks)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from testbed.audio import AudioBackend, Playback
from testbed.audio.sim import SimBackend
from testbed.errors import DeviceError, RigError
from testbed.rig import SPEED_OF_SOUND_M_S, load_rig, parse_rig

FS = 16000


def make_rig(mics: dict, *, rt60: float = 0.0, noise_dbspl: float = -20.0, size=(12.0, 10.0, 4.0),
             user=(2.0, 5.0, 1.5), adversary=(10.0, 8.0, 1.5), response: str = "flat", **extra):
    """A rig mapping: anechoic by default, quiet, flat 94 dB speakers."""
    data = {
        "name": "t", "sample_rate": FS, "backend": "sim",
        "room": {"size_m": list(size), "rt60_s": rt60, "noise_dbspl": noise_dbspl, "seed": 3},
        "speakers": {
            "user": {"role": "user", "position_m": list(user), "response": response,
                     "spl_at_1m_db": 94.0, "max_dbfs": -3},
            "adversary": {"role": "adversary", "position_m": list(adversary), "response": response,
                          "spl_at_1m_db": 94.0, "max_dbfs": -3},
        },
        "mics": mics,
        "dut": {"mic": next(iter(mics))},
        **extra,
    }
    return parse_rig(data, "test-rig.toml")


def quiet_mic(pos, tier="reference", **kw) -> dict:
    return {"tier": tier, "position_m": list(pos), "self_noise_dba": -40.0, **kw}


def impulse(n: int = 600, at: int = 300, amp: float = 0.4) -> np.ndarray:
    x = np.zeros(n, np.float32)
    x[at] = amp
    return x


def arrival(y: np.ndarray, around: float, half: int = 64) -> float:
    """Sub-sample arrival time of a band-limited impulse in ``y`` by the phase slope of its spectrum."""
    n0 = int(round(around)) - half
    seg = y[n0:n0 + 2 * half].astype(np.float64)
    k = np.arange(1, int(0.75 * half))  # below 0.75 x Nyquist
    w = 2 * np.pi * k / (2 * half)
    spec = np.fft.rfft(seg)[k] * np.exp(1j * w * half)  # phase relative to the window centre
    slope = np.polyfit(w, np.unwrap(np.angle(spec)), 1)[0]
    return n0 + half - slope


def test_sim_backend_implements_the_contract():
    rig = make_rig({"a": quiet_mic((4.0, 5.0, 1.5))})
    assert isinstance(SimBackend(rig), AudioBackend)


def test_impulse_arrives_at_geometric_delay_within_0_05_samples():
    mics = {f"m{i}": quiet_mic(p) for i, p in enumerate([(3.3, 5.0, 1.5), (5.1, 6.2, 1.2), (8.7, 2.3, 3.1)])}
    rig = make_rig(mics)
    sim = SimBackend(rig)
    offset = 12.3e-3 * FS  # 196.8 samples
    cap = sim.run_trial({"user": Playback(impulse(), offset)}, record_s=1.0)
    for name, m in rig.mics.items():
        d = float(np.linalg.norm(np.subtract(m.position_m, rig.speakers["user"].position_m)))
        expected = offset + 300 + d / SPEED_OF_SOUND_M_S * FS
        got = arrival(cap.mics[name], expected)
        assert abs(got - expected) < 0.05, (name, got, expected)
        assert cap.facts.arrival_offsets_samples["user"][name] == pytest.approx(expected - 300, abs=1e-9)
    assert cap.facts.realised_offsets_samples["user"] == pytest.approx(196.8)


def test_direct_path_falls_6_db_per_doubling_of_distance():
    x0, y0, z0 = 1.0, 5.0, 2.0
    mics = {f"d{r}": quiet_mic((x0 + r, y0, z0)) for r in (1.0, 2.0, 4.0, 8.0)}
    rig = make_rig(mics, user=(x0, y0, z0))
    cap = SimBackend(rig).run_trial({"user": Playback(impulse())}, record_s=0.5)
    levels = []
    for r in (1.0, 2.0, 4.0, 8.0):
        t = 300 + r / SPEED_OF_SOUND_M_S * FS
        seg = cap.mics[f"d{r}"][int(t) - 60:int(t) + 60].astype(np.float64)
        levels.append(10 * np.log10(np.sum(seg**2)))
    drops = -np.diff(levels)
    assert np.all(np.abs(drops - 6.02) < 0.2), drops


def test_level_is_calibrated_in_db_spl_and_dbfs_per_pa():
    # 94 dB SPL at 1 m for 0 dBFS; a -12 dBFS sine therefore gives 82 dB SPL at 1 m, and a
    # -26 dBFS/Pa mic turns 82 dB SPL (1 Pa at 94) into -26 - 12 = -38 dBFS peak.
    rig = make_rig({"a": quiet_mic((3.0, 5.0, 1.5))})
    n = FS
    t = np.arange(n) / FS
    sine = (10 ** (-12 / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    cap = SimBackend(rig).run_trial({"user": Playback(sine)}, record_s=1.2)
    steady = cap.mics["a"][2000:14000].astype(np.float64)
    peak_db = 20 * np.log10(np.sqrt(2 * np.mean(steady**2)))
    assert peak_db == pytest.approx(-38.0, abs=0.15)


def test_mic_tiers_give_measurably_different_spectra_of_white_noise():
    tiers = ["reference", "mems", "smartphone", "electret-cheap"]
    mics = {t: quiet_mic((3.0, 4.7 + 0.2 * i, 1.5), tier=t) for i, t in enumerate(tiers)}
    rig = make_rig(mics)
    rng = np.random.default_rng(1)
    noise = (0.1 * rng.standard_normal(3 * FS)).astype(np.float32)
    cap = SimBackend(rig).run_trial({"user": Playback(noise)}, record_s=3.0)
    spectra = {}
    for t in tiers:
        f, p = welch(cap.mics[t][2000:], fs=FS, nperseg=1024)
        db = 10 * np.log10(p)
        spectra[t] = db - np.interp(1000.0, f, db)  # relative to 1 kHz

    def at(t, hz):
        return float(np.interp(hz, f, spectra[t]))

    ref = "reference"
    assert at("electret-cheap", 150) < at(ref, 150) - 8        # strong high-pass
    assert at("electret-cheap", 3200) > at(ref, 3200) + 4      # presence peak
    assert at("electret-cheap", 7000) < at(ref, 7000) - 10     # low-pass
    assert at("smartphone", 60) < at(ref, 60) - 10             # 100 Hz band edge
    assert at("smartphone", 7600) < at(ref, 7600) - 6          # 7 kHz band edge
    assert at("mems", 6000) > at(ref, 6000) + 1                # mild high-frequency lift
    # and every pair differs on average over the speech band by at least 1 dB
    band = (f > 80) & (f < 7800)
    for i, a in enumerate(tiers):
        for b in tiers[i + 1:]:
            assert np.mean(np.abs(spectra[a][band] - spectra[b][band])) > 1.0, (a, b)


def test_clock_ppm_100_stretches_a_10_s_tone_by_100_ppm():
    rig = make_rig({"slow": quiet_mic((3.0, 5.0, 1.5), clock_ppm=100.0)})
    f0 = 1000.0
    n = 10 * FS
    tone = (0.3 * np.sin(2 * np.pi * f0 * np.arange(n) / FS)).astype(np.float32)
    cap = SimBackend(rig).run_trial({"user": Playback(tone)}, record_s=10.2)
    y = cap.mics["slow"].astype(np.float64)
    # demodulate at f0, average 10 ms blocks (whole cycles of 2 f0), fit the phase slope
    nn = np.arange(y.size)
    z = y * np.exp(-2j * np.pi * f0 * nn / FS)
    block = 160
    zb = z[: z.size // block * block].reshape(-1, block).mean(axis=1)
    keep = slice(20, int(9.8 * FS / block))
    phase = np.unwrap(np.angle(zb[keep]))
    tb = (np.arange(zb.size)[keep] * block + block / 2) / FS
    df = np.polyfit(tb, phase, 1)[0] / (2 * np.pi)
    stretch_ppm = (f0 / (f0 + df) - 1) * 1e6
    assert stretch_ppm == pytest.approx(100.0, abs=5.0)


def test_same_seed_gives_identical_captures_and_trials_differ():
    rig = load_rig(__import__("pathlib").Path(__file__).resolve().parents[2] / "rigs" / "office-sim.toml")
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    plays = {"user": Playback(x), "adversary": Playback(0.1 * x, 33.3)}
    a, b, c = SimBackend(rig, seed=5), SimBackend(rig, seed=5), SimBackend(rig, seed=6)
    a1, a2 = a.run_trial(plays, 0.75), a.run_trial(plays, 0.75)
    b1, b2 = b.run_trial(plays, 0.75), b.run_trial(plays, 0.75)
    c1 = c.run_trial(plays, 0.75)
    for m in rig.mics:
        assert np.array_equal(a1.mics[m], b1.mics[m])
        assert np.array_equal(a2.mics[m], b2.mics[m])
        assert not np.array_equal(a1.mics[m], a2.mics[m])
        assert not np.array_equal(a1.mics[m], c1.mics[m])
        assert a1.mics[m].dtype == np.float32 and a1.mics[m].shape == (12000,)


def test_extra_latency_delays_every_capture_by_that_many_samples():
    rig = make_rig({"a": quiet_mic((4.0, 5.0, 1.5)), "b": quiet_mic((6.0, 7.0, 1.5))})
    plays = {"user": Playback(impulse(), 10.0)}
    base = SimBackend(rig).run_trial(plays, 0.5)
    late = SimBackend(rig, extra_latency_samples=37.4).run_trial(plays, 0.5)
    assert late.facts.latency_samples == pytest.approx(37.4)
    for m in ("a", "b"):
        t0 = arrival(base.mics[m], float(np.argmax(np.abs(base.mics[m]))))
        t1 = arrival(late.mics[m], float(np.argmax(np.abs(late.mics[m]))))
        assert t1 - t0 == pytest.approx(37.4, abs=0.05)


def test_diffuse_noise_level_and_spatial_coherence():
    mics = {"a": quiet_mic((5.0, 5.0, 2.0)), "near": quiet_mic((5.0, 5.02, 2.0)),
            "far": quiet_mic((9.0, 2.0, 1.0))}
    rig = make_rig(mics, noise_dbspl=60.0)
    cap = SimBackend(rig).run_trial({}, record_s=2.0)
    # 60 dB SPL = 0.02 Pa rms; -26 dBFS/Pa (AES17) -> rms = 0.02 * 10**(-26/20) / sqrt(2)
    expected = 20 * np.log10(0.02 * 10 ** (-26 / 20) / np.sqrt(2))
    assert cap.facts.mic_rms_dbfs["a"] == pytest.approx(expected, abs=0.5)
    a, near, far = (cap.mics[k].astype(np.float64) for k in ("a", "near", "far"))
    assert np.corrcoef(a, near)[0, 1] > 0.8   # 2 cm apart: nearly the same pink field
    assert abs(np.corrcoef(a, far)[0, 1]) < 0.1


def test_cheap_adc_clips_and_quantises_to_its_bits():
    mics = {"hot": quiet_mic((3.0, 5.0, 1.5), tier="electret-cheap", sensitivity_dbfs_per_pa=10.0),
            "ref": quiet_mic((3.0, 5.2, 1.5))}
    rig = make_rig(mics)
    t = np.arange(FS // 2) / FS
    sine = (0.4 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    cap = SimBackend(rig).run_trial({"user": Playback(sine)}, record_s=0.6)
    hot = cap.mics["hot"]
    assert cap.facts.clipped_samples["hot"] > 100
    assert cap.facts.clipped_samples["ref"] == 0
    assert hot.max() <= 1.0 - 2.0**-11 and hot.min() >= -1.0
    codes = hot.astype(np.float64) * 2**11
    assert np.array_equal(codes, np.round(codes))           # 12-bit grid
    ref = cap.mics["ref"][1000:8000].astype(np.float64)  # while the tone plays
    assert np.array_equal(ref * 2**23, np.round(ref * 2**23))      # 24-bit grid ...
    assert np.mean(ref * 2**11 != np.round(ref * 2**11)) > 0.9     # ... far finer than 12 bits


def test_limiter_caps_what_reaches_the_speaker():
    rig = make_rig({"a": quiet_mic((3.0, 5.0, 1.5))})
    loud = np.ones(4000, np.float32)
    cap = SimBackend(rig).run_trial({"user": Playback(loud)}, 0.4)
    assert cap.facts.limited["user"] is True
    assert cap.facts.speaker_peak_dbfs["user"] <= -3.0 + 1e-4


def test_matches_pyroomacoustics_simulate_for_flat_models():
    import pyroomacoustics as pra

    mics = {"a": quiet_mic((3.0, 2.5, 1.0)), "b": quiet_mic((3.3, 2.4, 1.1))}
    rig = make_rig(mics, rt60=0.3, size=(6.0, 5.0, 3.0), user=(2.0, 1.5, 1.2), adversary=(4.5, 3.0, 1.0))
    rng = np.random.default_rng(2)
    x = np.zeros(6000, np.float32)
    x[200:5800] = 0.1 * rng.standard_normal(5600)  # silent edges: the limiter's fades change nothing
    cap = SimBackend(rig).run_trial({"user": Playback(x, 0.0), "adversary": Playback(0.5 * x, 0.0)}, 1.0)
    # the sim's absorption: Sabine's, calibrated so the delivered RT60 is the requested 0.3 s
    from testbed.acoustics.room import RoomSpec, absorption

    e_abs, order = absorption(RoomSpec((6.0, 5.0, 3.0), 0.3, FS))
    room = pra.ShoeBox([6.0, 5.0, 3.0], fs=FS, materials=pra.Material(e_abs), max_order=order)
    room.add_source([2.0, 1.5, 1.2], signal=x.astype(np.float64))
    room.add_source([4.5, 3.0, 1.0], signal=0.5 * x.astype(np.float64))
    room.add_microphone_array(np.array([[3.0, 2.5, 1.0], [3.3, 2.4, 1.1]]).T)
    # the sim keeps RIRs causal: pyroomacoustics' zero-phase 10 Hz high-pass is off in both
    hpf = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        room.simulate()
    finally:
        pra.constants.set("rir_hpf_enable", hpf)
    lead = pra.constants.get("frac_delay_length") // 2
    gain = 10 ** ((94 - 26) / 20) * 20e-6  # speaker Pa/unit x mic unit/Pa
    for i, m in enumerate(("a", "b")):
        ref = room.mic_array.signals[i, lead:lead + FS] * gain
        err = np.sqrt(np.mean((cap.mics[m] - ref) ** 2) / np.mean(ref**2))
        assert err < 1e-3, (m, err)


def test_bad_calls_raise_device_or_rig_errors():
    rig = make_rig({"a": quiet_mic((3.0, 5.0, 1.5))})
    sim = SimBackend(rig)
    with pytest.raises(DeviceError, match="no speaker 'tweeter'"):
        sim.run_trial({"tweeter": Playback(impulse())}, 0.1)
    with pytest.raises(DeviceError, match="offset_samples"):
        sim.run_trial({"user": Playback(impulse(), -1.0)}, 0.1)
    with pytest.raises(DeviceError, match="record_s"):
        sim.run_trial({"user": Playback(impulse())}, 0.0)
    with pytest.raises(RigError, match="no placement 'P9'"):
        sim.run_trial({"user": Playback(impulse())}, 0.1, placement="P9")
    sim.close()
    with pytest.raises(DeviceError, match="closed"):
        sim.run_trial({"user": Playback(impulse())}, 0.1)
