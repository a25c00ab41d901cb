"""Query oracles: the DUT as a black box that hears captures, for score-based and label-only attacks.

A black-box attack over the air never sees the model's gradients, and never a digital sum
``x + delta``: it sends a command ``x`` (user speaker) and a candidate perturbation ``delta``
(adversary speaker), and the DUT answers for the capture at its mic. One answer for one capture
is one *query*. An oracle answers either the class scores (:meth:`QueryOracle.scores`, the
score-based threat model) or only the top class (:meth:`QueryOracle.top`, label-only: what a
serial DUT reporting labels gives).

:class:`ModelOracle` is the offline stand-in: it mixes through :class:`~testbed.attacks.channels.OverTheAir`
(a :class:`~testbed.attacks.channels.ChannelBank` draw, sync delay, gains and noise per query, so the
answers carry the channel's randomness as a real room's would) and runs a model under ``torch.no_grad``.
:class:`testbed.session.blackbox.LoopOracle` plays every query as a session trial instead.
Any score-based attack (NES here; Square when it lands) asks the same two questions.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from testbed.attacks.channels import OverTheAir
from testbed.errors import AttackError


#: ``top`` answer for a label the attack's model does not have (a wrong answer all the same).
OTHER_LABEL = -1
#: ``top`` answer when the DUT gave none (timeout, refusal): never counted as a success.
NO_ANSWER = -2


@runtime_checkable
class QueryOracle(Protocol):
    """What a black-box attack may ask of the DUT.

    ``rows`` (int64 (N,)) says which example of the attack's batch each query belongs to
    (a session oracle plays that example's command); ``x`` (N, S) is that command and
    ``delta`` (N, L) the perturbation sent to the adversary speaker. ``queries`` counts the
    captures answered so far (one per row).
    """

    queries: int

    def scores(self, x: torch.Tensor, delta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, n_labels) of the DUT for each capture."""
        ...

    def top(self, x: torch.Tensor, delta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The DUT's reported top class (N,) int64 for each capture; :data:`OTHER_LABEL` for a
        label outside the attack's labels, :data:`NO_ANSWER` when the DUT did not answer."""
        ...


class ModelOracle:
    """A model heard through the simulated over-the-air mix; counts one query per capture.

    Parameters
    ----------
    model : torch.nn.Module
        Raw PCM (B, S) -> logits (B, n_labels); only ever called under ``torch.no_grad``.
    channel : OverTheAir
        The channel bank and the delay / gain / noise draws (one draw per query).
    generator : torch.Generator
        Every random draw of the channel.
    batch_size : int
        Captures per forward call.
    loop : bool
        The adversary loops ``delta`` (the delay is a phase of it).
    """

    def __init__(self, model: torch.nn.Module, channel: OverTheAir, generator: torch.Generator, *,
                 batch_size: int = 512, loop: bool = False) -> None:
        self.model = model
        self.channel = channel
        self.generator = generator
        self.batch_size = int(batch_size)
        self.loop = bool(loop)
        self.queries = 0

    @torch.no_grad()
    def _logits(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, x.shape[0], self.batch_size):
            mic = self.channel.mix(x[i:i + self.batch_size], delta[i:i + self.batch_size],
                                   self.generator, loop=self.loop)
            out.append(self.model(mic).detach())
        self.queries += x.shape[0]
        return torch.cat(out)

    def scores(self, x: torch.Tensor, delta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self._logits(x, delta), dim=-1)

    def top(self, x: torch.Tensor, delta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self._logits(x, delta).argmax(dim=-1)


class Budget:
    """A per-example query budget that refuses, rather than overspends.

    Parameters
    ----------
    max_queries : int or None
        Queries allowed per example (None: unlimited).
    n_examples : int
    who : str
        The attack's name, for the error.
    """

    def __init__(self, max_queries: int | None, n_examples: int, who: str) -> None:
        self.max_queries = max_queries
        self.used = torch.zeros(n_examples, dtype=torch.int64)
        self.who = who

    def spend(self, rows: torch.Tensor) -> None:
        """Count one query for each entry of ``rows``; AttackError if any example would overrun."""
        counts = torch.bincount(rows.cpu(), minlength=self.used.shape[0])
        after = self.used + counts
        if self.max_queries is not None and int(after.max()) > self.max_queries:
            raise AttackError(f"{self.who}: query budget of {self.max_queries} per example would be "
                              f"exceeded ({int(after.max())})")
        self.used = after
