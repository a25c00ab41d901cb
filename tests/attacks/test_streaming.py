"""Streaming perturbations (issue 24, item 3): a causal per-window predictor, seeded, that attacks."""

from __future__ import annotations

import numpy as np
import torch

from testbed.attacks import ChannelBank, OverTheAir
from testbed.attacks.streaming import StreamingPredictor, train_streaming


def test_predictor_is_causal():
    """Changing the audio after window k never changes windows <= k; indeed not even window k+1,
    which is decided from window k; window k+2 does follow the change."""
    pred = StreamingPredictor(0.05, 4000, n_mels=16, seed=1)
    w = pred.window
    assert w == 400                                     # 100 ms at 4 kHz
    g = torch.Generator().manual_seed(0)
    heard = 0.3 * torch.randn(2, 10 * w + 123, generator=g)
    with torch.no_grad():
        base = pred(heard)
        assert base.shape == heard.shape and float(base.abs().max()) <= 0.05
        for k in range(10):
            other = heard.clone()
            t = torch.arange(other.shape[1] - (k + 1) * w) / 4000.0
            other[:, (k + 1) * w:] = 0.5 * torch.sin(2 * torch.pi * (300.0 + 100 * k) * t)   # something else
            out = pred(other)
            assert torch.equal(out[:, : (k + 2) * w], base[:, : (k + 2) * w]), k
            if k < 8:
                changed = (out[:, (k + 2) * w: (k + 3) * w] - base[:, (k + 2) * w: (k + 3) * w]).abs().max()
                assert changed > 1e-3, k   # window k+2 is decided from the changed window k+1


def test_seeded():
    a, b, c = (StreamingPredictor(0.05, 4000, n_mels=16, seed=s) for s in (3, 3, 4))
    x = torch.randn(1, 1200)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))


def test_trained_predictor_attacks_commands_it_hears_at_any_start(tiny_model, tiny_data):
    x, y = tiny_data
    rng = np.random.default_rng(0)
    h = np.zeros(16, np.float32)
    h[0] = 1.0
    h[4:] += (0.1 * rng.standard_normal(12) * np.exp(-np.arange(12) / 3)).astype(np.float32)
    ota = OverTheAir(ChannelBank([h], [h], np.array([1e-3])), sample_rate=4000, gain_db=(-1.0, 1.0),
                     noise_db=(0.0, 0.0))
    pred = StreamingPredictor(0.3, 4000, n_mels=16, seed=0)
    before = {p: p.detach().clone() for p in tiny_model.parameters()}
    train_streaming(tiny_model, pred, x[:16], y[:16], ota, steps=400, batch_size=16, seed=0)
    assert all(torch.equal(p, before[p]) for p in tiny_model.parameters())   # the DUT's model is untouched
    hx, hy = x[16:], y[16:]
    g = torch.Generator().manual_seed(5)
    w, s = pred.window, hx.shape[1]
    wrong, clean_wrong = [], []
    with torch.no_grad():
        for start in range(0, 400, 50):               # the command starts anywhere on the window grid
            stream = torch.nn.functional.pad(hx, (start, w - start))
            heard = ota.mix(stream, torch.zeros(1, 1), g, delay_samples=torch.zeros(1))
            mic = ota.mix(stream, pred(heard), g, delay_samples=torch.zeros(1))[:, start:start + s]
            clean = ota.mix(stream, torch.zeros_like(stream), g, delay_samples=torch.zeros(1))[:, start:start + s]
            wrong.append(float((tiny_model(mic).argmax(1) != hy).float().mean()))
            clean_wrong.append(float((tiny_model(clean).argmax(1) != hy).float().mean()))
    assert max(clean_wrong) <= 0.125
    # the tiny model is sensitive to its stride's phase, so some starts resist; on average it errs
    assert float(np.mean(wrong)) >= 0.4, wrong
