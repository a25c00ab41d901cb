"""Thin adapters to the parts a session integrates (data, models, attacks, calibration).

Every part is always installed, so each is imported directly (no loader by name, no
"not available" guard). The imports sit inside the functions that use them only because of
their cost: ``testbed.data``, ``testbed.models`` and ``testbed.attacks`` pull in torch (about
2 s) and ``testbed.calibration`` the measurement stack (about 0.6 s), which ``testbed session
list`` / ``status`` and the store's readers should not pay for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


# -- data ------------------------------------------------------------------------
def command_utterances(source: str, labels: list[str], per_label: int, seed: int
                       ) -> list[tuple[str, str, np.ndarray, dict]]:
    """Held-out commands as ``(utterance_id, label, signal float32 (n_samples,), meta)``."""
    from testbed.data import command_utterances as draw   # lazy: imports torch

    utts = draw(source, labels, per_label, seed)
    return [(u.id, u.label, np.asarray(u.signal, dtype=np.float32), dict(u.meta or {})) for u in utts]


# -- models ----------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A model ready to evaluate: the module, its labels, sample rate and hash."""

    name: str
    module: Any
    labels: list[str]
    sample_rate: int
    clip_samples: int
    model_hash: str | None
    arch: str | None
    variant: str | None


class Models:
    """Loads zoo models once and predicts with them."""

    def __init__(self, root: Path | None = None):
        from testbed.models import Zoo, predict   # lazy: imports torch

        self._zoo = Zoo(root)
        self._predict = predict
        self._cache: dict[str, LoadedModel] = {}

    @property
    def zoo(self):
        """The :class:`testbed.models.Zoo` these models come from (the scale layer ships its files)."""
        return self._zoo

    def names(self) -> list[str]:
        return list(self._zoo.names())

    def exists(self, name: str) -> bool:
        """A stored model, or a view ``NAME@kN`` of a stored stochastic ensemble."""
        return self._zoo.exists(name)

    def labels(self) -> dict[str, list[str]]:
        """``{name: labels}`` of every model in the zoo (read from the cards)."""
        out = {}
        for n in self.names():
            card = self._zoo.card(n)
            out[n] = list(card.get("labels") or [])
        return out

    def card(self, name: str) -> dict:
        return dict(self._zoo.card(name))

    def model_hash(self, name: str) -> str | None:
        return self._zoo.model_hash(name)

    def load(self, name: str) -> LoadedModel:
        if name not in self._cache:
            m = self._zoo.load(name)
            card = dict(getattr(m, "card", None) or self._zoo.card(name))
            self._cache[name] = LoadedModel(
                name=name, module=m, labels=list(m.labels), sample_rate=int(getattr(m, "sample_rate", 16000)),
                clip_samples=int(card.get("clip_samples") or getattr(m, "clip_samples", 0) or 16000),
                model_hash=self._zoo.model_hash(name), arch=card.get("arch"), variant=card.get("variant"))
        return self._cache[name]

    def predict(self, model: LoadedModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pred_idx int64 (n,), probs float32 (n, n_labels))`` for clips ``x`` (n, clip_samples)."""
        return self._predict(model.module, x)


# -- attacks ---------------------------------------------------------------------
def attack_kinds() -> list[str]:
    """Kinds of the attack registry."""
    from testbed.attacks import ATTACKS   # lazy: imports torch

    return list(ATTACKS)


def attack_param_names() -> dict[str, list[str]]:
    """``{kind: accepted hyper-parameter names}`` from the attack registry."""
    from testbed.attacks import ATTACKS, attack_params   # lazy: imports torch

    return {k: list(attack_params(k)) for k in ATTACKS}


def attack_param_problem(kind: str, name: str, value: Any) -> str | None:
    """Why ``value`` breaks the bounds attack ``kind`` declares on parameter ``name`` (None if it does not)."""
    from testbed.attacks import ATTACKS   # lazy: imports torch
    from testbed.attacks.registry import param_problem

    return param_problem(kind, name, value) if kind in ATTACKS else None


def make_attack(kind: str, model: Any, eps: float, **params: Any) -> Any:
    """An attack of the registry's ``kind`` on ``model`` with bound ``eps`` (PCM full scale)."""
    from testbed.attacks import make_attack as make   # lazy: imports torch

    return make(kind, model, eps, **params)


# -- calibration -----------------------------------------------------------------
def load_calibration(rig: Any) -> tuple[Any | None, Path | None]:
    """The rig's calibration profile and its file, or ``(None, None)`` when there is none."""
    from testbed.calibration import load_profile   # lazy: the measurement stack
    from testbed.calibration.profile import PROFILE_NAME, profile_dir

    prof = load_profile(rig)
    if prof is None:
        return None, None
    cands = [profile_dir(rig) / PROFILE_NAME]
    if rig.source is not None:
        cands.append(Path(rig.source).resolve().parent.parent / "calibration" / rig.name / PROFILE_NAME)
    return prof, next((c for c in cands if c.is_file()), None)


def calibration_dict(profile: Any) -> dict | None:
    if profile is None:
        return None
    for attr in ("as_dict", "model_dump"):
        if hasattr(profile, attr):
            return getattr(profile, attr)()
    return {"latency_samples": dict(getattr(profile, "latency_samples", {}) or {})}
