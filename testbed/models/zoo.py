"""The model zoo on disk: ``<root>/<name>/weights.safetensors`` + ``card.json``.

Weights are safetensors (never pickle); the card stores the sha256 of the weights file and
loading refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from safetensors.torch import load_file, save
from torch import nn

from testbed.errors import ModelError
from testbed.fileio import atomic_write
from testbed.models.archs import build_model
from testbed.models.frontend import preprocessing
from testbed.models.variants import restructure
from testbed.names import check_name

WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"


def default_root() -> Path:
    """Zoo root: env ``TESTBED_MODELS_DIR`` or ``./models``."""
    return Path(os.environ.get("TESTBED_MODELS_DIR", "models"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_VIEW_RE = re.compile(r"^(?P<stored>.+)@k(?P<members>\d+)$")


def split_view(name: str) -> tuple[str, int | None]:
    """``"lm-slr8@k4" -> ("lm-slr8", 4)``: a stored stochastic model evaluated with a chosen
    number of ensemble members (the ensemble-size curve replays one model as several views);
    a plain name -> ``(name, None)``."""
    m = _VIEW_RE.match(name)
    if not m:
        return name, None
    members = int(m.group("members"))
    if members < 1:
        raise ModelError(f"model {name!r}: the number of members after '@k' must be >= 1")
    return m.group("stored"), members


class Zoo:
    """A folder of trained models.

    Parameters
    ----------
    root : Path, optional
        Default: env ``TESTBED_MODELS_DIR`` or ``./models``.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def names(self) -> list[str]:
        """Names of the stored models (folders holding a card), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CARD_FILE).is_file())

    def exists(self, name: str) -> bool:
        """Whether ``name`` has a card in this zoo (for a view ``NAME@kN``: whether NAME does
        and is a stochastic ensemble)."""
        stored, members = split_view(name)
        if not (self.root / stored / CARD_FILE).is_file():
            return False
        return members is None or bool(self._read_card(stored).get("stochastic"))

    def _resolve(self, name: str) -> tuple[Path, dict, int | None]:
        """``(folder, card, members)`` of ``name``, reading the card once; a view ``NAME@kN``
        gets NAME's folder and card (with ``members_at_inference = N``) and ``members = N``."""
        stored, members = split_view(name)
        folder = self.root / _stored_name(stored)
        if not (folder / CARD_FILE).is_file():
            have = ", ".join(self.names()) or "none; run 'testbed models build'"
            raise ModelError(f"unknown model {name!r} in {self.root} (have: {have})")
        card = self._read_card(stored)
        if members is not None:
            if not card.get("stochastic"):
                raise ModelError(f"model {name!r}: {stored} is not a stochastic ensemble, so it has no "
                                 f"'@k{members}' view (only e.g. lm-slr8@k4 draws a number of members)")
            card = dict(card, members_at_inference=members, view_of=stored)
        return folder, card, members

    def _read_card(self, stored: str) -> dict:
        path = self.root / stored / CARD_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: unreadable model card ({exc}); rebuild the model") from None

    def card(self, name: str) -> dict:
        """The model card of ``name`` (a dict read from ``card.json``); a view ``NAME@kN``
        gets NAME's card with ``members_at_inference = N``."""
        return self._resolve(name)[1]

    def model_hash(self, name: str) -> str:
        """The sha256 of ``name``'s weights as recorded in its card."""
        return str(self.card(name)["weights_sha256"])

    def stored_files(self, name: str) -> tuple[str, dict, bytes]:
        """What another process needs to load ``name`` from its own zoo (see :meth:`add_files`).

        Returns
        -------
        (stored, card, weights)
            The stored model's name (for a view ``NAME@kN``: NAME), its card as stored and the
            bytes of its weights file. Raises ModelError for an unknown model or unreadable weights.
        """
        stored, _ = split_view(name)
        self._resolve(name)     # unknown names and views of deterministic models raise here
        path = self.root / stored / WEIGHTS_FILE
        try:
            weights = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read weights ({exc.strerror or exc}); rebuild the model") from None
        return stored, self._read_card(stored), weights

    def add_files(self, stored: str, card: dict, weights: bytes, *, durable: bool = True) -> None:
        """Write a stored model's ``card`` and ``weights`` as :meth:`stored_files` returned them
        (:meth:`load` then checks the weights against the card's sha256)."""
        if split_view(stored)[1] is not None or not stored or "/" in stored:
            raise ModelError(f"model {stored!r}: not a stored model's name")
        folder = self.root / _stored_name(stored)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / WEIGHTS_FILE, weights, durable=durable)
        atomic_write(folder / CARD_FILE, json.dumps(card, indent=2) + "\n", durable=durable)

    def load(self, name: str) -> nn.Module:
        """Load ``name`` in eval mode with its card attached as ``.card``.

        Raises ModelError when the weights file is missing or its sha256 differs from the card.
        """
        folder, card, members = self._resolve(name)
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelError(f"{weights}: weights file missing; rebuild with 'testbed models build'")
        digest = sha256_file(weights)
        if digest != card.get("weights_sha256"):
            raise ModelError(f"{weights}: sha256 {digest[:12]}... does not match the card's "
                             f"{str(card.get('weights_sha256'))[:12]}... (tampered or stale); "
                             "rebuild the model or restore its weights")
        try:
            _check_preprocessing(folder / CARD_FILE, card)
            model = build_model(card["arch"], card["labels"], card["sample_rate"], card["clip_samples"])
            model = restructure(model, card.get("compression", {"kind": "none"}))
            state = load_file(str(weights))
            model.load_state_dict(state, strict=True)
        except KeyError as exc:
            raise ModelError(f"{folder / CARD_FILE}: missing field {exc}") from None
        except (RuntimeError, ValueError) as exc:
            msg = str(exc).splitlines()[0]
            raise ModelError(f"{weights}: does not fit the card's architecture ({msg})") from None
        model.eval()
        if members is not None:
            model.n_members = members
        model.card = card
        model.name = name
        return model

    def save(self, name: str, model: nn.Module, card: dict) -> dict:
        """Write ``model``'s weights and ``card`` (completed with size and hash, and with this
        version's preprocessing for its arch when the card names none) under ``name``.

        Returns the completed card.
        """
        folder = self.root / _stored_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        blob = save(state, metadata={"name": name, "arch": str(card.get("arch")),
                                     "variant": str(card.get("variant"))})
        atomic_write(folder / WEIGHTS_FILE, blob)
        card = dict(card, name=name, size_bytes=len(blob),
                    weights_sha256=hashlib.sha256(blob).hexdigest())
        if "preprocessing" not in card and "arch" in card:     # a hand-made card: this version's front end
            card["preprocessing"] = preprocessing(card["arch"], int(card.get("sample_rate", model.sample_rate)))
        atomic_write(folder / CARD_FILE, (json.dumps(card, indent=2) + "\n").encode())
        return card


def _stored_name(name: str) -> str:
    """``name`` if it is a safe name (:mod:`testbed.names`): it becomes the model's folder."""
    try:
        return check_name(name, "")
    except ValueError as exc:
        raise ModelError(f"model name {exc}") from None


def _check_preprocessing(card_path: Path, card: dict) -> None:
    """Refuse a model trained with another front end than this version builds for its
    architecture: its weights would load (front ends hold no weights) and silently misread."""
    want = preprocessing(card["arch"], card["sample_rate"])
    have = card.get("preprocessing") or {}
    if have != want:
        diff = sorted(k for k in set(want) | set(have) if have.get(k) != want.get(k))
        raise ModelError(f"{card_path}: preprocessing differs from this version's {card['arch']} front end "
                         f"({', '.join(diff)}: card {[have.get(k) for k in diff]}, now "
                         f"{[want.get(k) for k in diff]}); rebuild the model with 'testbed models build'")


def load_model(name: str, root: Path | str | None = None) -> nn.Module:
    """Shortcut for ``Zoo(root).load(name)``."""
    return Zoo(root).load(name)
