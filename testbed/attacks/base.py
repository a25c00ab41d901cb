"""The base class every attack derives from, modelled on torchattacks' ``Attack``.

An attack holds a model, an L-infinity bound ``eps`` in the PCM scale ([-1, 1]) and its
hyper-parameters as plain attributes. :meth:`Attack.perturb` returns the perturbation
``delta``; calling the attack returns the digital adversarial example
``clip(x + delta, -1, 1)``. Both set the model up for the attack (eval mode, parameters
frozen, straight-through gradients through quantisers) and restore it afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
import torch.nn.functional as F

from testbed.attacks.best import Best
from testbed.attacks.losses import dlr_loss, logit_margin, targeted_dlr_loss
from testbed.attacks.ste import GRADIENTS, gradient_mode
from testbed.attacks.bounds import Annotated, Range, Seed
from testbed.errors import AttackError

#: EOT samples used by default against models that declare ``stochastic = True``.
DEFAULT_EOT_SAMPLES = 8
#: the objectives an attack can ascend: cross-entropy, or the logit margin (Carlini-Wagner's
#: ``max_{j != y} z_j - z_y``), which keeps its gradient where a saturated softmax (e.g. a
#: defensively distilled model, trained at temperature T and deployed at 1) makes the
#: cross-entropy's vanish in float32
LOSSES: tuple[str, ...] = ("ce", "margin")
#: Croce & Hein's difference-of-logits ratio, shift- and scale-invariant (APGD-DLR)
DLR_LOSSES: tuple[str, ...] = ("ce", "margin", "dlr")


class Attack:
    """Base of all attacks on raw-PCM models.

    Parameters
    ----------
    model : torch.nn.Module
        Takes PCM float (B, S) in [-1, 1], returns logits (B, n_labels).
    eps : float
        L-infinity bound of the perturbation, PCM scale, ``0 < eps <= 1``.
    seed : int
        Seeds the attack's own torch generator (random starts, EOT draws, NES noise).
    eot_samples : int or None
        Forward/backward passes averaged per gradient (expectation over the model's and
        the transform's randomness). ``None``: ``DEFAULT_EOT_SAMPLES`` for models with
        ``stochastic = True``, else 1.
    bpda : bool
        Differentiate through the model's quantisers (False: the true, masked gradient, as
        ``gradient="exact"``).
    gradient : str
        How, one of ``"ste"`` (straight-through rounding, the default; clipping still blocks
        gradients at saturated activations) or ``"bpda"`` (quantised forward, the fp32 layer's
        backward through the same weights: full BPDA), see :mod:`testbed.attacks.ste`.
    loss : str
        The objective ascended, one of the class's :attr:`losses` (:data:`LOSSES`): ``"ce"``
        (cross-entropy, the default) or ``"margin"`` (the logit margin, for models whose softmax
        saturates); APGD also takes ``"dlr"``.
    restarts : int
        Independent runs per batch, each after the first from a fresh random start; per clip
        the best result is kept (a clip once fooled stays fooled), so restarts never lower
        the error.

    Attributes
    ----------
    queries : int
        Single-example model evaluations spent so far (forward passes x batch size) by the
        attack's search: gradients for white-box attacks, score queries for black-box ones.
    checks : int
        Single-example forward passes spent only on best-iterate bookkeeping (scoring a final
        iterate or a restart), not counted in ``queries``.
    """

    name: ClassVar[str] = "attack"
    #: the objectives this attack accepts
    losses: ClassVar[tuple[str, ...]] = LOSSES
    supported_modes: ClassVar[tuple[str, ...]] = ("untargeted", "targeted")
    #: Whether the perturbation is made of gradients (False: score-only, e.g. NES).
    needs_gradients: ClassVar[bool] = True

    def __init__(
        self,
        model: torch.nn.Module,
        eps: float,
        *,
        seed: Seed = 0,
        eot_samples: Annotated[int | None, Range(1, 10_000, integer=True)] = None,
        bpda: bool = True,
        loss: str = "ce",
        restarts: Annotated[int, Range(1, 1000, integer=True)] = 1,
        gradient: str = "ste",
    ) -> None:
        try:
            eps = float(eps)
        except (TypeError, ValueError):
            raise AttackError(f"{self.name}: eps must be a number, got {eps!r}") from None
        if not math.isfinite(eps) or eps <= 0 or eps > 1:
            raise AttackError(f"{self.name}: eps must be in (0, 1] (PCM scale), got {eps}")
        self.model = model
        self.eps = eps
        self.seed = int(seed)
        self.bpda = bool(bpda)
        if gradient not in GRADIENTS[:2]:
            raise AttackError(f"{self.name}: gradient must be one of {', '.join(GRADIENTS[:2])}, got {gradient!r}")
        self.gradient_mode = gradient if self.bpda else "exact"
        if loss not in self.losses:
            raise AttackError(f"{self.name}: loss must be one of {', '.join(self.losses)}, got {loss!r}")
        self.loss = loss
        self.restarts = _positive_int(self.name, "restarts", restarts)
        self._restart = 0
        self.stochastic = bool(getattr(model, "stochastic", False))
        if eot_samples is None:
            eot_samples = DEFAULT_EOT_SAMPLES if self.stochastic else 1
        self.eot_samples = _positive_int(self.name, "eot_samples", eot_samples)
        self.labels: list[str] = list(getattr(model, "labels", []) or [])
        self.queries = 0
        self.checks = 0
        self._box: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None   # project()'s bounds
        self.device = _model_device(model)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)

    # -- public --------------------------------------------------------------------
    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """The perturbation for a batch.

        Parameters
        ----------
        x : float tensor (B, S), PCM in [-1, 1]
        y : int64 tensor (B,), true label indices
        target : int64 tensor (B,) or None
            Target label indices for a targeted attack; None for untargeted.

        Returns
        -------
        delta : float tensor (B, S_delta), ``|delta| <= eps``; for digital attacks
            ``S_delta == S`` and ``x + delta`` stays in [-1, 1].
        """
        x, y, target = self._check(x, y, target)
        with self.attack_mode():
            return self.run(x, y, target).delta.detach()

    def run(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> Best:
        """All :attr:`restarts` runs on checked inputs, already in :meth:`attack_mode`; per clip
        the best result (see :class:`~testbed.attacks.best.Best`)."""
        best = None
        for r in range(self.restarts):
            self._restart = r
            found = self._search(x, y, target)
            if best is None:
                best = found
            else:
                best.merge(found)
        return best

    def __call__(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """The digital adversarial example ``clip(x + delta, -1, 1)``, shape (B, S)."""
        delta = self.perturb(x, y, target)
        return apply_perturbation(x.to(delta.device, torch.float32), delta)

    def gradient(
        self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Gradient of the attack objective w.r.t. ``delta``, averaged over ``eot_samples`` draws.

        The objective (:meth:`objective`) is the per-example loss of ``y`` (untargeted,
        ascended) or minus that of ``target`` (targeted), summed over the batch.

        Returns
        -------
        float tensor, same shape as ``delta``
        """
        return self.value_and_grad(x, delta, y, target)[1]

    def value_and_grad(
        self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Objective, its gradient and success at ``delta``, averaged over ``eot_samples`` draws.

        Returns
        -------
        loss : float tensor (B,), the per-example objective (mean over draws)
        grad : float tensor, same shape as ``delta``
        fooled : bool tensor (B,), from the draws' mean logits (see :meth:`fooled`)
        """
        delta = delta.detach().requires_grad_(True)
        total = loss_sum = logit_sum = None
        for _ in range(self.eot_samples):
            with torch.enable_grad():          # also when the caller runs under no_grad
                logits = self.model(self.model_input(x, delta))
                loss = self.objective(logits, y, target)
                (g,) = torch.autograd.grad(loss.sum(), delta)
            if total is None:
                total, loss_sum, logit_sum = g, loss.detach(), logits.detach()
            else:
                total, loss_sum, logit_sum = total + g, loss_sum + loss.detach(), logit_sum + logits.detach()
            self.queries += x.shape[0]
        k = self.eot_samples
        return loss_sum / k, total / k, self.fooled(logit_sum / k, y, target)

    @torch.no_grad()
    def score(
        self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
        draws: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective (B,) and success (B,) at ``delta`` without gradients, averaged over ``draws``
        passes of the model (default ``eot_samples``)."""
        k = draws or self.eot_samples
        loss_sum = logit_sum = None
        for _ in range(k):
            logits = self.model(self.model_input(x, delta))
            loss = self.objective(logits, y, target)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            logit_sum = logits if logit_sum is None else logit_sum + logits
            self.checks += x.shape[0]
        return loss_sum / k, self.fooled(logit_sum / k, y, target)

    @staticmethod
    def fooled(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Per example (B,): the top class is wrong (untargeted) or is the target (targeted)."""
        top = logits.argmax(dim=-1)
        return top != y if target is None else top == target

    def model_input(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """What the model hears for command ``x`` and perturbation ``delta`` (digital: ``x + delta``).

        Over-the-air and universal attacks override this with their channel / placement
        model, drawing its randomness from ``self.generator``.
        """
        return x + delta

    def objective(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Per-example loss to ascend, shape (B,): :attr:`loss` of the true label (untargeted)
        or its negative for the target label (targeted)."""
        if self.loss == "margin":
            return logit_margin(logits, y) if target is None else -logit_margin(logits, target)
        if self.loss == "dlr":
            return dlr_loss(logits, y) if target is None else targeted_dlr_loss(logits, y, target)
        if target is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, target, reduction="none")

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Clip ``delta`` to the eps ball and so that ``x + delta`` stays in [-1, 1]: one clamp
        between per-sample bounds, computed once per batch ``x`` (an attack projects every step)."""
        box = self._box
        if box is None or box[0] is not x:
            box = self._box = (x, (-1.0 - x).clamp(min=-self.eps), (1.0 - x).clamp(max=self.eps))
        return torch.clamp(delta, box[1], box[2])

    def uniform_noise(self, like: torch.Tensor) -> torch.Tensor:
        """Uniform noise in [-eps, eps] shaped like ``like``, from the attack's generator."""
        u = torch.rand(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)
        return (2.0 * u - 1.0) * self.eps

    @contextmanager
    def attack_mode(self) -> Iterator[None]:
        """Eval mode, frozen parameters and differentiable quantisers (:attr:`gradient_mode`);
        restored on exit."""
        model = self.model
        was_training = model.training
        flags = [(p, p.requires_grad) for p in model.parameters()]
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            with gradient_mode(model, self.gradient_mode):
                yield
        finally:
            for p, req in flags:
                p.requires_grad_(req)
            model.train(was_training)

    def hyper(self) -> dict:
        """The attack's settings as a plain dict (for logs and session records)."""
        skip = {"model", "generator", "device", "labels", "queries", "checks", "stochastic", "losses"}
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in skip
                and _plain(v)} | {"kind": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items() if k != "kind")
        return f"{type(self).__name__}({args})"

    # -- for subclasses --------------------------------------------------------------
    def init_delta(self, x: torch.Tensor) -> torch.Tensor:
        """Starting perturbation (B, S_delta): uniform in the ball on a random start or a restart,
        else zero; projected so it is a valid perturbation of ``x``."""
        delta = torch.zeros_like(x)
        if self.random_start_now():
            delta = self.uniform_noise(delta)
        return self.project(x, delta)

    def random_start_now(self) -> bool:
        """Whether this run starts at random: always after the first restart."""
        return bool(getattr(self, "random_start", False)) or getattr(self, "_restart", 0) > 0

    def _search(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> Best:
        """One run of the attack as a :class:`Best` (scored only when restarts must be merged).

        Attacks that track their best iterate override this; the default runs
        :meth:`_perturb` and scores its result once.
        """
        delta = self._perturb(x, y, target)
        if self.restarts == 1:
            return Best(delta)
        loss, fooled = self.score(x, delta, y, target)
        return Best(delta, loss, fooled)

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, x, y, target):
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        if x.ndim != 2:
            raise AttackError(f"{self.name}: x must have shape (batch, samples), got {tuple(x.shape)}")
        y = torch.as_tensor(y, dtype=torch.int64, device=self.device).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise AttackError(f"{self.name}: y has {y.shape[0]} labels for {x.shape[0]} signals")
        if target is not None:
            if "targeted" not in self.supported_modes:
                raise AttackError(f"{self.name}: targeted mode is not supported "
                                  f"(supported: {', '.join(self.supported_modes)})")
            target = torch.as_tensor(target, dtype=torch.int64, device=self.device).reshape(-1)
            if target.numel() == 1 and x.shape[0] != 1:
                target = target.expand(x.shape[0]).clone()
            if target.shape[0] != x.shape[0]:
                raise AttackError(f"{self.name}: target has {target.shape[0]} labels for {x.shape[0]} signals")
        elif "untargeted" not in self.supported_modes:
            raise AttackError(f"{self.name}: untargeted mode is not supported; give a target label")
        n = len(self.labels)
        if n:
            bad = [int(t) for t in (y if target is None else torch.cat([y, target])) if not 0 <= int(t) < n]
            if bad:
                raise AttackError(f"{self.name}: label index {bad[0]} is outside the model's {n} labels")
        return x, y, target


