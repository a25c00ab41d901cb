"""Domain-randomisation transforms: deterministic per seed, and each does what it claims."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.data.dsp import autocorr_f0, rms
from testbed.data.transforms import EQ, TRANSFORMS, Formant, Loudness, Noise, Onset, Pitch, Reverb, Speed

SR = 16000


def voiced(f0: float = 140.0, seconds: float = 0.6, formant_hz: float = 900.0) -> np.ndarray:
    """A vowel-like signal: harmonics of f0 under one resonance, with onset/offset ramps."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for k in range(1, int(7000 / f0)):
        fk = k * f0
        x += np.exp(-0.5 * ((fk - formant_hz) / 400.0) ** 2) / k ** 0.3 * np.sin(2 * np.pi * fk * t)
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03)
    return (0.3 * x / np.max(np.abs(x)) * ramp).astype(np.float32)


def centroid_hz(x: np.ndarray) -> float:
    mag = np.abs(np.fft.rfft(x))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(np.sum(mag * f) / np.sum(mag))


WAVE_TRANSFORMS = [n for n in TRANSFORMS if n != "onset"]


@pytest.mark.parametrize("name", WAVE_TRANSFORMS)
def test_each_transform_is_deterministic_for_a_seed(name):
    tr = TRANSFORMS[name](p=1.0) if name != "reverb" else Reverb(p=1.0, rt60_s=(0.2, 0.3))
    x = voiced()
    a, fa = tr(x, np.random.default_rng(5), SR)
    b, fb = tr(x, np.random.default_rng(5), SR)
    c, _ = tr(x, np.random.default_rng(6), SR)
    np.testing.assert_array_equal(a, b)
    assert fa == fb and fa  # it acted and said what it drew
    assert a.dtype == np.float32
    assert a.shape != c.shape or not np.allclose(a, c)


def test_probability_zero_passes_the_signal_through():
    x = voiced()
    y, facts = Pitch(p=0.0)(x, np.random.default_rng(0), SR)
    assert y is x and facts == {}


def test_speed_changes_the_duration():
    x = voiced(seconds=0.8)
    y, facts = Speed(factor=(1.25, 1.25))(x, np.random.default_rng(0), SR)
    assert abs(len(y) - len(x) / 1.25) <= 2
    y2, _ = Speed(factor=(0.8, 0.8))(x, np.random.default_rng(0), SR)
    assert abs(len(y2) - len(x) / 0.8) <= 2
    assert facts == {"speed": 1.25}


@pytest.mark.parametrize("semitones", [-4.0, 3.0])
def test_pitch_shift_moves_the_autocorrelation_f0_and_keeps_the_length(semitones):
    x = voiced(f0=140.0)
    assert abs(autocorr_f0(x, SR) - 140.0) < 3.0
    y, _ = Pitch(semitones=(semitones, semitones))(x, np.random.default_rng(0), SR)
    assert len(y) == len(x)
    want = 140.0 * 2 ** (semitones / 12)
    assert abs(autocorr_f0(y, SR) - want) / want < 0.03


def test_formant_warp_moves_the_spectrum_but_not_the_pitch():
    x = voiced(f0=120.0, formant_hz=1000.0)
    up, _ = Formant(alpha=(1.15, 1.15))(x, np.random.default_rng(0), SR)
    down, _ = Formant(alpha=(0.87, 0.87))(x, np.random.default_rng(0), SR)
    assert centroid_hz(up) > 1.05 * centroid_hz(x) > 1.05 ** 2 * centroid_hz(down)
    for y in (up, down):
        assert abs(autocorr_f0(y, SR) - 120.0) < 3.0


def test_eq_changes_the_spectrum_of_white_noise():
    x = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    f = np.fft.rfftfreq(SR, 1 / SR)
    before = np.abs(np.fft.rfft(x)) ** 2
    changed = 0
    for seed in range(6):
        y, facts = EQ()(x, np.random.default_rng(seed), SR)
        after = np.abs(np.fft.rfft(y)) ** 2
        bands = [(f >= lo) & (f < hi) for lo, hi in ((50, 200), (200, 1000), (1000, 3000), (3000, 7500))]
        gains_db = np.array([10 * np.log10(after[b].sum() / before[b].sum()) for b in bands])
        assert "eq" in facts
        changed += np.ptp(gains_db) > 3.0
    assert changed >= 5


def test_noise_is_added_at_the_drawn_snr():
    x = voiced()
    y, facts = Noise(p=1.0, snr_db=(12.0, 12.0))(x, np.random.default_rng(3), SR)
    snr = 20 * np.log10(rms(x) / rms(y - x))
    assert abs(snr - 12.0) < 0.1 and facts["snr_db"] == 12.0


def test_reverb_adds_a_decaying_tail_and_keeps_the_level():
    x = voiced(seconds=0.3)
    y, facts = Reverb(p=1.0, rt60_s=(0.5, 0.5))(x, np.random.default_rng(0), SR)
    assert len(y) > len(x) + 0.1 * SR
    tail = y[len(x):len(x) + SR // 10]
    assert rms(tail) > 0.01 * rms(x)
    assert abs(20 * np.log10(rms(y[:len(x)]) / rms(x))) < 0.5


def test_loudness_contour_varies_the_level_over_time():
    x = np.full(SR, 0.1, np.float32)
    y, facts = Loudness(depth_db=6.0)(x, np.random.default_rng(2), SR)
    gain_db = 20 * np.log10(y / x)
    assert np.ptp(gain_db) > 1.0 and np.all(np.abs(gain_db) <= 6.0 + 1e-4)
    assert len(facts["loudness_db"]) >= 2


def test_onset_places_the_word_at_a_seeded_random_position_inside_the_window():
    word = np.ones(4000, np.float32)
    starts = set()
    for seed in range(8):
        y, facts = Onset()(word, np.random.default_rng(seed), SR, sample_rate=SR)
        assert y.shape == (SR,) and np.sum(y) == 4000
        start = int(np.flatnonzero(y)[0])
        assert start == facts["onset_samples"]
        starts.add(start)
    assert len(starts) >= 6
    centred, _ = Onset()(word, np.random.default_rng(0), SR, sample_rate=SR, random=False)
    assert abs(np.flatnonzero(centred)[0] - (SR - 4000) // 2) <= 1
