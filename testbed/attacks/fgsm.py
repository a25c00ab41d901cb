"""FGSM (Goodfellow et al.): one signed-gradient step of size eps (paper section 2.2.1)."""

from __future__ import annotations

import torch

from testbed.attacks.base import Attack


class FGSM(Attack):
    """Fast Gradient Sign Method, L-infinity, digital.

    ``delta = eps * sign(grad)`` of the cross-entropy (untargeted: ascended; targeted:
    the cross-entropy to the target descended), then clipped so ``x + delta`` is in [-1, 1].

    Example
    -------
    >>> atk = FGSM(model, eps=0.005)
    >>> x_adv = atk(x, y)
    """

    name = "fgsm"

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        g = self.gradient(x, torch.zeros_like(x), y, target)
        return self.project(x, self.eps * g.sign())
