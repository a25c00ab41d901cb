"""Running a study: every cell computed once, stored as it finishes, resumable.

A cell's result is one JSON file named by the cell's content key (the cell, the weights hash of
each model it touches, the study format) under ``OUT/cells/``, written atomically: a crash
loses at most the cell being computed, and a later run (another session too) skips every
stored cell. A retrained model changes its hash and so its cells' keys;
a code change does not (a key names what is measured, not how), so each result records the
package versions and git commit that computed it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testbed.errors import AttackError, TestbedError
from testbed.fileio import atomic_write
from testbed.models import Zoo, held_out_clips
from testbed.session.manifest import git_revision, package_versions
from testbed.study.cells import Cell, compute_cell

Progress = Callable[[int, int, str], None]


class CellStore:
    """Finished cells of one study, one JSON file per cell key."""

    def __init__(self, out_dir: Path | str) -> None:
        self.dir = Path(out_dir) / "cells"
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict | None:
        path = self.dir / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):      # unreadable: computed again, never trusted
            return None

    def put(self, key: str, result: dict) -> None:
        atomic_write(self.dir / f"{key}.json", json.dumps(result, sort_keys=True))

    def results(self) -> Iterator[dict]:
        for path in sorted(self.dir.glob("*.json")):
            r = self.get(path.stem)
            if r is not None:
                yield r


@dataclass
class StudyRun:
    """What a run did: cells in the grid, found stored, computed now, failed, left undone."""

    total: int = 0
    cached: int = 0
    computed: int = 0
    failed: list[str] = field(default_factory=list)
    undone: int = 0
    seconds: float = 0.0
    results: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"total": self.total, "cached": self.cached, "computed": self.computed, "failed": self.failed,
                "undone": self.undone, "seconds": round(self.seconds, 1)}


class _Models:
    """Zoo models loaded on demand, a few kept (cells come grouped by source model)."""

    def __init__(self, zoo: Zoo, keep: int = 6) -> None:
        self.zoo, self.keep = zoo, keep
        self._loaded: dict[str, object] = {}

    def get(self, names: tuple[str, ...]) -> dict:
        """The models ``names``, loading those not kept; evicts the least recently used others
        (never one of ``names``: a transfer cell needs its source and every target at once)."""
        for n in names:
            if n in self._loaded:
                self._loaded[n] = self._loaded.pop(n)          # most recently used last
                continue
            spare = [k for k in self._loaded if k not in names]
            while spare and len(self._loaded) >= self.keep:
                self._loaded.pop(spare.pop(0))
            self._loaded[n] = self.zoo.load(n)
        return {n: self._loaded[n] for n in names}


class _Clips:
    """The fixed clips of each data set (the source card's), chosen once per (spec, n, seed)."""

    def __init__(self, zoo: Zoo, data: str | None) -> None:
        self.zoo, self.data = zoo, data
        self._sets: dict[tuple, tuple[np.ndarray, np.ndarray, int]] = {}

    def get(self, cell: Cell) -> tuple[np.ndarray, np.ndarray, int]:
        card = self.zoo.card(cell.source)
        key = (json.dumps(card.get("data"), sort_keys=True, default=str), self.data, cell.n_clips, cell.clip_seed)
        if key not in self._sets:
            x, y, _ = held_out_clips(card, self.data, cell.n_clips, cell.clip_seed)
            self._sets[key] = (x, y, int(card.get("sample_rate", 16000)))
        return self._sets[key]


def run_cells(cells: list[Cell], zoo: Zoo, out_dir: Path | str, *, data: str | None = None,
              progress: Progress | None = None, should_stop: Callable[[], bool] = lambda: False,
              executor=None, hashes: Mapping[str, str] | None = None) -> StudyRun:
    """Compute every cell not stored yet, in order; store each as it finishes.

    Parameters
    ----------
    cells : the grid (see :func:`testbed.study.grid.paper_cells`).
    zoo : where the models come from; a cell's key includes each model's weights hash.
    out_dir : the study folder (cells go to ``out_dir/cells``).
    data : data set spec for the clips (default: each source model's own test split).
    progress : ``progress(done, total, what)`` after each cell.
    should_stop : polled between cells; a stop leaves the rest undone (a later run resumes).
    executor : optional :class:`testbed.study.tasks.CellExecutor` to compute cells elsewhere.
    hashes : model -> weights sha256 the cells are keyed by (default: the zoo's); a cell whose
        models are not all in the zoo is reported if stored and otherwise left undone.
    """
    t0 = time.perf_counter()
    store = CellStore(out_dir)
    run = StudyRun(total=len(cells))
    weights = dict(hashes or {})
    for c in cells:
        for m in (c.source, *c.targets):
            if m not in weights:
                weights[m] = zoo.model_hash(m)
    pending: list[tuple[Cell, str]] = []
    for c in cells:
        key = c.key(weights)
        got = store.get(key)
        if got is not None:
            run.cached += 1
            run.results.append(got)
        elif all(zoo.exists(m) for m in (c.source, *c.targets)):
            pending.append((c, key))
    done = run.cached
    if progress:
        progress(done, run.total, "stored cells found")
    clips = _Clips(zoo, data)
    if executor is not None:
        results = executor.map_cells(pending, clips, zoo, should_stop)
    else:
        models = _Models(zoo)

        def local():
            for cell, key in pending:
                if should_stop():
                    return
                x, y, sr = clips.get(cell)
                try:
                    yield cell, key, compute_cell(cell, models.get((cell.source, *cell.targets)), x, y, sr)
                except (AttackError, TestbedError) as exc:
                    yield cell, key, {"cell": cell.as_dict(), "error": str(exc)}
        results = local()
    versions = {**package_versions(), "git": git_revision()} if pending else {}     # nothing to stamp
    for cell, key, result in results:
        result["key"] = key
        result.setdefault("versions", versions)
        store.put(key, result)
        run.results.append(result)
        if "error" in result:
            run.failed.append(f"{cell.figure} {cell.source} {cell.attack} eps {cell.eps:g}: {result['error']}")
        else:
            run.computed += 1
        done += 1
        if progress:
            progress(done, run.total, f"{cell.figure} {cell.source} {cell.attack} eps {cell.eps:g}")
    run.undone = run.total - run.cached - run.computed - len(run.failed)
    run.seconds = time.perf_counter() - t0
    return run
