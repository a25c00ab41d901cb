"""Best-iterate bookkeeping: per clip, the perturbation an attack returns.

A clip once fooled stays fooled (a fooling iterate beats every non-fooling one), and
among iterates that agree on that, the one with the higher objective wins. Iterations and
random restarts merge through the same rule, so neither can lower an attack's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    #: whether :attr:`delta` is this object's own copy (then updates write into it in place)
    owned: bool = field(default=False, repr=False, compare=False)

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
            self.owned = True
            return self
        take = self.better(loss, fooled)
        if bool(take.any()):
            if self.owned and delta.shape == self.delta.shape:    # copy only the rows that changed
                rows = take.nonzero().squeeze(1)
                self.delta[rows] = delta.detach()[rows]
            else:
                self.delta, self.owned = torch.where(take.unsqueeze(-1), delta.detach(), self.delta), True
            self.loss = torch.where(take, loss, self.loss)
            self.fooled = self.fooled | fooled
        return self

    def merge(self, other: Best) -> Best:
        """The per-clip better of ``self`` and ``other`` (both scored); returns ``self``."""
        if not other.scored:
            raise ValueError("Best.merge: the other result was not scored")
        return self.update(other.delta, other.loss, other.fooled)