def apply_perturbation(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Digital adversarial example ``clip(x + fit(delta), -1, 1)``.

    Parameters
    ----------
    x : float tensor (B, S)
    delta : float tensor (B, S_delta) or (1, S_delta); looped or cropped to ``S`` samples.
    """
    return (x + fit_length(delta, x.shape[-1])).clamp(-1.0, 1.0)


def fit_length(delta: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Crop ``delta`` (..., L) to ``n_samples``, or loop it when it is shorter."""
    length = delta.shape[-1]
    if length == n_samples:
        return delta
    if length > n_samples:
        return delta[..., :n_samples]
    reps = -(-n_samples // length)
    return delta.repeat((1,) * (delta.ndim - 1) + (reps,))[..., :n_samples]


def label_index(model: torch.nn.Module, label: str) -> int:
    """Index of ``label`` in ``model.labels``; AttackError naming the labels when absent."""
    labels = list(getattr(model, "labels", []) or [])
    if label not in labels:
        raise AttackError(f"target label {label!r} is not one of the model's labels: {', '.join(labels)}")
    return labels.index(label)


def _plain(v) -> bool:
    """A setting worth logging: a number, string, bool, None, or a tuple of those."""
    if isinstance(v, tuple):
        return all(_plain(e) for e in v)
    return isinstance(v, (int, float, str, bool, type(None)))


def _positive_int(attack: str, name: str, value) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise AttackError(f"{attack}: {name} must be a positive integer, got {value!r}") from None
    if v < 1 or v != value:
        raise AttackError(f"{attack}: {name} must be a positive integer, got {value!r}")
    return v


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")
