"""Thin adapters to the parts a session integrates (data, models, attacks, calibration).

Each function imports its part lazily, so the session package loads without torch,
and turns a missing part into one :class:`~testbed.errors.SessionError` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from testbed.errors import SessionError, TestbedError


def _need(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SessionError(f"{what} is not available in this build ({module}: {exc})") from None


# -- data ------------------------------------------------------------------------
def command_utterances(source: str, labels: list[str], per_label: int, seed: int
                       ) -> list[tuple[str, str, np.ndarray, dict]]:
    """Held-out commands as ``(utterance_id, label, signal float32 (n_samples,), meta)``."""
    data = _need("testbed.data", "the data package (command utterances)")
    fn = getattr(data, "command_utterances", None)
    if fn is None:
        raise SessionError("testbed.data.command_utterances is not available in this build; "
                           "sessions cannot draw their commands from a plan's [utterances] source yet")
    utts = fn(source, labels, per_label, seed)
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
        models = _need("testbed.models", "the model zoo")
        self._zoo = models.Zoo(root)
        self._predict = models.predict
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
def attack_kinds() -> list[str] | None:
    """Kinds of the attack registry, or None when the attacks package is not there."""
    try:
        from testbed.attacks import ATTACKS
    except ImportError:
        return None
    return list(ATTACKS)


def attack_param_names() -> dict[str, list[str]] | None:
    """``{kind: accepted hyper-parameter names}`` from the attack registry, or None."""
    try:
        from testbed.attacks import ATTACKS, attack_params
    except ImportError:
        return None
    return {k: list(attack_params(k)) for k in ATTACKS}


def make_attack(kind: str, model: Any, eps: float, **params: Any) -> Any:
    attacks = _need("testbed.attacks", "the attacks package")
    return attacks.make_attack(kind, model, eps, **params)


# -- calibration -----------------------------------------------------------------
def load_calibration(rig: Any) -> tuple[Any | None, Path | None]:
    """The rig's calibration profile and its file, or ``(None, None)`` when there is none."""
    try:
        from testbed.calibration import load_profile
    except ImportError:
        return None, None
    try:
        prof = load_profile(rig)
    except TestbedError:
        raise
    if prof is None:
        return None, None
    from testbed.calibration.profile import PROFILE_NAME, profile_dir

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
