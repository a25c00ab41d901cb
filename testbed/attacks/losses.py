"""The objectives attacks ascend, per example: logit margin and Croce & Hein's DLR losses."""

from __future__ import annotations

import torch

from testbed.errors import AttackError


def logit_margin(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``max_{j != label} z_j - z_label`` per example, shape (B,): positive once misclassified."""
    own = logits.gather(1, label.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, label.unsqueeze(1), float("-inf"))
    return others.max(dim=1).values - own


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Croce & Hein's DLR loss per example (B,): ``-(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3)``.

    ``pi`` sorts the logits in decreasing order; positive once misclassified, invariant to
    shifting and scaling the logits. Needs at least 3 classes.
    """
    if logits.shape[-1] < 3:
        raise AttackError(f"dlr loss: needs at least 3 classes, the model has {logits.shape[-1]}")
    z = logits.sort(dim=1, descending=True).values
    return logit_margin(logits, y) / (z[:, 0] - z[:, 2] + 1e-12)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR per example (B,): ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, ascended.

    Needs at least 4 classes.
    """
    if logits.shape[-1] < 4:
        raise AttackError(f"targeted dlr loss: needs at least 4 classes, the model has {logits.shape[-1]}")
    z = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    z_t = logits.gather(1, target.unsqueeze(1)).squeeze(1)
    return -(z_y - z_t) / (z[:, 0] - 0.5 * (z[:, 2] + z[:, 3]) + 1e-12)
