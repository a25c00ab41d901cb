"""Study cells as Dask tasks: models travel as :class:`~testbed.scale.ModelRef` (card and
safetensors bytes, loaded once per worker through the zoo), clips as arrays; this process
stores every result (the study folder has one writer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from testbed.errors import TestbedError
from testbed.scale import model_ref
from testbed.scale.worker import worker_model
from testbed.study.cells import Cell, compute_cell


def cell_task(cell: Cell, refs: dict, x, y, sample_rate: int) -> dict:
    """Compute one cell on a worker."""
    models = {name: worker_model(ref).module for name, ref in refs.items()}
    try:
        return compute_cell(cell, models, x, y, sample_rate)
    except TestbedError as exc:
        return {"cell": cell.as_dict(), "error": str(exc)}


class CellExecutor:
    """Runs pending cells on a Dask client, yielding ``(cell, key, result)`` as each finishes."""

    def __init__(self, client) -> None:
        self.client = client
        self._refs: dict[str, object] = {}

    def _ref(self, zoo, name: str):
        if name not in self._refs:
            self._refs[name] = self.client.scatter(model_ref(zoo, name), broadcast=True, hash=False)
        return self._refs[name]

    def map_cells(self, pending: list[tuple[Cell, str]], clips, zoo,
                  should_stop: Callable[[], bool]) -> Iterator[tuple[Cell, str, dict]]:
        from distributed import as_completed

        futures = {}
        for cell, key in pending:
            x, y, sr = clips.get(cell)
            refs = {m: self._ref(zoo, m) for m in (cell.source, *cell.targets)}
            futures[self.client.submit(cell_task, cell, refs, x, y, sr, pure=False)] = (cell, key)
        done = as_completed(list(futures))
        for fut in done:
            cell, key = futures[fut]
            yield cell, key, fut.result()
            if should_stop():
                for f in futures:
                    f.cancel()
                return
