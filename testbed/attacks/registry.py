"""The explicit registry of attack kinds and the factory every caller uses."""

from __future__ import annotations

import inspect

import torch

from testbed.attacks.apgd import APGD, APGDCE, APGDDLR
from testbed.attacks.auto import AutoAttack
from testbed.attacks.base import Attack
from testbed.attacks.bounds import Range, bounds_of, value_problem
from testbed.attacks.eot_pgd import EOTPGD
from testbed.attacks.fgsm import FGSM
from testbed.attacks.masking import MASKABLE_KINDS, MASKING_PARAMS, MaskedAttack, split_masking_params
from testbed.attacks.nes import NES
from testbed.attacks.ota_blackbox import OTANES  # r6-blackbox
from testbed.attacks.ota_pgd import OTAPGD
from testbed.attacks.pgd import PGD
from testbed.attacks.square import Square
from testbed.attacks.universal import Universal
from testbed.attacks.universal_loop import OTAUniversal  # r6-blackbox
from testbed.attacks.streaming import OTAStreaming, Streaming  # r6-blackbox
from testbed.errors import AttackError

#: kind (as written in plans and on the command line) -> attack class.
ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, NES, EOTPGD, OTAPGD, Universal, APGD, APGDCE, APGDDLR, Square, AutoAttack,
                              OTANES, OTAUniversal, Streaming, OTAStreaming)
}


def attack_params(kind: str) -> list[str]:
    """Keyword parameters accepted by attack ``kind`` (its own and the base class's)."""
    cls = _lookup(kind)
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.kind == p.KEYWORD_ONLY and p.name not in names:
                names.append(p.name)
    # -- perceptual bound (issue 24): bound = "masking" and its stage-2 parameters ----------
    if kind in MASKABLE_KINDS:
        names += [k for k in MASKING_PARAMS if k not in names]
    # -- end of the perceptual bound -------------------------------------------------------------
    return names


def param_bounds(kind: str) -> dict[str, Range]:
    """``{parameter: Range}`` that attack ``kind`` declares on its keyword parameters (its own
    ``Annotated[..., Range(...)]`` and its base classes'; a subclass's bound wins)."""
    cls = _lookup(kind)
    out: dict[str, Range] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or "__init__" not in vars(klass):
            continue
        out.update(bounds_of(klass.__init__))
    return out


def _defaults(kind: str) -> dict[str, object]:
    cls = _lookup(kind)
    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.kind == p.KEYWORD_ONLY:
                out[p.name] = p.default
    return out


def param_problem(kind: str, name: str, value: object) -> str | None:
    """Why ``value`` is not an acceptable ``name`` for attack ``kind`` by the bounds the attack
    declares (None when it is, or when the parameter declares no bounds)."""
    rng = param_bounds(kind).get(name)
    if rng is None:
        return None
    if value is None and _defaults(kind).get(name) is not None:
        return "must be a number, got None"
    return value_problem(rng, value)


def make_attack(kind: str, model: torch.nn.Module, eps: float, **params) -> Attack:
    """Build attack ``kind`` on ``model`` with bound ``eps`` and its hyper-parameters.

    Parameters
    ----------
    kind : str
        One of ``ATTACKS``: fgsm, pgd, nes, eot-pgd, ota-pgd, universal, apgd, apgd-ce,
        apgd-dlr, square, auto.
    model : torch.nn.Module
        Raw-PCM model (B, S) -> logits (B, n_labels).
    eps : float
        L-infinity bound, PCM scale.
    **params
        The attack's hyper-parameters (e.g. ``steps=20``, ``population=64``, ``rig=...``).

    Raises
    ------
    AttackError
        Unknown kind, unknown parameter, a value outside the bounds the attack declares
        (:func:`param_bounds`), or a value the attack cannot honour.

    Example
    -------
    >>> atk = make_attack("pgd", model, 0.005, steps=20, seed=1)
    """
    cls = _lookup(kind)
    allowed = attack_params(kind)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise AttackError(f"{kind}: unknown parameter {unknown[0]!r} (accepted: {', '.join(allowed)})")
    for k, v in params.items():
        problem = param_problem(kind, k, v)
        if problem is not None:
            raise AttackError(f"{kind}: {k} {problem}")
    # -- perceptual bound (issue 24): stage 1 is the attack, stage 2 goes under the masking threshold
    params, masking = split_masking_params(params)
    if masking is not None:
        return MaskedAttack(cls(model, eps, **params), **masking)
    # -- end of the perceptual bound -------------------------------------------------------------
    return cls(model, eps, **params)


def _lookup(kind: str) -> type[Attack]:
    try:
        return ATTACKS[kind]
    except KeyError:
        raise AttackError(f"unknown attack {kind!r} (have: {', '.join(ATTACKS)})") from None
