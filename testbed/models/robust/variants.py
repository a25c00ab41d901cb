"""The robust zoo variants and their training settings (kept light: no torch import here).

``slr4`` / ``slr8``: the stochastic low-rank ensemble with 4 / 8 members at inference;
``distill``: defensive distillation; ``advtrain``: adversarial training (PGD data
augmentation); ``rse``: random self-ensemble. Each starts from the architecture's trained
fp32 model and is fine-tuned for the same number of steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from testbed.errors import ModelError

#: variant -> (kind, members at inference or None for deterministic models, description)
ROBUST_VARIANTS: dict[str, tuple[str, int | None, str]] = {
    "slr4": ("slr", 4, "stochastic low-rank ensemble, 4 members (the paper's defence)"),
    "slr8": ("slr", 8, "stochastic low-rank ensemble, 8 members (the paper's defence)"),
    "distill": ("distill", None, "defensive distillation (Papernot et al.; temperature T)"),
    "advtrain": ("advtrain", None, "adversarial training: PGD examples mixed into every batch"),
    "rse": ("rse", 8, "random self-ensemble (Liu et al.): noise before every layer, 8 passes"),
    "smooth": ("smooth", 16, "randomised smoothing (Cohen et al.): Gaussian waveform noise, certified radius"),
}

#: fine-tuning steps from the fp32 model (full / quick). SLR after its warm-up: 400 steps of
#: 0.5 / 0.3 / 0.2 kept 0.892 clean (fp32 0.908) and PGD-20 at eps 0.001 flipped 84.5 % of 200
#: test clips, against 0.890 and 89.0 % after 150 steps of 0.6 / 0.3 / 0.1
ROBUST_STEPS = {"full": 400, "quick": 30}
#: SLR's warm-up steps without the adversarial term (full / quick): a step costs two members'
#: forward and backward, a fifth of a full-loss step with its PGD examples
SLR_WARMUP_STEPS = {"full": 1000, "quick": 30}


@dataclass(frozen=True)
class RobustConfig:
    """Hyper-parameters of the robust variants (all written into the model card).

    Attributes
    ----------
    steps : int or None
        Fine-tuning steps for every robust variant (None: ``ROBUST_STEPS``); distillation
        spends half on the teacher and half on the student.
    warmup_steps : int or None
        SLR only: steps of ``alpha * CE + beta * consistency`` (no adversarial term) before the
        ``steps`` of the full loss, so the factorised, noisy members classify again before
        adversarial examples crafted on them mean anything (None: ``SLR_WARMUP_STEPS``).
    lr : float
        Adam learning rate for fine-tuning.
    lr_schedule : str
        ``cosine`` (warm-up, then decay to lr / 20 over each phase) or ``constant``.
    sigma_rel, mu_rel : float
        SLR singular-value noise, fractions of each layer's mean singular value.
    alpha, beta, gamma : float
        SLR loss weights (CE, consistency, adversarial KL), summing to 1. On the LM (600 test
        clips, fp32 0.908), after 600 warm-up steps and 150 steps: 0.4 / 0.2 / 0.4 with training
        bound 0.005 cost 10 points of clean accuracy (0.805), 0.5 / 0.3 / 0.2 at 0.002 4.5 (0.863).
        After 1000 warm-up steps: 0.6 / 0.3 / 0.1 at 0.002 keeps 0.890 in 150 steps, 0.5 / 0.3 /
        0.2 0.892 in 400 (the default: the most robust of those, docs/robustness.md), 0.5 / 0.2 /
        0.3 at 0.005 0.842; ``sigma_rel`` 0.3 instead of 0.1 costs 5 more points.
    train_members : int or None
        SLR members per training step (None: the variant's inference members, at most 2, which
        keeps a step affordable on a CPU; the consistency term needs at least 2).
    adv_kind, adv_eps, adv_steps : str, float, int
        Training-time attack (SLR's adversarial term and adversarial training).
    adv_eps_range : bool
        Draw each batch's training bound in ``[adv_eps / 4, adv_eps]``.
    adv_weight : float
        Share of adversarial examples in adversarial training's loss.
    temperature : float
        Distillation temperature.
    rse_sigma_init_rel, rse_sigma_inner_rel : float
        RSE noise before the first / other layers, fractions of the input std.
    smooth_sigma : float
        Randomised smoothing's noise std on the PCM samples (full scale 1.0), for its
        noise-augmented fine-tuning and its predictions.
    """

    steps: int | None = None
    warmup_steps: int | None = None
    lr: float = 5e-4
    lr_schedule: str = "cosine"
    sigma_rel: float = 0.1
    mu_rel: float = 0.0
    alpha: float = 0.5
    beta: float = 0.3
    gamma: float = 0.2
    train_members: int | None = None
    adv_kind: str = "pgd"
    adv_eps: float = 0.002
    adv_steps: int = 2
    adv_eps_range: bool = True
    adv_weight: float = 0.5
    temperature: float = 10.0
    rse_sigma_init_rel: float = 0.2
    rse_sigma_inner_rel: float = 0.1
    smooth_sigma: float = 0.02

    def __post_init__(self) -> None:
        for name, field in self.__dataclass_fields__.items():
            value = getattr(self, name)
            kind = _FIELD_KINDS[field.type]
            if value is None and field.default is None:
                continue
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
            elif kind is str and value not in _CHOICES[name]:
                raise ModelError(f"robust settings: {name} must be one of {', '.join(_CHOICES[name])}, got {value!r}")
            elif not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
                raise ModelError(f"robust settings: {name} must be {_KIND_WORDS[kind]}, got {value!r}")
            if kind in (int, float) and name != "mu_rel" and getattr(self, name) < 0:
                raise ModelError(f"robust settings: {name} must be >= 0, got {value!r}")
        check_weights(self.alpha, self.beta, self.gamma)
        if not 0.0 <= self.adv_weight <= 1.0:
            raise ModelError(f"robust settings: adv_weight must be in [0, 1], got {self.adv_weight!r}")
        for name in ("lr", "adv_steps", "temperature", "train_members", "smooth_sigma"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ModelError(f"robust settings: {name} must be > 0, got {getattr(self, name)!r}")

    def with_(self, **changes) -> RobustConfig:
        """A copy with ``changes`` applied (unknown names and bad values raise ModelError)."""
        bad = [k for k in changes if k not in self.__dataclass_fields__]
        if bad:
            raise ModelError(f"robust settings: unknown parameter {bad[0]!r} "
                             f"(have: {', '.join(self.__dataclass_fields__)})")
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


#: annotation (a string under ``from __future__ import annotations``) -> the type values must have
_FIELD_KINDS = {"int | None": int, "int": int, "float": float, "str": str, "bool": bool}
_KIND_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
_CHOICES = {"lr_schedule": ("cosine", "constant"), "adv_kind": ("fgsm", "pgd")}


def check_weights(alpha: float, beta: float, gamma: float) -> tuple[float, float, float]:
    """SLR's loss weights as floats, each >= 0 and summing to 1 (paper: alpha + beta + gamma = 1)."""
    w = (float(alpha), float(beta), float(gamma))
    if any(v < 0 for v in w) or not math.isclose(sum(w), 1.0, abs_tol=1e-6):
        raise ModelError(f"SLR loss weights: alpha + beta + gamma must sum to 1 (each >= 0), got "
                         f"{w[0]:g} + {w[1]:g} + {w[2]:g} = {sum(w):g}")
    return w


def robust_kind(variant: str) -> tuple[str, int | None]:
    """``(kind, members)`` of a robust variant, or ModelError listing them."""
    try:
        kind, members, _ = ROBUST_VARIANTS[variant.lower()]
    except KeyError:
        raise ModelError(f"unknown robust variant {variant!r} (have: {', '.join(ROBUST_VARIANTS)})") from None
    return kind, members


def is_robust(variant: str) -> bool:
    """Whether ``variant`` is one of :data:`ROBUST_VARIANTS`."""
    return variant.lower() in ROBUST_VARIANTS
