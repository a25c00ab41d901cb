"""sample_channel: levels, geometry, caching, jitter and noise level."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics import RirCache, RoomSpec, sample_channel
from testbed.errors import RigError
from testbed.rig import SPEED_OF_SOUND_M_S, load_rig, parse_rig


def anechoic(noise_dbspl=40.0, tier="reference"):
    return parse_rig({
        "name": "a", "room": {"size_m": [10.0, 8.0, 4.0], "rt60_s": 0.0, "noise_dbspl": noise_dbspl},
        "speakers": {"user": {"role": "user", "position_m": [2.0, 4.0, 1.5], "spl_at_1m_db": 100.0},
                     "adversary": {"role": "adversary", "position_m": [8.0, 4.0, 1.5]}},
        "mics": {"m": {"tier": tier, "position_m": [4.0, 4.0, 1.5], "self_noise_dba": -30.0}},
        "dut": {"mic": "m"},
    }, "anechoic.toml")


def test_channel_carries_distance_delay_and_calibrated_level():
    ch = sample_channel(anechoic(), "m", rng=np.random.default_rng(0))
    h = ch.h["user"].astype(np.float64)
    assert ch.distance_m["user"] == pytest.approx(2.0)
    assert ch.direct_delay_samples["user"] == pytest.approx(2.0 / SPEED_OF_SOUND_M_S * 16000)
    # 100 dB SPL at 1 m for 0 dBFS -> 94 dB at 2 m = 1 Pa rms; -26 dBFS/Pa -> peak gain 10**(-26/20)
    assert np.sqrt(np.sum(h**2)) == pytest.approx(10 ** (-26 / 20), rel=0.02)
    assert int(np.argmax(np.abs(h))) == round(ch.direct_delay_samples["user"])
    assert ch.h["user"].dtype == np.float32


def test_nominal_channel_is_cached_and_jitter_moves_things_reproducibly():
    rig = load_rig(__import__("pathlib").Path(__file__).resolve().parents[2] / "rigs" / "office-sim.toml")
    a = sample_channel(rig, "cheap", "P2", rng=np.random.default_rng(0))
    b = sample_channel(rig, "cheap", "P2", rng=np.random.default_rng(1))
    assert a is b
    j1 = sample_channel(rig, "cheap", "P2", rng=np.random.default_rng(7), position_jitter_m=0.05)
    j2 = sample_channel(rig, "cheap", "P2", rng=np.random.default_rng(7), position_jitter_m=0.05)
    j3 = sample_channel(rig, "cheap", "P2", rng=np.random.default_rng(8), position_jitter_m=0.05)
    assert j1.positions_m == j2.positions_m and np.array_equal(j1.h["adversary"], j2.h["adversary"])
    assert j1.positions_m != j3.positions_m
    assert j1.positions_m["adversary"] != a.positions_m["adversary"]
    d = np.linalg.norm(np.subtract(j1.positions_m["adversary"], (3.8, 2.6, 1.0)))
    assert 0 < d < 0.5
    assert set(a.h) == {"user", "adversary"}


def test_noise_rms_follows_noise_dbspl():
    quiet = sample_channel(anechoic(40.0), "m", rng=np.random.default_rng(0)).noise_rms
    loud = sample_channel(anechoic(60.0), "m", rng=np.random.default_rng(0)).noise_rms
    assert loud / quiet == pytest.approx(10.0, rel=0.01)
    assert 20 * np.log10(loud) == pytest.approx(20 * np.log10(0.02 * 10 ** (-26 / 20) / np.sqrt(2)), abs=0.1)


def test_unknown_mic_or_placement():
    rig = anechoic()
    with pytest.raises(RigError, match="no mic 'x'"):
        sample_channel(rig, "x", rng=np.random.default_rng(0))
    with pytest.raises(RigError, match="no placement 'P1'"):
        sample_channel(rig, "m", "P1", rng=np.random.default_rng(0))


def test_rir_cache_computes_each_pair_once():
    cache = RirCache()
    room = RoomSpec((6.0, 5.0, 3.0), 0.2, 16000)
    a = cache.get(room, [(1.0, 1.0, 1.0)], [(3.0, 2.0, 1.0), (4.0, 2.0, 1.0)])
    assert (cache.misses, cache.hits) == (2, 0)
    b = cache.get(room, [(1.0, 1.0, 1.0)], [(4.0, 2.0, 1.0)])
    assert (cache.misses, cache.hits) == (2, 1)
    assert b[0][0] is a[0][1]
    with pytest.raises(ValueError):
        b[0][0][0] = 1.0  # shared, read-only


def test_impossible_rt60_is_a_rig_error():
    cache = RirCache()
    with pytest.raises(RigError, match="rt60_s"):
        cache.get(RoomSpec((30.0, 30.0, 10.0), 0.05, 16000), [(1.0, 1.0, 1.0)], [(2.0, 2.0, 1.0)])
