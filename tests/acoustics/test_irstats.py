"""One module computes every room statistic of an IR (testbed.acoustics.irstats)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from testbed.acoustics.irstats import (
    band_rt60_s,
    c50_db,
    ir_stats,
    late_tilt_db,
    octave_band,
    rt60_s,
)

FS = 16000


def decaying(rt60: float, n_s: float = 1.0, seed: int = 0, onset: int = 100, floor: float = 0.0) -> np.ndarray:
    """A direct impulse at ``onset`` and a white tail falling 60 dB in ``rt60`` s, plus a noise floor."""
    rng = np.random.default_rng(seed)
    n = int(n_s * FS)
    t = np.arange(n) / FS
    h = 0.3 * rng.standard_normal(n) * 10 ** (-3 * (t - onset / FS) / rt60) * (np.arange(n) > onset)
    h[onset] = 1.0
    return h + floor * rng.standard_normal(n)


def test_the_old_decay_module_is_gone():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("testbed.acoustics.decay")


def test_band_rt60_and_ir_stats_give_the_same_numbers():
    h = decaying(0.45)
    st = ir_stats(h, FS)
    direct = band_rt60_s(h, FS)
    assert set(direct) == {125, 250, 500, 1000, 2000, 4000}  # 8 kHz is above 0.9 x Nyquist at 16 kHz
    assert st.band_rt60_s == direct
    assert direct[1000] == pytest.approx(0.45, rel=0.1)
    assert st.rt60_s == pytest.approx(rt60_s(h, FS, (-5.0, -35.0)))


def test_a_noise_floor_does_not_lengthen_the_decay():
    """The Schroeder integral stops at the noise floor: a measured IR's floor does not bend T30."""
    clean, noisy = decaying(0.3, n_s=1.5), decaying(0.3, n_s=1.5, floor=3e-4)
    assert rt60_s(noisy, FS, (-5.0, -35.0)) == pytest.approx(0.3, rel=0.1)
    assert rt60_s(noisy, FS, (-5.0, -35.0)) == pytest.approx(rt60_s(clean, FS, (-5.0, -35.0)), rel=0.1)


def test_c50_of_a_known_split():
    h = np.zeros(FS)
    h[100] = 1.0
    h[100 + int(0.05 * FS) + 10] = 0.5  # after 50 ms: late
    assert c50_db(h, FS) == pytest.approx(10 * np.log10(1.0 / 0.25))
    assert c50_db(decaying(0.2), FS) > c50_db(decaying(0.8), FS) + 3  # a drier room is clearer


def test_late_tilt_is_flat_for_a_white_tail_and_negative_for_a_dull_one():
    h = decaying(0.5)
    assert abs(late_tilt_db(h, FS)) < 1.5
    dull = h.copy()
    dull[120:] = octave_band(h, FS, 500)[120:] + 0.1 * h[120:]  # the tail loses its high frequencies
    assert late_tilt_db(dull, FS) < -10.0
    assert ir_stats(dull, FS).late_tilt_db == pytest.approx(late_tilt_db(dull, FS))


def test_the_simulator_measures_its_delivered_rt60_with_the_same_function():
    from testbed.acoustics.room import BANDS_HZ, RoomSpec, delivered_band_rt60_s

    h = decaying(0.35)
    room = RoomSpec((5.0, 4.0, 3.0), 0.35, FS)
    got = band_rt60_s(h, FS, BANDS_HZ)
    assert delivered_band_rt60_s(room, h) == tuple(got[b] for b in BANDS_HZ)


def test_ir_stats_as_dict_has_no_nan_for_json():
    st = ir_stats(np.zeros(200), FS)
    d = st.as_dict()
    assert d["t30_s"] is None and d["drr_db"] is None and d["rt60_s"] is None
    assert "c50_db" in d and "late_tilt_db" in d
