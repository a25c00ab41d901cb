"""PGD (Madry et al.): iterated signed-gradient steps projected on the eps ball (section 2.2.2)."""

from __future__ import annotations

import torch

from testbed.attacks.base import Attack, _positive_int
from testbed.attacks.best import Best
from testbed.attacks.bounds import Alpha, Steps
from testbed.errors import AttackError


class PGD(Attack):
    """Projected Gradient Descent, L-infinity, on raw PCM.

    Parameters
    ----------
    model, eps, seed, eot_samples, bpda
        See :class:`~testbed.attacks.base.Attack`.
    steps : int
        Gradient steps (paper: 20).
    alpha : float or None
        Step size, PCM scale; default ``2.5 * eps / steps`` (Madry et al.).
    random_start : bool
        Start from uniform noise in the eps ball rather than from zero (restarts after the
        first always start at random).
    restarts : int
        Runs per batch; per clip the best iterate of all runs is returned.

    The returned perturbation is, per clip, the best iterate seen (not the last one): a
    fooling iterate if any step fooled the model, else the one of highest objective.

    Example
    -------
    >>> atk = PGD(model, eps=0.005, steps=20)
    >>> x_adv = atk(x, y)                                  # untargeted
    >>> x_adv = atk(x, y, target=torch.full_like(y, 3))    # targeted
    """

    name = "pgd"

    def __init__(self, model, eps: float, *, steps: Steps = 20, alpha: Alpha = None,
                 random_start: bool = True, **common) -> None:
        super().__init__(model, eps, **common)
        self.steps = _positive_int(self.name, "steps", steps)
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.steps
        if not self.alpha > 0:
            raise AttackError(f"{self.name}: alpha must be > 0, got {alpha}")
        self.random_start = bool(random_start)

    def _search(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> Best:
        delta = self.init_delta(x)
        best = Best(delta)
        for _ in range(self.steps):
            loss, g, fooled = self.value_and_grad(x, delta, y, target)
            best.update(delta, loss, fooled)
            delta = self.project(x, delta + self.alpha * g.sign())
        loss, fooled = self.score(x, delta, y, target)
        return best.update(delta, loss, fooled)

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return self._search(x, y, target).delta
