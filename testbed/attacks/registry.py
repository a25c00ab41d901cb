"""The explicit registry of attack kinds and the factory every caller uses."""

from __future__ import annotations

import inspect

import torch

from testbed.attacks.base import Attack
from testbed.attacks.eot_pgd import EOTPGD
from testbed.attacks.fgsm import FGSM
from testbed.attacks.nes import NES
from testbed.attacks.ota_blackbox import OTANES  # r6-blackbox
from testbed.attacks.ota_pgd import OTAPGD
from testbed.attacks.pgd import PGD
from testbed.attacks.universal import Universal
from testbed.attacks.universal_loop import OTAUniversal  # r6-blackbox
from testbed.attacks.streaming import OTAStreaming, Streaming  # r6-blackbox
from testbed.errors import AttackError

#: kind (as written in plans and on the command line) -> attack class.
ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, NES, EOTPGD, OTAPGD, Universal, OTANES, OTAUniversal, Streaming, OTAStreaming)
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
    return names


def make_attack(kind: str, model: torch.nn.Module, eps: float, **params) -> Attack:
    """Build attack ``kind`` on ``model`` with bound ``eps`` and its hyper-parameters.

    Parameters
    ----------
    kind : str
        One of ``ATTACKS``: fgsm, pgd, nes, eot-pgd, ota-pgd, universal.
    model : torch.nn.Module
        Raw-PCM model (B, S) -> logits (B, n_labels).
    eps : float
        L-infinity bound, PCM scale.
    **params
        The attack's hyper-parameters (e.g. ``steps=20``, ``population=64``, ``rig=...``).

    Raises
    ------
    AttackError
        Unknown kind, unknown parameter, or a value the attack cannot honour.

    Example
    -------
    >>> atk = make_attack("pgd", model, 0.005, steps=20, seed=1)
    """
    cls = _lookup(kind)
    allowed = attack_params(kind)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise AttackError(f"{kind}: unknown parameter {unknown[0]!r} (accepted: {', '.join(allowed)})")
    return cls(model, eps, **params)


def _lookup(kind: str) -> type[Attack]:
    try:
        return ATTACKS[kind]
    except KeyError:
        raise AttackError(f"unknown attack {kind!r} (have: {', '.join(ATTACKS)})") from None
