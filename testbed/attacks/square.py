"""Square attack (Andriushchenko et al. 2020): score-based random search, L-infinity, 1-D.

"Square Attack: a query-efficient black-box adversarial attack via random search" (ECCV
2020), adapted to raw audio: a square of pixels becomes a contiguous window of samples,
whose length is a fraction ``p`` of the clip that shrinks on the paper's schedule as the
queries are spent. The model is only called under ``torch.no_grad``; nothing calls backward.
"""

from __future__ import annotations

import torch

from testbed.attacks.bounds import Annotated, Count, Range
from testbed.attacks.base import Attack, _positive_int
from testbed.attacks.best import Best
from testbed.errors import AttackError

#: (iteration bound on a 10 000-query scale, divisor of p_init) -- Andriushchenko et al.'s schedule
_SCHEDULE: tuple[tuple[int, int], ...] = (
    (10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
    (8000, 256), (10000, 512))


def window_fraction(p_init: float, query: int, n_queries: int) -> float:
    """Fraction ``p`` of the clip a window covers at ``query`` of a budget of ``n_queries``.

    The paper's piecewise-constant schedule, with the query index rescaled to a budget of
    10 000 queries: ``p_init`` for the first 10, then halved at 50, 200, 500, 1000, 2000, 4000,
    6000 and 8000.
    """
    it = int(query / max(1, n_queries) * 10000)
    for bound, div in _SCHEDULE:
        if it <= bound:
            return p_init / div
    return p_init / _SCHEDULE[-1][1]


class Square(Attack):
    """Square attack, L-infinity, score-only access (query-limited black box).

    Starts from a random ``+-eps`` perturbation per sample (the 1-D form of the paper's
    vertical stripes), then for each clip not yet fooled proposes to set one random window of
    ``max(1, round(p * S))`` samples to a random ``+eps`` or ``-eps`` and keeps the proposal if
    the loss rises. One query per proposal per clip; a fooled clip stops querying.

    Parameters
    ----------
    model, eps, seed, eot_samples
        See :class:`~testbed.attacks.base.Attack` (``eot_samples`` forwards average a score).
    n_queries : int
        Query budget per clip, the initial query included (paper: 10 000).
    p_init : float
        Initial window fraction of the clip, in (0, 1] (paper, L-infinity ImageNet: 0.05).
    loss : str
        ``"margin"`` (logit margin ``max_{j!=y} z_j - z_y``, the default, as in the paper) or
        ``"ce"``; targeted: ascends minus the target's loss.

    Attributes
    ----------
    clip_queries : list[int]
        Queries each clip used, in the order the clips were attacked (all calls).

    Example
    -------
    >>> atk = Square(model, eps=0.005, n_queries=1000, seed=1)
    >>> x_adv = atk(x, y); atk.clip_queries[:3]
    """

    name = "square"
    needs_gradients = False

    def __init__(self, model, eps: float, *, n_queries: Count = 1000,
                 p_init: Annotated[float, Range(0.0, 1.0, lo_open=True)] = 0.05,
                 loss: str = "margin", **common) -> None:
        common.setdefault("eot_samples", 1)
        super().__init__(model, eps, loss=loss, **common)
        self.n_queries = _positive_int(self.name, "n_queries", n_queries)
        self.p_init = float(p_init)
        if not 0.0 < self.p_init <= 1.0:
            raise AttackError(f"{self.name}: p_init must be in (0, 1], got {p_init}")
        self.clip_queries: list[int] = []

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor,
                 target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (N,) and success (N,) at ``delta``; counts N queries (times ``eot_samples``)."""
        loss_sum = logit_sum = None
        for _ in range(self.eot_samples):
            logits = self.model((x + delta).clamp(-1.0, 1.0))
            loss = self.objective(logits, y, target)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            logit_sum = logits if logit_sum is None else logit_sum + logits
        self.queries += x.shape[0] * self.eot_samples
        return loss_sum / self.eot_samples, self.fooled(logit_sum / self.eot_samples, y, target)

    @torch.no_grad()
    def _search(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> Best:
        b, s = x.shape
        g = self.generator
        sign = torch.randint(0, 2, (b, s), generator=g, device=x.device).to(x.dtype) * 2.0 - 1.0
        delta = self.project(x, self.eps * sign)
        loss, fooled = self.evaluate(x, delta, y, target)
        used = torch.ones(b, dtype=torch.int64, device=x.device)
        for q in range(1, self.n_queries):
            active = (~fooled).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            w = min(s, max(1, round(window_fraction(self.p_init, q, self.n_queries) * s)))
            start = torch.randint(0, s - w + 1, (active.numel(), 1), generator=g, device=x.device)
            cols = start + torch.arange(w, device=x.device).unsqueeze(0)            # (A, w)
            value = (torch.randint(0, 2, (active.numel(), 1), generator=g, device=x.device)
                     .to(x.dtype) * 2.0 - 1.0) * self.eps
            xa = x[active]
            cand = delta[active].scatter(1, cols, value.expand(-1, w))
            cand = self.project(xa, cand)
            tl = None if target is None else target[active]
            new_loss, new_fooled = self.evaluate(xa, cand, y[active], tl)
            used[active] += 1
            take = new_loss > loss[active]
            keep = active[take]
            delta[keep] = cand[take]
            loss[keep] = new_loss[take]
            fooled[keep] = new_fooled[take]
        self.clip_queries.extend(int(v) for v in used.cpu())
        return Best(delta, loss, fooled)

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return self._search(x, y, target).delta
