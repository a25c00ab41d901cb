"""FGSM (Goodfellow et al.): one signed-gradient step of size eps (paper section 2.2.1)."""

from __future__ import annotations

import torch

from testbed.attacks.base import Attack


class FGSM(Attack):
    """Fast Gradient Sign Method, L-infinity, digital.

    ``delta = eps * sign(grad)`` of the cross-entropy (untargeted: ascended; targeted:
    the cross-entropy to the target descended), then clipped so ``x + delta`` is in [-1, 1].
    With ``restarts > 1`` the later runs step from a random point of the eps ball (R+FGSM)
    and each clip keeps the best of the runs.

    Example
    -------
    >>> atk = FGSM(model, eps=0.005)
    >>> x_adv = atk(x, y)
    """

    name = "fgsm"

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        start = torch.zeros_like(x)
        if self._restart > 0:
            start = self.project(x, self.uniform_noise(start))
        g = self.gradient(x, start, y, target)
        return self.project(x, start + self.eps * g.sign())
