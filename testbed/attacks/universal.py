"""Universal, delay-free perturbations: one delta for every command and every alignment."""

from __future__ import annotations

import torch

from testbed.attacks.base import _positive_int
from testbed.attacks.best import Best
from testbed.attacks.bounds import Alpha, Annotated, Count, Db, DbPair, DelayPairMs, Range, Seed, Steps
from testbed.attacks.channels import OverTheAir
from testbed.attacks.ota_pgd import build_over_the_air
from testbed.attacks.pgd import PGD
from testbed.attacks.timing import shift_perturbation
from testbed.errors import AttackError


class Universal(PGD):
    """One perturbation, optimised over the whole batch and over random alignments.

    The adversary plays ``delta`` (length ``length_samples``, shorter or longer than the
    command) in a loop, so whatever the moment the command starts, the model hears a
    random phase of it. Each step draws a minibatch of commands and one random phase (and,
    over the air, one channel draw) per command, and takes a signed-gradient step on the
    summed loss. Digitally the model hears ``clip(x + loop(delta)[phase:], -1, 1)``.

    Parameters
    ----------
    model, eps, alpha, seed, eot_samples, bpda
        See :class:`~testbed.attacks.pgd.PGD`.
    steps : int
        Signed-gradient steps (default 100).
    length_samples : int or None
        Length of the universal delta (default: the command's length).
    batch_size : int
        Commands per step.
    loop : bool
        Loop ``delta`` (delay-free); False: play it once at a random delay in ``delay_ms``.
    delay_ms : (min, max)
        Delay window when ``loop`` is False.
    over_the_air : bool
        Optimise through the rig's channels (needs ``rig`` or ``channel``), like ``ota-pgd``.
    channel, rig, mics, placement, n_channels, position_jitter_m, channel_seed, gain_db,
    noise_db, input_gain_db
        See :class:`~testbed.attacks.ota_pgd.OTAPGD`.

    Returns from ``perturb``: the same delta for every row, shape (B, length_samples).

    Example
    -------
    >>> atk = Universal(model, eps=0.01, length_samples=8000, steps=200)
    >>> delta = atk.perturb(x_train, y_train)[0]
    """

    name = "universal"
    supported_modes = ("untargeted", "targeted")

    def __init__(self, model, eps: float, *, steps: Steps = 100, alpha: Alpha = None,
                 length_samples: Annotated[int | None, Range(1, 10**7, integer=True)] = None,
                 batch_size: Count = 32, loop: bool = True,
                 delay_ms: DelayPairMs = (0.0, 500.0), over_the_air: bool = False,
                 channel: OverTheAir | None = None, rig=None, mics=None, placement=None,
                 n_channels: Annotated[int, Range(1, 1024, integer=True)] = 8,
                 position_jitter_m: Annotated[float, Range(0.0, 10.0)] = 0.1, channel_seed: Seed = 0,
                 gain_db: DbPair = (-2.0, 2.0), noise_db: DbPair = (-3.0, 3.0), input_gain_db: Db = 0.0,
                 sample_rate: Annotated[int | None, Range(8000, 192_000, integer=True)] = None,
                 **params) -> None:
        alpha = alpha if alpha is not None else float(eps) / 20.0
        super().__init__(model, eps, steps=steps, alpha=alpha, **params)
        if self.restarts != 1:
            raise AttackError(f"{self.name}: restarts must be 1 (one perturbation for the whole set), "
                              f"got {self.restarts}")
        self.length_samples = None if length_samples is None else _positive_int(
            self.name, "length_samples", length_samples)
        self.batch_size = _positive_int(self.name, "batch_size", batch_size)
        self.loop = bool(loop)
        self.over_the_air = bool(over_the_air or channel is not None)
        self.channel = None
        if self.over_the_air:
            self.channel = build_over_the_air(
                channel=channel, rig=rig, mics=mics, placement=placement, n_channels=n_channels,
                position_jitter_m=position_jitter_m, channel_seed=channel_seed, delay_ms=delay_ms,
                gain_db=gain_db, noise_db=noise_db, input_gain_db=input_gain_db, who=self.name)
        self.sample_rate = int(sample_rate or getattr(model, "sample_rate", 16000))
        self.delay_ms = tuple(float(v) for v in delay_ms)

    def model_input(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        if self.channel is not None:
            return self.channel.mix(x, delta, self.generator, loop=self.loop)
        b, s = x.shape
        if self.loop:
            d = torch.randint(delta.shape[-1], (b,), generator=self.generator, device=x.device)
        else:
            lo, hi = (v * self.sample_rate / 1000.0 for v in self.delay_ms)
            d = lo + (hi - lo) * torch.rand(b, generator=self.generator, device=x.device)
        return (x + shift_perturbation(delta, d, n_out=s, loop=self.loop)).clamp(-1.0, 1.0)

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return delta.clamp(-self.eps, self.eps)

    def _search(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> Best:
        return Best(self._perturb(x, y, target))

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        n = self.length_samples or x.shape[-1]
        delta = torch.zeros((1, n), device=x.device, dtype=x.dtype)
        if self.random_start:
            delta = self.uniform_noise(delta)
        for _ in range(self.steps):
            idx = torch.randperm(x.shape[0], generator=self.generator, device=x.device)[:self.batch_size]
            g = self.gradient(x[idx], delta, y[idx], None if target is None else target[idx])
            delta = self.project(x, delta + self.alpha * g.sign())
        return delta.expand(x.shape[0], n)
