"""The study's model cache: a cell gets every model it names, however full the cache is."""

from __future__ import annotations

from testbed.study.run import _Models


class CountingZoo:
    """Stands in for a Zoo: ``load`` returns the name and counts how often each was loaded."""

    def __init__(self) -> None:
        self.loads: dict[str, int] = {}

    def load(self, name: str) -> str:
        self.loads[name] = self.loads.get(name, 0) + 1
        return f"model {name}"


def test_a_transfer_cell_gets_its_source_and_targets_from_a_full_cache():
    zoo = CountingZoo()
    models = _Models(zoo, keep=3)              # type: ignore[arg-type]
    models.get(("lm-fp32",))
    models.get(("lm-int8",))
    models.get(("lm-int4",))
    # lm-fp32 is the oldest entry; loading the two targets must not evict it (it did: KeyError)
    got = models.get(("lm-fp32", "ete-fp32", "lms-fp32"))
    assert got == {n: f"model {n}" for n in ("lm-fp32", "ete-fp32", "lms-fp32")}
    assert zoo.loads["lm-fp32"] == 1


def test_the_least_recently_used_model_is_evicted():
    zoo = CountingZoo()
    models = _Models(zoo, keep=2)              # type: ignore[arg-type]
    models.get(("a",))
    models.get(("b",))
    models.get(("a",))                         # a is now the most recent
    models.get(("c",))                         # evicts b
    models.get(("a",))
    models.get(("b",))
    assert zoo.loads == {"a": 1, "b": 2, "c": 1}
