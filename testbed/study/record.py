"""Which weights a study's stored cells were computed on: ``OUT/zoo.json`` beside ``OUT/cells/``,
and those weights themselves under ``OUT/weights/``.

A cell's key names the weights sha256 of every model it touches, so stored cells are found
again only through those hashes. The zoo itself is generated (ignored by git, hours to rebuild)
and a rebuild on another machine does not give the same weights (the same seed gave lm-fp32 a
test accuracy of 0.780 on one machine and 0.713 on another: float kernels differ by CPU and
training drifts). So the study keeps, beside its cells, a copy of every model they were
computed on (content-addressed, ``weights/<sha256>.safetensors`` and ``.json`` for its card):
a clean clone reports every stored cell (``--report-only``), restores the exact models it lacks
before computing more cells on them, and a zoo that now holds other weights (a retrained model,
or a ``--quick`` one built over the real one) is noticed before anything is measured against it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from testbed.errors import ModelError, TestbedError
from testbed.fileio import atomic_write
from testbed.models import Zoo
from testbed.models.zoo import split_view
from testbed.names import check_model_name

RECORD_FILE = "zoo.json"
WEIGHTS_DIR = "weights"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class WeightsRecord:
    """The weights hash of every model a study's stored cells touch, read from and written to
    ``out_dir/zoo.json`` (``{"models": {name: sha256}}``)."""

    def __init__(self, out_dir: Path | str) -> None:
        self.path = Path(out_dir) / RECORD_FILE
        self.weights_dir = Path(out_dir) / WEIGHTS_DIR
        self._models = self._read()

    def _read(self) -> dict[str, str]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise TestbedError(f"{self.path}: unreadable weights record ({exc}); restore it from git") from None
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, dict):
            raise TestbedError(f"{self.path}: field models: expected an object of model name -> weights sha256")
        for name, sha in models.items():
            try:
                check_model_name(name)
            except ValueError as exc:
                raise TestbedError(f"{self.path}: field models.{name!r}: {exc}") from None
            if not isinstance(sha, str) or not _SHA256.match(sha):
                raise TestbedError(f"{self.path}: field models.{name}: expected a sha256 (64 hex digits), "
                                   f"got {sha!r}")
        return dict(models)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def get(self, name: str) -> str | None:
        """The recorded weights sha256 of ``name``, or None."""
        return self._models.get(name)

    def hashes(self, names: Iterable[str]) -> dict[str, str]:
        """``{name: sha256}`` for those of ``names`` the record has."""
        return {n: self._models[n] for n in names if n in self._models}

    def update(self, hashes: Mapping[str, str]) -> None:
        """Record ``hashes`` (they replace a model's earlier entry) and write the file if it changed."""
        merged = {**self._models, **hashes}
        if merged == self._models and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"models": dict(sorted(merged.items()))}, indent=1) + "\n")
        self._models = merged

    def archive(self, zoo: Zoo, names: Iterable[str]) -> list[str]:
        """Copy the weights and card of each of ``names`` (zoo models; a view: its stored model)
        under ``weights/`` unless a copy with that sha256 is there; returns the models copied."""
        copied = []
        for stored in sorted({split_view(n)[0] for n in names}):
            _, card, blob = zoo.stored_files(stored)
            sha = hashlib.sha256(blob).hexdigest()
            path = self.weights_dir / f"{sha}.safetensors"
            if path.is_file():
                continue
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(path.with_suffix(".json"), json.dumps(card, indent=1, sort_keys=True) + "\n")
            atomic_write(path, blob)
            copied.append(stored)
        return copied

    def restore(self, zoo: Zoo) -> list[str]:
        """Write into ``zoo`` every recorded model it lacks whose weights are archived, exactly as
        they were measured; returns the models restored. A copy whose bytes no longer match its
        sha256 or card is an error naming the file (never loaded)."""
        restored = []
        for name, sha in sorted(self._models.items()):
            stored = split_view(name)[0]
            blob_path = self.weights_dir / f"{sha}.safetensors"
            if zoo.exists(stored) or not blob_path.is_file():      # a restored model exists now
                continue
            try:
                blob = blob_path.read_bytes()
                card = json.loads(blob_path.with_suffix(".json").read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise TestbedError(f"{blob_path}: unreadable archived model ({exc}); restore it from git") from None
            if hashlib.sha256(blob).hexdigest() != sha or not isinstance(card, dict) \
                    or card.get("weights_sha256") != sha or card.get("name") != stored:
                raise TestbedError(f"{blob_path}: field weights_sha256: the archived {stored} does not match its "
                                   f"record ({self.path}); restore both from git")
            try:
                zoo.add_files(stored, card, blob)
            except ModelError as exc:
                raise TestbedError(f"{blob_path}: {exc}") from None
            restored.append(stored)
        return restored
