"""APGD (Croce & Hein 2020): parameter-free PGD with step-size halving, momentum and checkpoints.

The reference white-box attack of AutoAttack ("Reliable evaluation of adversarial robustness
with an ensemble of diverse parameter-free attacks", ICML 2020), L-infinity, on raw PCM in
[-1, 1]. Registered as ``apgd`` (any loss), ``apgd-ce`` and ``apgd-dlr``; with a target label
the DLR version is the targeted APGD (targeted DLR loss).
"""

from __future__ import annotations

import math

import torch

from testbed.attacks.bounds import Annotated, Range
from testbed.attacks.base import DLR_LOSSES, Attack, _positive_int
from testbed.attacks.best import Best
from testbed.errors import AttackError

#: momentum weight of the new step (Croce & Hein: alpha = 0.75)
MOMENTUM = 0.75
#: a checkpoint halves the step unless more than this fraction of the steps since the last
#: checkpoint raised the loss (Croce & Hein: rho = 0.75)
RHO = 0.75


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD checks its progress, for a budget of ``steps`` iterations.

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``;
    checkpoint ``j`` is iteration ``ceil(p_j * steps)`` (``p_j <= 1``, duplicates dropped).

    Returns
    -------
    increasing list of iteration indices in ``(0, steps]``
    """
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    out: list[int] = []
    for pj in p[1:]:
        w = max(1, math.ceil(pj * steps - 1e-9))
        if w <= steps and (not out or w > out[-1]):
            out.append(w)
    return out


class APGD(Attack):
    """Auto-PGD, L-infinity, with the step-size schedule, momentum and best iterate of Croce & Hein.

    Starts with step ``2 * eps``; at each checkpoint ``w_j`` (see :func:`checkpoints`) a clip's
    step is halved, and its search restarts from its best point so far, when (1) at most
    ``rho = 0.75`` of the steps since the last checkpoint raised its loss, or (2) its step was
    not halved at the last checkpoint and its best loss has not risen since. Each update is
    ``z = P(x_k + eta * sign(g))``, ``x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1}))``.
    Per clip the returned perturbation is a fooling iterate if any fooled the model, else the
    iterate of highest loss.

    Parameters
    ----------
    model, eps, seed, eot_samples, bpda, restarts
        See :class:`~testbed.attacks.base.Attack`; against a stochastic model every gradient
        and loss is an ``eot_samples`` average (APGD-EOT).
    steps : int
        Gradient evaluations per run, the first at the starting point (so ``steps`` costs the
        same as PGD's ``steps``).
    loss : str
        ``"ce"`` (APGD-CE), ``"dlr"`` (APGD-DLR; targeted: the targeted DLR loss
        ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``) or ``"margin"``.
    random_start : bool
        Start from uniform noise in the eps ball (restarts after the first always do).

    Attributes
    ----------
    trace : dict
        Of the last run: ``"loss"`` (steps, B) the loss at every iterate, ``"best_loss"``
        (steps, B) the best loss so far, ``"step"`` (steps, B) the step size used to reach it,
        ``"checkpoints"`` the checkpoint iterations.

    Example
    -------
    >>> atk = APGD(model, eps=0.005, steps=100, loss="dlr", restarts=2)
    >>> x_adv = atk(x, y)
    """

    name = "apgd"
    losses = DLR_LOSSES

    def __init__(self, model, eps: float, *, steps: Annotated[int, Range(2, 100_000, integer=True)] = 100,
                 random_start: bool = True, **common) -> None:
        super().__init__(model, eps, **common)
        self.steps = _positive_int(self.name, "steps", steps)
        if self.steps < 2:
            raise AttackError(f"{self.name}: steps must be at least 2, got {steps}")
        self.random_start = bool(random_start)
        self.trace: dict = {}

    def _search(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> Best:
        b = x.shape[0]
        n_iter = self.steps - 1                         # updates after the first gradient
        checks = set(checkpoints(n_iter))
        step = torch.full((b, 1), 2.0 * self.eps, device=x.device, dtype=x.dtype)

        delta = self.init_delta(x)
        loss, grad, fooled = self.value_and_grad(x, delta, y, target)
        result = Best(delta).update(delta, loss, fooled)
        best_loss, best_delta, best_grad = loss.clone(), delta.clone(), grad.clone()
        losses, best_losses, steps_used = [loss], [best_loss.clone()], [step.squeeze(1).clone()]

        delta_prev = delta
        last_check = 0
        best_at_check = best_loss.clone()
        halved_at_check = torch.ones(b, dtype=torch.bool, device=x.device)
        for i in range(1, n_iter + 1):
            z = self.project(x, delta + step * grad.sign())
            a = MOMENTUM if i > 1 else 1.0
            new = self.project(x, delta + a * (z - delta) + (1.0 - a) * (delta - delta_prev))
            delta_prev, delta = delta, new
            loss, grad, fooled = self.value_and_grad(x, delta, y, target)
            result.update(delta, loss, fooled)
            up = loss > best_loss
            best_loss = torch.where(up, loss, best_loss)
            if bool(up.any()):          # copy only the clips that rose (our own clones: in place)
                rows = up.nonzero().squeeze(1)
                best_delta[rows], best_grad[rows] = delta[rows], grad[rows]
            losses.append(loss)
            best_losses.append(best_loss.clone())
            steps_used.append(step.squeeze(1).clone())
            if i in checks:
                hist = torch.stack(losses[last_check:i + 1])          # (i - last_check + 1, B)
                n_up = (hist[1:] > hist[:-1]).sum(dim=0)
                cond1 = n_up <= RHO * (i - last_check)
                cond2 = ~halved_at_check & (best_at_check >= best_loss)
                halve = cond1 | cond2
                halved_at_check = halve
                best_at_check = best_loss.clone()
                last_check = i
                if bool(halve.any()):
                    step = torch.where(halve.unsqueeze(1), step / 2.0, step)
                    delta = torch.where(halve.unsqueeze(1), best_delta, delta)
                    grad = torch.where(halve.unsqueeze(1), best_grad, grad)
        self.trace = {"loss": torch.stack(losses).cpu(), "best_loss": torch.stack(best_losses).cpu(),
                      "step": torch.stack(steps_used).cpu(), "checkpoints": sorted(checks)}
        return result

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return self._search(x, y, target).delta


class APGDCE(APGD):
    """APGD on the cross-entropy (AutoAttack's first attack). See :class:`APGD`."""

    name = "apgd-ce"

    def __init__(self, model, eps: float, *, loss: str = "ce", **params) -> None:
        super().__init__(model, eps, loss=loss, **params)


class APGDDLR(APGD):
    """APGD on the DLR loss; with a target label, the targeted APGD-DLR. See :class:`APGD`."""

    name = "apgd-dlr"

    def __init__(self, model, eps: float, *, loss: str = "dlr", **params) -> None:
        super().__init__(model, eps, loss=loss, **params)
