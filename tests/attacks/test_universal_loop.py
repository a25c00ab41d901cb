"""Delay-free universal perturbations (issue 24, item 3): one signal for every utterance, trained over
phases of the loop and channels, and a success report over delays that covers the loop."""

from __future__ import annotations

import numpy as np
import torch

from testbed.attacks import ChannelBank, OverTheAir, delay_sweep, loop_delays_ms, make_attack


def _channel() -> OverTheAir:
    rng = np.random.default_rng(0)
    hs = []
    for _ in range(4):
        h = np.zeros(16, np.float32)
        h[0] = 1.0
        h[4:] += (0.1 * rng.standard_normal(12) * np.exp(-np.arange(12) / 3)).astype(np.float32)
        hs.append(h)
    return OverTheAir(ChannelBank(hs[:2], hs[2:], np.array([1e-3, 1e-3])), sample_rate=4000,
                      gain_db=(-1.0, 1.0), noise_db=(0.0, 0.0))


def test_one_loop_for_every_utterance_that_works_at_every_phase(tiny_model, tiny_data):
    x, y = tiny_data
    ota = _channel()
    atk = make_attack("ota-universal", tiny_model, 0.3, channel=ota, steps=150, batch_size=16, alpha=0.03,
                      length_samples=800, seed=0)
    delta = atk.perturb(x[:16], y[:16])
    assert delta.shape == (16, 800) and torch.equal(delta, delta[:1].expand_as(delta))   # one signal
    delays = loop_delays_ms(800, 4000, 8)
    assert delays == [0.0, 25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 175.0]   # one period of a 200 ms loop
    held_x, held_y = x[16:], y[16:]                                          # utterances it never saw
    attacked = delay_sweep(tiny_model, held_x, held_y, delta[0], delays, sample_rate=4000, channel=ota, draws=2)
    clean = delay_sweep(tiny_model, held_x, held_y, torch.zeros(800), delays, sample_rate=4000, channel=ota)
    assert list(attacked) == delays
    assert max(clean.values()) <= 0.125
    assert min(attacked.values()) >= 0.4        # at every phase of the loop, not on average


def test_delay_sweep_is_the_looped_digital_sum(tiny_model, tiny_data):
    x, y = tiny_data[0][:8], tiny_data[1][:8]
    delta = 0.3 * torch.sign(torch.randn(400, generator=torch.Generator().manual_seed(1)))
    got = delay_sweep(tiny_model, x, y, delta, [0.0, 37.5], sample_rate=4000)
    for d_ms, rate in got.items():
        d = int(d_ms * 4)
        idx = torch.remainder(torch.arange(x.shape[1]) - d, 400)
        with torch.no_grad():
            want = (tiny_model((x + delta[idx]).clamp(-1, 1)).argmax(1) != y).float().mean()
        assert rate == float(want)
