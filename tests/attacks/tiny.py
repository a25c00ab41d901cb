"""A tiny raw-PCM classifier trained in seconds on synthetic tones, for the attack tests."""

from __future__ import annotations

import numpy as np
import torch

TINY_LABELS = ["low", "high", "noise"]
TINY_RATE = 4000
TINY_SAMPLES = 1600


def tiny_signals(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of 0.4 s clips at 4 kHz: a low tone, a high tone, white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(TINY_SAMPLES) / TINY_RATE
    x = np.empty((n, TINY_SAMPLES), dtype=np.float32)
    y = rng.integers(0, 3, size=n)
    for i, c in enumerate(y):
        amp = rng.uniform(0.2, 0.5)
        if c == 2:
            x[i] = amp * rng.standard_normal(TINY_SAMPLES) / 2.0
        else:
            f = rng.uniform(200, 300) if c == 0 else rng.uniform(900, 1100)
            x[i] = amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    x += 0.01 * rng.standard_normal(x.shape).astype(np.float32)
    return torch.from_numpy(np.clip(x, -1, 1)), torch.from_numpy(y.astype(np.int64))


class TinyNet(torch.nn.Module):
    """Raw PCM (B, S) -> logits (B, 3): two strided convolutions, mean pool, linear."""

    def __init__(self, stochastic: bool = False) -> None:
        super().__init__()
        self.labels = list(TINY_LABELS)
        self.sample_rate = TINY_RATE
        self.stochastic = stochastic
        self.conv1 = torch.nn.Conv1d(1, 8, 32, stride=8)
        self.conv2 = torch.nn.Conv1d(8, 16, 8, stride=4)
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x.unsqueeze(1) * 4.0))
        if self.stochastic:  # the randomness a defence would add at inference
            h = h * (1.0 + 0.5 * torch.randn_like(h))
        h = torch.relu(self.conv2(h)).mean(dim=-1)
        return self.fc(h)


def train_tiny(stochastic: bool = False, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(stochastic=False)
    x, y = tiny_signals(512, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        idx = torch.randint(0, x.shape[0], (64,))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.stochastic = stochastic
    return model.eval()


class NoBackward(torch.autograd.Function):
    """Identity whose backward raises: put in front of a model, it proves an attack never reads
    a gradient (black-box attacks)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("backward called on a black-box model")
