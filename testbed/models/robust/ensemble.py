"""The base of the stochastic ensembles: n members in one batched forward, averaged softmax.

A stochastic ensemble wraps a trained :class:`~testbed.models.archs.KwsModel` (``base``).
Its members are independent draws of the model's randomness (noise on singular values for
SLR, noise on activations for RSE). Every forward pass draws fresh noise from the
ensemble's own seeded ``torch.Generator``; the members run as one batch of
``n_members x batch`` rows (member-major), and the ensemble's output is the log of the
members' mean softmax, so ``softmax(model(x))`` is the averaged probability the paper
predicts with and attacks see the ensemble exactly as deployed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from testbed.errors import ModelError


def ensemble_log_probs(member_logits: torch.Tensor) -> torch.Tensor:
    """Log of the members' mean softmax.

    Parameters
    ----------
    member_logits : Tensor (n_members, batch, n_labels)

    Returns
    -------
    Tensor (batch, n_labels): ``log(mean_k softmax(member_logits[k]))``.
    """
    n = member_logits.shape[0]
    return torch.logsumexp(torch.log_softmax(member_logits, dim=-1), dim=0) - math.log(n)


def check_members(n: int, what: str = "n_members") -> int:
    """``n`` as a positive int, else ModelError naming ``what``."""
    try:
        value = int(n)
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be a positive integer, got {n!r}") from None
    if value < 1 or value != n:
        raise ModelError(f"{what} must be a positive integer, got {n!r}")
    return value


class StochasticEnsemble(nn.Module):
    """A trained model plus inference-time randomness, evaluated as an ensemble of members.

    Parameters
    ----------
    base : nn.Module
        A :class:`~testbed.models.archs.KwsModel` already carrying the stochastic layers.
    n_members : int
        Members drawn per forward pass (settable: ``model.n_members = 16``).
    seed : int
        Seed of the noise generator (re-seed with :meth:`reseed`).

    Attributes
    ----------
    stochastic : bool
        Always True: two forward passes on the same input differ.
    labels, sample_rate, clip_samples, arch
        Those of ``base``.
    """

    stochastic: bool = True
    kind: str = "ensemble"
    #: eval-mode chunking: at most this many rows (members x clips) per batched pass. Larger
    #: passes amortise the per-operation cost (and use threads better); above ~512 rows the
    #: intermediates outgrow the caches
    max_rows: int = 512

    def __init__(self, base: nn.Module, n_members: int, seed: int = 0) -> None:
        super().__init__()
        self.base = base
        self._n_members = check_members(n_members)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    # -- what the zoo and the attacks read --------------------------------------------
    @property
    def labels(self) -> list[str]:
        return self.base.labels

    @property
    def sample_rate(self) -> int:
        return self.base.sample_rate

    @property
    def clip_samples(self) -> int:
        return self.base.clip_samples

    @property
    def arch(self) -> str:
        return self.base.arch

    @property
    def n_members(self) -> int:
        """Members averaged per forward pass."""
        return self._n_members

    @n_members.setter
    def n_members(self, n: int) -> None:
        self._n_members = check_members(n)

    def set_members(self, n: int) -> StochasticEnsemble:
        """Set the ensemble size used at inference; returns ``self``."""
        self.n_members = n
        return self

    def reseed(self, seed: int) -> StochasticEnsemble:
        """Restart the noise generator from ``seed``; returns ``self``."""
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)
        return self

    def randn(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """Standard normal draws from the ensemble's generator, on ``like``'s device and dtype."""
        return torch.randn(shape, generator=self.generator).to(device=like.device, dtype=like.dtype)

    # -- forward ------------------------------------------------------------------------
    def draw(self, n: int) -> Any:
        """This ensemble's randomness for ``n`` members (whatever :meth:`members_pass` takes)."""
        raise NotImplementedError

    def members_pass(self, x: torch.Tensor, draw: Any) -> torch.Tensor:
        """One batched pass of clips ``x (B, S)`` through the drawn members -> ``(n, B, n_labels)``."""
        raise NotImplementedError

    def member_logits(self, x: torch.Tensor, n: int | None = None, draw: Any = None) -> torch.Tensor:
        """Logits of ``n`` freshly drawn members, all members stacked in one batch.

        In eval mode a large batch is cut into chunks of clips of at most :attr:`max_rows`
        rows (members x clips) each, every chunk still one pass over all members with the
        same draw: one huge batch falls out of the CPU caches and runs slower per row.

        Parameters
        ----------
        x : Tensor (batch, samples), PCM in [-1, 1]
        n : int, optional
            Members (default: :attr:`n_members`); ignored when ``draw`` is given.
        draw : optional
            A :meth:`draw` result to reuse (e.g. to compare with a loop over members).

        Returns
        -------
        Tensor (n, batch, n_labels)
        """
        if draw is None:
            draw = self.draw(self.n_members if n is None else check_members(n, "members"))
        n = self.draw_size(draw)
        per = max(1, self.max_rows // n)
        if self.training or x.shape[0] <= per:
            return self.members_pass(x, draw)
        return torch.cat([self.members_pass(x[i:i + per], draw) for i in range(0, x.shape[0], per)], dim=1)

    def draw_size(self, draw: Any) -> int:
        """Number of members in a :meth:`draw` result."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw PCM ``(batch, samples)`` -> ensemble log-probabilities ``(batch, n_labels)``.

        They are valid logits: ``softmax`` of them is the members' mean softmax.
        """
        if x.dim() != 2:
            raise ModelError(f"model {self.arch}: input must be (batch, samples), got shape {tuple(x.shape)}")
        return ensemble_log_probs(self.member_logits(x))

    def extra_repr(self) -> str:
        return f"kind={self.kind}, n_members={self.n_members}, seed={self.seed}"


def fan_out(h: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat a batch for ``n`` members, member-major: ``(B, ...) -> (n * B, ...)``."""
    return h.unsqueeze(0).expand(n, *h.shape).reshape(n * h.shape[0], *h.shape[1:])
