"""EOT on a measured room: seeded, realistic variations of the recorded paths, used by ChannelBank."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics import sample_channel
from testbed.acoustics.irstats import drr_db, ir_stats, onset_index
from testbed.acoustics.measured_eot import MeasuredEot, swap_tail, vary_ir
from testbed.attacks.channels import ChannelBank
from testbed.rig import load_rig
from tests.acoustics.irs import measured_rig, synthetic_ir


def test_swap_tail_keeps_the_early_part_and_takes_the_donors_decay():
    h = synthetic_ir(16000, rt60_s=0.2, onset_s=0.01, seed=1, n_s=1.0)
    donor = synthetic_ir(16000, rt60_s=0.8, onset_s=0.02, seed=2, n_s=1.0)
    out = swap_tail(h, donor, 16000, after_ms=5.0)
    cut = onset_index(h) + 80
    assert np.array_equal(out[:cut - 16], h[:cut - 16])  # direct sound and early part untouched
    assert np.sum(out[cut:] ** 2) == pytest.approx(np.sum(h[cut - 16:] ** 2), rel=0.2)
    assert ir_stats(out, 16000).t30_s > 0.5  # the decay is now the donor's
    assert drr_db(out, 16000) == pytest.approx(drr_db(h, 16000), abs=1.5)


def test_vary_ir_is_seeded_and_stays_within_its_bounds():
    h = synthetic_ir(16000, rt60_s=0.3, onset_s=0.01, seed=1)
    donors = [synthetic_ir(16000, rt60_s=0.6, seed=5)]
    eot = MeasuredEot(shift_ms=0.5, gain_db=2.0, tilt_db_per_octave=1.0, tail_swap_p=0.5)
    a = vary_ir(h, donors, np.random.default_rng(3), 16000, eot)
    b = vary_ir(h, donors, np.random.default_rng(3), 16000, eot)
    c = vary_ir(h, donors, np.random.default_rng(4), 16000, eot)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    peaks, gains = [], []
    rng = np.random.default_rng(0)
    for _ in range(40):
        v = vary_ir(h, donors, rng, 16000, eot)
        peaks.append(int(np.argmax(np.abs(v))))
        gains.append(20 * np.log10(np.max(np.abs(v)) / 0.5))
    assert max(abs(p - 160) for p in peaks) <= 8          # |shift| <= 0.5 ms = 8 samples
    assert len(set(peaks)) > 3                            # and it does shift
    assert max(gains) - min(gains) > 1.0 and max(abs(g) for g in gains) < 6.0


def test_channel_bank_on_a_measured_rig_varies_the_measured_paths(tmp_path, office_rig_path):
    rig = load_rig(measured_rig(tmp_path, office_rig_path))
    nominal = sample_channel(rig, "cheap", rng=np.random.default_rng(0))
    fixed = ChannelBank.from_rig(rig, n_channels=3, position_jitter_m=0.0)
    for h in fixed.h_user:
        assert np.array_equal(h, nominal.h["user"])
    bank = ChannelBank.from_rig(rig, n_channels=6, position_jitter_m=0.1, seed=2)
    again = ChannelBank.from_rig(rig, n_channels=6, position_jitter_m=0.1, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(bank.h_adv, again.h_adv))
    assert len({round(float(np.sum(h ** 2)), 9) for h in bank.h_user}) == 6
    h0 = nominal.h["user"]
    for h in bank.h_user:  # every draw is still a version of the measured path, not a shoebox
        assert h.size == h0.size
        assert abs(int(np.argmax(np.abs(h))) - int(np.argmax(np.abs(h0)))) <= 8
        assert abs(10 * np.log10(np.sum(h ** 2) / np.sum(h0 ** 2))) < 8
    assert bank.mics == ["cheap"] * 6


def test_measured_rir_pool_for_augmentation(tmp_path, office_rig_path):
    from testbed.data.rooms import measured_rir_pool

    rig = load_rig(measured_rig(tmp_path, office_rig_path))
    pool = measured_rir_pool(rig, 10, seed=1)
    assert len(pool) == 10 and all(abs(np.max(np.abs(h)) - 1.0) < 1e-6 for h in pool)
    assert all(onset_index(h) == 8 for h in pool)
    again = measured_rir_pool(rig, 10, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(pool, again))
    assert ir_stats(pool[0], 16000).t30_s == pytest.approx(0.3, rel=0.2)
