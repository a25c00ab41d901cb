"""Best-iterate bookkeeping: per clip, the perturbation an attack returns.

A clip once fooled stays fooled (a fooling iterate beats every non-fooling one), and
among iterates that agree on that, the one with the higher objective wins. Iterations and
random restarts merge through the same rule, so neither can lower an attack's error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Best:
    """The best perturbation found so far for each clip of a batch.

    Attributes
    ----------
    delta : float tensor (B, S_delta)
    loss : float tensor (B,) or None
        Objective at ``delta`` (higher is better for the attacker); None: not scored.
    fooled : bool tensor (B,) or None
        Whether ``delta`` fools the model (untargeted: wrong label; targeted: the target).
    """

    delta: torch.Tensor
    loss: torch.Tensor | None = None
    fooled: torch.Tensor | None = None

    @property
    def scored(self) -> bool:
        return self.loss is not None and self.fooled is not None

    def better(self, loss: torch.Tensor, fooled: torch.Tensor) -> torch.Tensor:
        """Clips (B,) where an iterate with ``loss`` and ``fooled`` beats the kept one."""
        return (fooled & ~self.fooled) | ((fooled == self.fooled) & (loss > self.loss))

    def update(self, delta: torch.Tensor, loss: torch.Tensor, fooled: torch.Tensor) -> Best:
        """Keep ``delta`` on the clips where it is better; returns ``self``."""
        loss, fooled = loss.detach(), fooled.detach().bool()
        if not self.scored:
            self.delta, self.loss, self.fooled = delta.detach().clone(), loss.clone(), fooled.clone()
            return self
        take = self.better(loss, fooled)
        if bool(take.any()):
            self.delta = torch.where(take.unsqueeze(-1), delta.detach(), self.delta)
            self.loss = torch.where(take, loss, self.loss)
            self.fooled = self.fooled | fooled
        return self

    def merge(self, other: Best) -> Best:
        """The per-clip better of ``self`` and ``other`` (both scored); returns ``self``."""
        if not other.scored:
            raise ValueError("Best.merge: the other result was not scored")
        return self.update(other.delta, other.loss, other.fooled)
