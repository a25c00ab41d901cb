"""Streaming perturbations: chosen per 100 ms window from what the DUT mic heard in the window before.

The adversary listens (at the DUT's mic, or a mic beside it) and plays, in window ``k``, a
perturbation a small causal predictor computes from the log-mel of window ``k - 1`` of what it
heard, as neural voice camouflage does; so it never needs to know when the user speaks. The
adversary knows what it played itself, so its own sound is taken out of what it hears (an echo
canceller): the predictor hears the command, the room and the noise.

:class:`StreamingPredictor` is the network (a 1-D conv over the window's log-mel frames, pooled,
then a linear map to the next window's samples, bounded by ``eps`` with ``tanh``); window 0, when
nothing has been heard yet, plays a learned constant. :func:`train_streaming` trains it offline on
a source model with the universal perturbation's EOT: random utterances, random start times of the
command against the window grid, channel draws, path gains and noise (:class:`OverTheAir`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from testbed.attacks.bounds import Annotated, Count, Db, DbPair, DelayPairMs, Range, Seed, Steps
from testbed.attacks.base import Attack, _positive_int
from testbed.attacks.channels import OverTheAir
from testbed.errors import AttackError

#: The window the adversary decides on, ms.
WINDOW_MS = 100.0


class StreamingPredictor(torch.nn.Module):
    """Causal perturbation predictor: heard audio (B, S) -> perturbation (B, S), ``|.| <= eps``.

    Output window ``k`` (samples ``[k W, (k + 1) W)``) depends only on input window ``k - 1``,
    so changing the audio after window ``k`` never changes windows ``<= k``.

    Parameters
    ----------
    eps : float
        L-infinity bound, PCM scale.
    sample_rate : int
    window_ms : float
        Decision window, ms (default 100).
    n_mels, hidden : int
        Log-mel bands of the input, channels of the conv layers.
    seed : int
        Seeds the initial weights.
    """

    def __init__(self, eps: float, sample_rate: int = 16000, *, window_ms: float = WINDOW_MS,
                 n_mels: int = 32, hidden: int = 32, seed: int = 0) -> None:
        super().__init__()
        import torchaudio

        if not 0 < float(eps) <= 1:
            raise AttackError(f"streaming: eps must be in (0, 1], got {eps}")
        self.eps = float(eps)
        self.sample_rate = int(sample_rate)
        self.window = int(round(window_ms * sample_rate / 1000.0))
        if self.window < 16:
            raise AttackError(f"streaming: window_ms {window_ms} is under 16 samples at {sample_rate} Hz")
        n_fft = min(512, 1 << (self.window // 4).bit_length())
        n_fft = max(16, min(n_fft, self.window))
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=max(1, n_fft // 2), n_mels=n_mels,
            f_max=sample_rate / 2.0)
        with torch.random.fork_rng(devices=[]):   # seeded weights, the global generator untouched
            torch.manual_seed(int(seed))
            self.conv1 = torch.nn.Conv1d(n_mels, hidden, 3, padding=1)
            self.conv2 = torch.nn.Conv1d(hidden, hidden, 3, padding=1)
            self.out = torch.nn.Linear(hidden, self.window)
        self.first = torch.nn.Parameter(torch.zeros(self.window))

    def windows(self, heard: torch.Tensor) -> torch.Tensor:
        """Perturbations (B, K, W) for the K windows of ``heard`` (B, K * W)."""
        b, s = heard.shape
        k = s // self.window
        frames = heard[:, : k * self.window].reshape(b * k, self.window)
        feats = torch.log(self.mel(frames) + 1e-6)                       # (B K, n_mels, T)
        feats = feats - feats.mean(dim=(1, 2), keepdim=True)
        h = F.relu(self.conv1(feats))
        h = F.relu(self.conv2(h)).mean(dim=-1)                           # (B K, hidden)
        nxt = self.out(h).reshape(b, k, self.window)                     # from window j: for j + 1
        first = self.first.expand(b, 1, self.window)
        return self.eps * torch.tanh(torch.cat([first, nxt[:, :-1]], dim=1))

    def forward(self, heard: torch.Tensor) -> torch.Tensor:
        """The perturbation (B, S) to play against ``heard`` (B, S); a last partial window is
        decided from the last whole one."""
        b, s = heard.shape
        k = -(-s // self.window)
        padded = F.pad(heard, (0, k * self.window - s))
        return self.windows(padded).reshape(b, k * self.window)[:, :s]


def heard_by_adversary(channel: OverTheAir, stream: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What the adversary hears of ``stream`` (B, S) with its own playback cancelled: the command
    through a random user->mic path, gains and noise."""
    silent = torch.zeros((1, 1), device=stream.device, dtype=stream.dtype)
    return channel.mix(stream, silent, generator, delay_samples=torch.zeros(1))


