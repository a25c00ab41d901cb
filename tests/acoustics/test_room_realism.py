"""The room simulator's realism features: delivered RT60, band RT60s, air absorption, directivity, ray tracing."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics.irstats import band_rt60_s, octave_band, rt60_s
from testbed.acoustics.room import BANDS_HZ, RoomSpec, SourceDirectivity, compute_rirs

FS = 16000
SIZE = (5.0, 4.0, 3.0)
SOURCES = [(1.2, 1.1, 1.3), (3.9, 2.9, 1.1)]
MICS = [(3.1, 2.2, 1.0), (1.6, 3.1, 1.2)]


def mid_rt60(h: np.ndarray) -> float:
    b = band_rt60_s(h, FS)
    return 0.5 * (b[500] + b[1000])


def test_schroeder_rt60_of_an_exponential_decay_is_exact():
    rng = np.random.default_rng(0)
    t = np.arange(FS) / FS
    h = rng.standard_normal(FS) * 10 ** (-3 * t / 0.5)  # -60 dB in 0.5 s
    assert rt60_s(h, FS) == pytest.approx(0.5, rel=0.05)
    assert rt60_s(h, FS, (-5.0, -35.0)) == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("requested_s", [0.25, 0.5])
def test_delivered_rt60_is_within_20_percent_of_the_requested(requested_s):
    rirs = compute_rirs(RoomSpec(SIZE, requested_s, FS), SOURCES, MICS)
    got = np.mean([mid_rt60(h) for row in rirs for h in row])
    assert abs(got - requested_s) / requested_s <= 0.20, got


def test_uncalibrated_sabine_would_miss_and_calibration_fixes_it(monkeypatch):
    """Sabine's absorption overshoots the image-source decay at long RT60s; the calibration removes it."""
    import testbed.acoustics.room as room_mod

    spec = RoomSpec((4.0, 3.5, 2.6), 0.6, FS)
    calibrated = np.mean([mid_rt60(h) for row in compute_rirs(spec, SOURCES[:1], MICS) for h in row])
    monkeypatch.setattr(room_mod, "CALIBRATION_ROUNDS", 0)
    room_mod.absorption_bands.cache_clear()
    try:
        sabine = np.mean([mid_rt60(h) for row in compute_rirs(spec, SOURCES[:1], MICS) for h in row])
    finally:
        room_mod.absorption_bands.cache_clear()
    assert abs(calibrated - 0.6) < abs(sabine - 0.6)
    assert abs(calibrated - 0.6) / 0.6 <= 0.20


def test_band_rt60s_give_longer_decay_at_the_bands_asked():
    size, src, mic = (4.0, 3.5, 2.6), [(1.2, 1.1, 1.3)], [(3.1, 2.2, 1.0)]
    long_low = RoomSpec(size, 0.25, FS, rt60_bands_s=(0.4, 0.4, 0.4, 0.15, 0.15, 0.15))
    flat = RoomSpec(size, 0.25, FS)
    b = band_rt60_s(compute_rirs(long_low, src, mic)[0][0], FS)
    f = band_rt60_s(compute_rirs(flat, src, mic)[0][0], FS)
    assert b[500] > 2.0 * b[2000]
    assert b[250] > 2.0 * b[4000]
    assert 0.6 < f[500] / f[2000] < 1.6  # the flat room does not do that by itself
    assert b[500] == pytest.approx(0.4, rel=0.25)
    assert b[2000] == pytest.approx(0.15, rel=0.25)


def _hf_minus_lf_db(h: np.ndarray) -> float:
    e = [np.sum(octave_band(h, FS, fc) ** 2) for fc in (500, 4000)]
    return float(10 * np.log10(e[1] / e[0]))


def test_air_absorption_attenuates_high_frequencies_more_at_larger_distance():
    size = (40.0, 4.0, 3.0)
    src = (1.0, 2.0, 1.5)
    mics = [(2.0, 2.0, 1.5), (36.0, 2.0, 1.5)]  # 1 m and 35 m, anechoic: direct path only
    air = compute_rirs(RoomSpec(size, 0.0, FS, air_absorption=True), [src], mics)[0]
    dry = compute_rirs(RoomSpec(size, 0.0, FS), [src], mics)[0]
    loss_air = _hf_minus_lf_db(air[0]) - _hf_minus_lf_db(air[1])
    loss_dry = _hf_minus_lf_db(dry[0]) - _hf_minus_lf_db(dry[1])
    assert loss_air > 0.5  # ~0.02 dB/m more at 4 kHz than at 500 Hz over 34 m
    assert abs(loss_dry) < 0.2
    assert loss_air > loss_dry + 0.4


