"""The paper's training losses (section 3) and the baselines' (section 4.3), as ``loss_fn`` hooks.

Each ``*_loss`` factory returns a ``loss_fn(model, x, y) -> scalar`` for
:func:`testbed.models.train.train`.

- ensemble cross entropy (eq. 3 on the averaged softmax),
- consistency: mean pairwise KL between members (eq. 4),
- adversarial KL between the clean and the attacked ensemble (eq. 6),
- total: ``alpha * CE + beta * consistency + gamma * adversarial`` with alpha + beta + gamma = 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from testbed.errors import ModelError
from testbed.models.robust.ensemble import ensemble_log_probs
from testbed.models.robust.variants import check_weights

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def consistency_loss(member_log_probs: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``1 / (n (n - 1)) * sum_{i != j} KL(p_i || p_j)``, averaged over the batch.

    Parameters
    ----------
    member_log_probs : Tensor (n_members, batch, n_labels)
        Log-softmax of every member.

    Returns
    -------
    scalar Tensor, >= 0; 0 when all members agree (up to float32 rounding), exactly 0 for a single member.
    """
    n = member_log_probs.shape[0]
    if n < 2:
        return member_log_probs.sum() * 0.0
    p = member_log_probs.exp()
    self_term = (p * member_log_probs).sum(-1)                      # (n, B): sum_c p_i log p_i
    cross = torch.einsum("ibc,jbc->ijb", p, member_log_probs)       # (n, n, B): sum_c p_i log p_j
    kl = self_term.unsqueeze(1) - cross                             # KL(p_i || p_j), zero diagonal
    return kl.sum(dim=(0, 1)).mean() / (n * (n - 1))


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` per example from log-probabilities ``(batch, n_labels)``, averaged over the batch."""
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


class AdversarialExamples:
    """Crafts training-time adversarial examples with the attack library (fresh seed every call).

    Parameters
    ----------
    kind : str
        ``fgsm`` or ``pgd`` (any kind of :data:`testbed.attacks.ATTACKS`).
    eps : float
        L-infinity bound, PCM scale.
    steps : int
        PGD steps (ignored by FGSM).
    eps_range : bool
        Draw each batch's bound uniformly in ``[eps / 4, eps]`` (robust across bounds).
    seed : int
        Seeds the attacks' random starts and the bound draws.
    eot_samples : int
        Gradient draws per step against a stochastic model (1 keeps training affordable).
    """

    def __init__(self, kind: str = "pgd", eps: float = 0.005, steps: int = 3, *, eps_range: bool = False,
                 seed: int = 0, eot_samples: int = 1) -> None:
        self.kind, self.eps, self.steps, self.eps_range = kind, float(eps), int(steps), bool(eps_range)
        self.seed, self.eot_samples, self.calls = int(seed), int(eot_samples), 0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # function-level: testbed.attacks is a sibling package that never imports testbed.models
        # (no cycle); only adversarial fine-tuning needs it
        from testbed.attacks import make_attack

        self.calls += 1
        seed = self.seed * 1_000_003 + self.calls
        eps = self.eps
        if self.eps_range:
            eps = float(torch.empty(()).uniform_(self.eps / 4, self.eps, generator=torch.Generator().manual_seed(seed)))
        params = {"seed": seed, "eot_samples": self.eot_samples}
        if self.kind != "fgsm":
            params["steps"] = self.steps
        return make_attack(self.kind, model, eps, **params)(x, y).detach()

    def describe(self) -> dict:
        """Settings for the model card."""
        return {"kind": self.kind, "eps": self.eps, "steps": self.steps if self.kind != "fgsm" else 1,
                "eps_range": [self.eps / 4, self.eps] if self.eps_range else None,
                "eot_samples": self.eot_samples, "random_start": self.kind != "fgsm"}


def slr_loss(alpha: float = 0.5, beta: float = 0.3, gamma: float = 0.2, *, n_members: int = 4,
             adversary: AdversarialExamples | None = None) -> LossFn:
    """The paper's total loss (section 3.5) for an :class:`~testbed.models.robust.slr.SLREnsemble`.

    ``alpha * CE(ensemble(x), y) + beta * consistency(members(x)) +
    gamma * KL(ensemble(x) || ensemble(x + delta))`` with ``delta`` crafted on the current
    ensemble by ``adversary`` (skipped when ``gamma == 0``).

    Parameters
    ----------
    alpha, beta, gamma : float
        Weights, >= 0, summing to 1.
    n_members : int
        Members drawn per training step.
    adversary : AdversarialExamples, optional
        Default: PGD, 3 steps, eps 0.005.
    """
    alpha, beta, gamma = check_weights(alpha, beta, gamma)
    adversary = adversary or AdversarialExamples()

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = adversary(model, x, y) if gamma > 0 else None
        member_lp = torch.log_softmax(model.member_logits(x, n_members), dim=-1)
        ens = torch.logsumexp(member_lp, dim=0) - math.log(member_lp.shape[0])
        total = alpha * F.nll_loss(ens, y)
        if beta > 0:
            total = total + beta * consistency_loss(member_lp)
        if x_adv is not None:
            ens_adv = ensemble_log_probs(model.member_logits(x_adv, n_members))
            total = total + gamma * kl_divergence(ens, ens_adv)
        return total

    return loss


def noisy_ce_loss(n_members: int = 1) -> LossFn:
    """Cross entropy of a stochastic ensemble's averaged softmax over ``n_members`` draws (RSE training)."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(ensemble_log_probs(model.member_logits(x, n_members)), y)

    return loss


def distillation_loss(teacher: nn.Module, temperature: float) -> LossFn:
    """Soft cross entropy at temperature ``T`` against a teacher's soft labels (defensive distillation).

    The teacher's labels ``softmax(teacher(x) / T)`` are computed on the same (augmented)
    batch, so they are the soft labels of exactly the clips the student sees.
    """
    if temperature <= 0:
        raise ModelError(f"distillation: temperature must be > 0, got {temperature}")
    teacher.eval()

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = torch.softmax(teacher(x) / temperature, dim=-1)
        return -(soft * torch.log_softmax(model(x) / temperature, dim=-1)).sum(-1).mean()

    return loss


def temperature_ce_loss(temperature: float) -> LossFn:
    """Cross entropy of ``softmax(model(x) / T)`` against hard labels (training the teacher at ``T``)."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x) / temperature, y)

    return loss


def adversarial_training_loss(adversary: AdversarialExamples, adv_weight: float = 0.5) -> LossFn:
    """Adversarial data augmentation: ``(1 - w) * CE(x) + w * CE(x + delta)`` with ``delta`` from ``adversary``."""
    if not 0.0 <= adv_weight <= 1.0:
        raise ModelError(f"adversarial training: adv_weight must be in [0, 1], got {adv_weight}")

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = adversary(model, x, y)
        logits = model(torch.cat([x, x_adv]))
        ce = F.cross_entropy(logits, torch.cat([y, y]), reduction="none")
        n = x.shape[0]
        return (1 - adv_weight) * ce[:n].mean() + adv_weight * ce[n:].mean()

    return loss