def train_streaming(model: torch.nn.Module, predictor: StreamingPredictor, x: torch.Tensor, y: torch.Tensor,
                    channel: OverTheAir | None = None, *, target: torch.Tensor | None = None, steps: int = 200,
                    batch_size: int = 16, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train ``predictor`` so that ``model`` misclassifies (or hears ``target`` in) commands under it.

    Each step draws ``batch_size`` commands, places each at a random start inside a stream one
    window longer than the command (so the command starts anywhere against the window grid),
    lets the predictor hear the stream (``channel``'s user path, own playback cancelled), mixes
    its perturbation in over the air (a fresh channel draw, gains, noise) and ascends the model's
    loss on the command's window. ``model``'s own parameters are not changed.

    Parameters
    ----------
    x : float (N, S) commands; y : int64 (N,) labels; target : int64 (N,) or None.
    channel : the over-the-air mix; None: digital (heard = stream, mic = stream + perturbation).

    Returns
    -------
    the loss of each step (ascended: higher is a stronger attack)
    """
    g = torch.Generator(device=x.device).manual_seed(int(seed))
    opt = torch.optim.Adam(predictor.parameters(), lr=lr)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    n, s = x.shape
    w = predictor.window
    losses = []
    try:
        for _ in range(int(steps)):
            idx = torch.randint(n, (min(batch_size, n),), generator=g, device=x.device)
            xb, yb = x[idx], y[idx]
            start = torch.randint(w, (xb.shape[0],), generator=g, device=x.device)
            cols = torch.arange(s + w, device=x.device)[None, :] - start[:, None]
            stream = torch.where((cols >= 0) & (cols < s), xb.gather(1, cols.clamp(0, s - 1)), torch.zeros(()))
            if channel is None:
                pert = predictor(stream)
                mic = (stream + pert).clamp(-1.0, 1.0)
            else:
                with torch.no_grad():
                    heard = heard_by_adversary(channel, stream, g)
                pert = predictor(heard)
                mic = channel.mix(stream, pert, g, delay_samples=torch.zeros(1))
            window = mic.gather(1, start[:, None] + torch.arange(s, device=x.device)[None, :])
            logits = model(window)
            if target is None:
                loss = F.cross_entropy(logits, yb)
            else:
                loss = -F.cross_entropy(logits, target[idx])
            opt.zero_grad()
            (-loss).backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        for p, req in frozen:
            p.requires_grad_(req)
        model.train(was_training)
    return losses


class Streaming(Attack):
    """The streaming attack as a registry kind: trains a :class:`StreamingPredictor` on the batch.

    ``perturb(x, y)`` trains :attr:`predictor` on the commands ``x`` (EOT as in
    :func:`train_streaming`) and returns what it plays against each command heard alone, (B, S).
    A session (plan ``kind = "streaming"``) keeps the predictor and runs it on what the DUT mic
    hears in every trial.

    Parameters
    ----------
    model, eps, seed
        See :class:`~testbed.attacks.base.Attack`.
    steps, batch_size, lr : training of the predictor.
    window_ms, n_mels, hidden : see :class:`StreamingPredictor`.
    sample_rate : int or None
        Default: the model's.
    """

    name = "streaming"
    over_the_air = False

    def __init__(self, model, eps: float, *, steps: Steps = 200, batch_size: Count = 16,
                 lr: Annotated[float, Range(0.0, 1.0, lo_open=True)] = 3e-3,
                 window_ms: Annotated[float, Range(1.0, 10_000.0)] = WINDOW_MS,
                 n_mels: Annotated[int, Range(1, 512, integer=True)] = 32,
                 hidden: Annotated[int, Range(1, 4096, integer=True)] = 32,
                 sample_rate: Annotated[int | None, Range(8000, 192_000, integer=True)] = None, **common) -> None:
        super().__init__(model, eps, **common)
        self.steps = _positive_int(self.name, "steps", steps)
        self.batch_size = _positive_int(self.name, "batch_size", batch_size)
        self.lr = float(lr)
        self.window_ms = float(window_ms)
        self.n_mels = _positive_int(self.name, "n_mels", n_mels)
        self.hidden = _positive_int(self.name, "hidden", hidden)
        self.sample_rate = int(sample_rate or getattr(model, "sample_rate", 16000))
        self.channel: OverTheAir | None = None
        self.predictor = self.new_predictor()

    def new_predictor(self) -> StreamingPredictor:
        """An untrained predictor with this attack's settings and seed."""
        return StreamingPredictor(self.eps, self.sample_rate, window_ms=self.window_ms, n_mels=self.n_mels,
                                  hidden=self.hidden, seed=self.seed).to(self.device)

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with torch.enable_grad():
            train_streaming(self.model, self.predictor, x, y, self.channel, target=target, steps=self.steps,
                            batch_size=self.batch_size, lr=self.lr, seed=self.seed)
        with torch.no_grad():
            heard = x if self.channel is None else heard_by_adversary(self.channel, x, self.generator)
            return self.predictor(heard).clamp(-self.eps, self.eps)

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return delta.clamp(-self.eps, self.eps)


class OTAStreaming(Streaming):
    """:class:`Streaming` trained through the rig's channels (``rig`` or ``channel``; see
    :class:`~testbed.attacks.ota_pgd.OTAPGD` for the channel keywords)."""

    name = "ota-streaming"

    def __init__(self, model, eps: float, *, channel: OverTheAir | None = None, rig=None, mics=None,
                 placement: str | None = None, n_channels: Annotated[int, Range(1, 1024, integer=True)] = 8,
                 position_jitter_m: Annotated[float, Range(0.0, 10.0)] = 0.1, channel_seed: Seed = 0,
                 delay_ms: DelayPairMs = (0.0, 0.0), gain_db: DbPair = (-2.0, 2.0), noise_db: DbPair = (-3.0, 3.0),
                 input_gain_db: Db = 0.0, **params) -> None:
        from testbed.attacks.ota_pgd import build_over_the_air

        super().__init__(model, eps, **params)
        self.channel = build_over_the_air(
            channel=channel, rig=rig, mics=mics, placement=placement, n_channels=n_channels,
            position_jitter_m=position_jitter_m, channel_seed=channel_seed, delay_ms=delay_ms,
            gain_db=gain_db, noise_db=noise_db, input_gain_db=input_gain_db, who=self.name)