def test_cardioid_facing_away_gives_a_weaker_direct_path_than_facing_the_mic():
    spec = RoomSpec(SIZE, 0.3, FS)
    src, mic = (1.5, 2.0, 1.2), (3.5, 2.0, 1.2)  # the mic is at azimuth 0 from the source
    d = int(round(2.0 / 343.0 * FS))
    peaks = {}
    for name, facing in (("towards", 0.0), ("away", 180.0), ("side", 90.0)):
        h = compute_rirs(spec, [src], [mic], [SourceDirectivity("cardioid", facing)])[0][0]
        peaks[name] = float(np.max(np.abs(h[d - 3:d + 4])))
    omni = compute_rirs(spec, [src], [mic])[0][0]
    assert peaks["towards"] == pytest.approx(float(np.max(np.abs(omni[d - 3:d + 4]))), rel=1e-3)
    assert peaks["away"] < 0.05 * peaks["towards"]
    assert peaks["side"] == pytest.approx(0.5 * peaks["towards"], rel=0.05)  # cardioid: (1 + cos 90) / 2


def test_directivity_is_part_of_the_cache_key():
    from testbed.acoustics.room import RirCache

    cache = RirCache()
    spec = RoomSpec(SIZE, 0.3, FS)
    a = cache.get(spec, SOURCES[:1], MICS[:1], [SourceDirectivity("cardioid", 0.0)])[0][0]
    b = cache.get(spec, SOURCES[:1], MICS[:1], [SourceDirectivity("cardioid", 180.0)])[0][0]
    assert cache.misses == 2
    assert not np.allclose(a[:len(b)], b[:len(a)])


def test_ray_traced_tail_is_seeded_and_delivers_the_requested_rt60():
    spec = RoomSpec(SIZE, 0.5, FS, ray_tracing=True, seed=3)
    a = compute_rirs(spec, SOURCES, MICS[:1])
    b = compute_rirs(spec, SOURCES[::-1], MICS[:1])  # another batch order: same RIR per path
    np.testing.assert_array_equal(a[0][0], b[1][0])
    other = compute_rirs(RoomSpec(SIZE, 0.5, FS, ray_tracing=True, seed=4), SOURCES[:1], MICS[:1])[0][0]
    assert not np.array_equal(a[0][0][:len(other)], other[:len(a[0][0])])
    got = np.mean([mid_rt60(row[0]) for row in a])
    assert abs(got - 0.5) / 0.5 <= 0.20, got


def test_bands_constant_matches_the_rig_schema():
    from testbed.rig.schema import Room

    r = Room(size_m=SIZE, rt60_bands_s={"125": 0.8, "250": 0.7, "500": 0.6, "1k": 0.5, "2k": 0.4, "4000": 0.3})
    assert r.rt60_bands_s == (0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
    assert r.rt60_s == pytest.approx(0.55)  # the 500 Hz / 1 kHz mean
    assert BANDS_HZ == (125, 250, 500, 1000, 2000, 4000)
    with pytest.raises(ValueError, match="rt60_bands_s"):
        Room(size_m=SIZE, rt60_bands_s={"125": 0.8, "500": 0.6})


def test_random_room_records_the_rt60_it_delivers_not_only_the_drawn_one():
    """Regression: a room too small for the drawn RT60 fell back to absorption 0.05 and still
    recorded the drawn RT60 (here 0.05 s; the fallback room rings for far longer)."""
    from testbed.data.rooms import random_rir

    h, facts = random_rir(np.random.default_rng(1), FS, rt60_s=(0.05, 0.05))
    assert facts["rt60_requested_s"] == 0.05
    assert facts["rt60_s"] > 0.2
    assert facts["rt60_s"] == pytest.approx(mid_rt60(h), rel=1e-3, abs=2e-3)
