"""The over-the-air forward model: exact convolution, delay, gradients, rig channels, EOT payoff."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testbed.attacks import OTAPGD, PGD, ChannelBank, OverTheAir, shift_perturbation
from testbed.errors import AttackError


def _room_bank(seed: int) -> ChannelBank:
    """Two user and two adversary channels: a direct path at 0-3 samples plus a decaying tail."""
    rng = np.random.default_rng(seed)
    hs = []
    for _ in range(4):
        h = np.zeros(48, np.float32)
        h[rng.integers(0, 4)] = 1.0
        h[10:] += (0.3 * rng.standard_normal(38) * np.exp(-np.arange(38) / 6)).astype(np.float32)
        hs.append(h)
    return ChannelBank(hs[:2], hs[2:], np.array([0.001, 0.002]))


def _bank(n_taps: int = 48, seed: int = 0) -> ChannelBank:
    rng = np.random.default_rng(seed)
    def h():
        out = (rng.standard_normal(n_taps) * np.exp(-np.arange(n_taps) / 8)).astype(np.float32)
        return out * 0.5
    return ChannelBank([h(), h()], [h(), h()], np.array([0.001, 0.002]))


def test_mix_is_the_linear_convolution_of_both_paths():
    bank = _bank()
    ota = OverTheAir(bank, sample_rate=1000, gain_db=(0, 0), noise_db=(0, 0))
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 0.5, (2, 300)).astype(np.float32)
    delta = rng.uniform(-0.05, 0.05, (2, 300)).astype(np.float32)
    delays = [0, 37]
    got = ota.mix(torch.from_numpy(x), torch.from_numpy(delta), torch.Generator().manual_seed(0),
                  delay_samples=torch.tensor(delays, dtype=torch.float32), channel=torch.tensor([1]),
                  noise=False).numpy()
    for i, d in enumerate(delays):
        shifted = np.concatenate([np.zeros(d, np.float32), delta[i]])[:300]
        want = np.convolve(x[i], bank.h_user[1])[:300] + np.convolve(shifted, bank.h_adv[1])[:300]
        want = np.clip(want, -1, 1)                      # the ADC clips
        np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_fractional_delay_matches_the_acoustics_filter():
    from testbed.acoustics import fractional_delay

    impulse = np.zeros(8, np.float32)
    impulse[0] = 1.0
    bank = ChannelBank([np.zeros(8, np.float32)], [impulse], np.array([0.0]))
    ota = OverTheAir(bank, sample_rate=1000, gain_db=(0, 0), noise_db=(0, 0))
    t = np.arange(400)
    delta = (0.05 * np.sin(2 * np.pi * 0.03 * t) * np.hanning(400)).astype(np.float32)
    got = ota.mix(torch.zeros(1, 400), torch.from_numpy(delta)[None], torch.Generator(),
                  delay_samples=torch.tensor([20.4]), noise=False)[0].numpy()
    want = fractional_delay(delta, 20.4, n_out=400)
    np.testing.assert_allclose(got[40:360], want[40:360], atol=2e-4)


def test_gradient_reaches_only_the_audible_part_of_delta():
    bank = _bank()
    ota = OverTheAir(bank, sample_rate=1000, gain_db=(0, 0), noise_db=(0, 0))
    delta = torch.zeros(1, 300, requires_grad=True)
    mic = ota.mix(torch.zeros(1, 300), delta, torch.Generator(), delay_samples=torch.tensor([100.0]))
    mic.sum().backward()
    g = delta.grad[0]
    assert torch.count_nonzero(g[:200]) == 200        # heard: played from sample 100 on
    assert torch.all(g[200:].abs() < 1e-6)           # pushed past the end of the window


def test_shift_perturbation_zero_fills_and_loops():
    d = torch.arange(1.0, 6.0)[None]
    assert shift_perturbation(d, 2).tolist() == [[0, 0, 1, 2, 3]]
    assert shift_perturbation(d, -2).tolist() == [[3, 4, 5, 0, 0]]
    assert shift_perturbation(d, 2, loop=True).tolist() == [[4, 5, 1, 2, 3]]
    assert shift_perturbation(d, torch.tensor([0, 1]), n_out=7).tolist() == [
        [1, 2, 3, 4, 5, 0, 0], [0, 1, 2, 3, 4, 5, 0]]


def test_bank_from_the_rig_jitters_positions(office_rig_path):
    from testbed.acoustics import sample_channel
    from testbed.rig import load_rig

    rig = load_rig(office_rig_path)
    bank = ChannelBank.from_rig(rig, mics=["cheap", "ref"], n_channels=3, position_jitter_m=0.2, seed=3)
    assert bank.mics == ["cheap", "ref", "cheap"]
    assert not np.allclose(bank.h_adv[0][:2000], bank.h_adv[2][:2000])
    exact = sample_channel(rig, "cheap", None, rng=np.random.default_rng(0), position_jitter_m=0.0)
    n = 4000
    ota = OverTheAir(ChannelBank.from_channels([exact]), sample_rate=rig.sample_rate,
                     gain_db=(0, 0), noise_db=(0, 0))
    rng = np.random.default_rng(2)
    x = rng.uniform(-0.3, 0.3, n).astype(np.float32)
    delta = rng.uniform(-0.01, 0.01, n).astype(np.float32)
    got = ota.mix(torch.from_numpy(x)[None], torch.from_numpy(delta)[None], torch.Generator(),
                  delay_samples=torch.tensor([0.0]), noise=False)[0].numpy()
    want = exact.apply({rig.user_speaker: x, rig.adversary_speaker: delta}, n_out=n)
    np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, np.abs(want).max()))
    with pytest.raises(AttackError, match="no mic 'nope'"):
        ChannelBank.from_rig(rig, mics=["nope"])


def test_ota_pgd_beats_plain_pgd_at_a_random_delay(tiny_model, tiny_data):
    """Crafted through channel + delay EOT, the perturbation survives a random sync delay."""
    x, y = tiny_data
    ota = OverTheAir(_room_bank(seed=4), sample_rate=4000, delay_ms=(0.0, 100.0), noise_db=(0, 0))
    eps = 0.2
    plain = PGD(tiny_model, eps=eps, steps=20, seed=0).perturb(x, y)
    robust = OTAPGD(tiny_model, eps=eps, steps=40, channel=ota, eot_samples=4, seed=0).perturb(x, y)

    def played(delta, seed):  # the same fresh draws of channel, delay and noise for both
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return float((tiny_model(ota.mix(x, delta, g)).argmax(1) != y).float().mean())

    plain_err = np.mean([played(plain, s) for s in range(5)])
    robust_err = np.mean([played(robust, s) for s in range(5)])
    assert robust_err > plain_err + 0.15
