"""Bounds metadata on attack hyper-parameters: ``steps: Annotated[int, Range(1, 100_000)] = 20``.

The registry reads these from each attack's ``__init__`` signature (:func:`param_bounds`), so a
plan or a command line is range-checked by the attack's own declaration before anything runs,
and the check lives next to the parameter it guards.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Annotated

__all__ = ["Alpha", "Annotated", "Count", "DbPair", "Db", "DelayPairMs", "Range", "Seed", "Steps",
           "bounds_of", "value_problem"]


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric hyper-parameter (or of each element of a tuple of them).

    ``lo`` / ``hi`` are inclusive unless ``lo_open`` / ``hi_open``; ``integer`` asks for whole
    numbers (bools are never numbers here). ``None`` is always allowed where the default is ``None``.
    """

    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"

    def problem(self, v: object) -> str | None:
        """Why the single value ``v`` is out of bounds (``"must be ..., got v"``), or None."""
        if isinstance(v, bool) or not isinstance(v, Real):
            return f"must be a{'n integer' if self.integer else ' number'}, got {v!r}"
        if not math.isfinite(float(v)):
            return f"must be a finite number, got {v!r}"
        x = float(v)
        low = self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo))
        high = self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi))
        if low or high or (self.integer and not isinstance(v, Integral)):
            return f"must be {self.what()}, got {v!r}"
        return None

    def what(self) -> str:
        """``"a positive integer up to 100000"``, ``"an integer in [2, 64]"``, ``"in (0, 1]"``."""
        if self.integer and self.lo == 1 and not self.lo_open:
            return "a positive integer" + ("" if self.hi is None else f" up to {_num(self.hi)}")
        return f"{'an integer ' if self.integer else ''}in {self.describe()}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def bounds_of(func) -> dict[str, Range]:
    """``{parameter: Range}`` of the parameters of ``func`` annotated ``Annotated[..., Range(...)]``."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:   # an annotation that cannot be evaluated: no bounds from it
        return {}
    out: dict[str, Range] = {}
    for name, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Range):
                out[name] = meta
    return out


def value_problem(rng: Range, value: object) -> str | None:
    """Why ``value`` (a number, None, or a list/tuple of numbers) breaks ``rng``, or None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            p = rng.problem(v)
            if p is not None:
                return f"[{i}] {p}"
        return None
    return rng.problem(value)


#: Bounds several attacks share (each attack may still write its own ``Annotated[..., Range(...)]``).
Steps = Annotated[int, Range(1, 100_000, integer=True)]
Alpha = Annotated[float | None, Range(0.0, 1.0, lo_open=True)]      # step size, PCM scale
Seed = Annotated[int, Range(0, 2**63 - 1, integer=True)]
Count = Annotated[int, Range(1, 1_000_000, integer=True)]             # batch sizes, populations, ...
Db = Annotated[float, Range(-60.0, 60.0)]
DbPair = Annotated[tuple[float, float], Range(-60.0, 60.0)]         # (low, high) dB
DelayPairMs = Annotated[tuple[float, float], Range(-10_000.0, 10_000.0)]  # (low, high) ms
