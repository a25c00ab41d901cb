"""Adaptive (EOT) and non-adaptive attacks on stochastic models, and how many draws each sees.

The non-adaptive baseline attacks a stochastic model the way a paper that ignores its
randomness would: through ONE fixed, seeded draw of it (:class:`FixedDraw`), a deterministic
model. The adaptive attack averages every gradient over ``eot_samples`` forward passes, each
of which already averages the ensemble's ``n_members`` fresh draws; :func:`eot_draws` counts
the model draws behind one gradient, so the two can be compared honestly.
"""

from __future__ import annotations

import torch
from torch import nn

#: how the non-adaptive baseline sees a stochastic model (reported as ``"non_adaptive"``)
NON_ADAPTIVE = "fixed-draw"


class FixedDraw(nn.Module):
    """A stochastic model frozen to one seeded draw of its randomness: a deterministic model.

    For a stochastic ensemble (``member_logits`` and a ``generator``, e.g. SLR or RSE) it is
    one member, drawn by re-seeding the ensemble's generator with ``seed`` at every forward
    (the generator's state is restored afterwards); its output is that member's
    log-softmax. For any other stochastic model every forward runs under a forked torch RNG
    seeded with ``seed``.

    Parameters
    ----------
    model : nn.Module
        Raw PCM (B, S) -> logits (B, n_labels), ``stochastic = True``.
    seed : int
        Which draw.

    Attributes
    ----------
    stochastic : bool
        False: two forwards on the same batch agree.
    """

    stochastic = False

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        super().__init__()
        self.inner = model
        self.seed = int(seed)
        self.labels = list(getattr(model, "labels", []) or [])
        self.sample_rate = getattr(model, "sample_rate", 16000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        model = self.inner
        gen = getattr(model, "generator", None)
        if hasattr(model, "member_logits") and isinstance(gen, torch.Generator):
            state = gen.get_state()
            gen.manual_seed(self.seed)
            try:
                return torch.log_softmax(model.member_logits(x, 1)[0], dim=-1)
            finally:
                gen.set_state(state)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return model(x)


def eot_draws(model: nn.Module, eot_samples: int) -> int:
    """Draws of the model's randomness behind one gradient: ``eot_samples`` passes times the
    ensemble's ``n_members`` per pass (1 for a deterministic model or a :class:`FixedDraw`)."""
    if not getattr(model, "stochastic", False):
        return 1
    return int(eot_samples) * int(getattr(model, "n_members", 1) or 1)
