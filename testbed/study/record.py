"""Which weights a study's stored cells were computed on: ``OUT/zoo.json`` beside ``OUT/cells/``.

A cell's key names the weights sha256 of every model it touches, so stored cells are found
again only through those hashes. The zoo itself is generated (ignored by git, hours to rebuild)
and is not always there: a clean clone has the committed cells and this record but no models.
The record lets such a clone report every stored cell (``--report-only``), and lets a study see
that the zoo now holds other weights than its cells were computed on (a retrained model, or a
``--quick`` one built over the real one) before it measures anything against them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from testbed.errors import TestbedError
from testbed.fileio import atomic_write
from testbed.names import name_problem

RECORD_FILE = "zoo.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VIEW = re.compile(r"@k\d+$")


class WeightsRecord:
    """The weights hash of every model a study's stored cells touch, read from and written to
    ``out_dir/zoo.json`` (``{"models": {name: sha256}}``)."""

    def __init__(self, out_dir: Path | str) -> None:
        self.path = Path(out_dir) / RECORD_FILE
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
            problem = name_problem(_VIEW.sub("", name))
            if problem is not None:
                raise TestbedError(f"{self.path}: field models.{name!r}: {problem}")
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
