"""Helpers every CLI module shares: consoles, JSON output, progress bars, error lines."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _default(o: Any) -> Any:
    import numpy as np
    from pathlib import Path

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "as_dict"):
        return o.as_dict()
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout (no Rich markup, safe for scripts)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_default, allow_nan=False) + "\n")
    sys.stdout.flush()


def make_progress(transient: bool = False, disable: bool = False) -> Progress:
    """A Rich progress bar with count, elapsed time and ETA, drawn on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=disable,
    )


def split_csv(value: str | None) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; None or '' -> []."""
    if not value:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def split_floats(value: str | None, what: str) -> list[float]:
    """'0.001,0.01' -> [0.001, 0.01], with a one-line error naming the option."""
    from testbed.errors import TestbedError

    out = []
    for v in split_csv(value):
        try:
            x = float(v)
        except ValueError:
            raise TestbedError(f"{what}: {v!r} is not a number") from None
        if not math.isfinite(x):
            raise TestbedError(f"{what}: {v!r} is not a finite number")
        out.append(x)
    return out


def finite_float(ctx, param, value: float | None) -> float | None:
    """Typer ``callback=`` for a float option: refuse ``nan`` / ``inf`` (which click parses) with a
    one-line error naming the option; None (not given) passes."""
    from testbed.errors import TestbedError

    if value is not None and not math.isfinite(value):
        name = (param.opts[0] if getattr(param, "opts", None) else getattr(param, "name", "option"))
        raise TestbedError(f"{name}: {value} is not a finite number")
    return value


def _no_constant(token: str):
    raise ValueError(token)


def parse_key_values(items: list[str] | None, option: str, example: str) -> dict:
    """``["steps=20", "delay_ms=[0,500]", "antithetic=false"]`` -> dict (JSON values, else strings).

    Dashes in keys become underscores; an item without ``=`` is a one-line error naming
    ``option`` with ``example``.
    """
    from testbed.errors import TestbedError

    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise TestbedError(f"{option}: {item!r} is not KEY=VALUE (e.g. {option} {example})")
        try:
            out[key] = json.loads(raw, parse_constant=_no_constant)   # NaN / Infinity are no numbers
        except ValueError:
            if raw.strip().lstrip("+-").lower() in ("nan", "inf", "infinity") or _has_constant(raw):
                raise TestbedError(f"{option}: {item!r}: {key} must be a finite number") from None
            out[key] = raw
    return out


def _has_constant(raw: str) -> bool:
    """Whether ``raw`` is JSON but for a NaN / Infinity inside (``[0, NaN]``)."""
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def table_rows(rows: Iterable[dict]) -> list[dict]:
    return list(rows)
