"""Running error rates with Wilson 95 % intervals, by each of the plan's sweep dimensions.

Input: the grouped counts of :func:`testbed.session.store.live.error_counts` (one row per attack,
eps, delay, placement, mic and model with ``n`` evaluations and ``wrong`` of them). Output: one
table per dimension (attack x eps, delay, placement, mic), rows = the dimension's values, columns =
the models. Every dimension but ``mic`` counts the DUT mic only (what the device under test heard).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from testbed.analysis.stats import wilson_interval
from testbed.session.store import SessionReader
from testbed.session.store import live

#: (key, title, uses only the DUT mic)
DIMENSIONS: tuple[tuple[str, str, bool], ...] = (
    ("attack_eps", "attack x eps", True),
    ("delay_ms", "sync delay (ms)", True),
    ("placement", "placement", True),
    ("mic", "microphone (every mic)", False),
)


def _value(row: dict, key: str) -> str:
    if key == "attack_eps":
        kind = row["attack_kind"]
        return kind if kind == "none" else f"{kind} eps={row['eps']:g}"
    if key == "delay_ms":
        return f"{row['delay_ms']:g}"
    v = row[key]
    return "default" if v is None else str(v)


def _sort_key(key: str, value: str):
    if key == "delay_ms":
        return (0, float(value), "")
    if key == "attack_eps":
        kind, _, eps = value.partition(" eps=")
        return (0 if kind == "none" else 1, float(eps) if eps else 0.0, kind)
    return (0, 0.0, value)


class ErrorCounter:
    """Running error counts of a live session: each call reads only the evaluations added since."""

    def __init__(self) -> None:
        self._acc: dict[tuple, list[int]] = {}
        self._last = 0
        self._t_acc: dict[tuple, list[int]] = {}   # issue 24: targeted hits
        self._t_last = 0

    def update(self, reader: SessionReader) -> list[dict]:
        """The counts of every evaluation so far (rows as :func:`testbed.session.store.live.error_counts`)."""
        rows, self._last = live.error_counts(reader, after_eval_id=self._last)
        return _accumulate(self._acc, rows, live.ERROR_KEYS, "wrong")

    def update_targets(self, reader: SessionReader) -> list[dict]:
        """Issue 24: the targeted-success counts so far (rows as :func:`testbed.session.store.live.target_counts`)."""
        rows, self._t_last = live.target_counts(reader, after_eval_id=self._t_last)
        return _accumulate(self._t_acc, rows, live.TARGET_KEYS, "hits")


def _accumulate(acc: dict[tuple, list[int]], rows, keys, count: str) -> list[dict]:
    """Add each row's ``count`` and ``n`` to ``acc`` under its ``keys``; every group's totals so far."""
    for r in rows:
        kn = acc.setdefault(tuple(r[k] for k in keys), [0, 0])
        kn[0] += int(r[count] or 0)
        kn[1] += int(r["n"] or 0)
    return [{**dict(zip(keys, key)), count: k, "n": n} for key, (k, n) in acc.items()]


def cell(wrong: int, n: int) -> dict:
    """``{wrong, n, rate, lo, hi}``: the error rate and its Wilson 95 % interval (None when n = 0)."""
    if n <= 0:
        return {"wrong": 0, "n": 0, "rate": None, "lo": None, "hi": None}
    lo, hi = wilson_interval(wrong, n)
    return {"wrong": wrong, "n": n, "rate": wrong / n, "lo": None if math.isnan(lo) else lo,
            "hi": None if math.isnan(hi) else hi}


def error_tables(counts: Iterable[dict], dut_mic: str | None, models: list[str] | None = None) -> dict:
    """The page's error tables.

    Returns
    -------
    ``{"models": [...], "dut_mic": ..., "overall": {model: cell}, "tables": [{"key", "title",
    "rows": [{"value", "cells": {model: cell}}]}]}``
    """
    counts = list(counts)
    seen = sorted({r["model"] for r in counts})
    order = [m for m in (models or []) if m in seen] + [m for m in seen if m not in (models or [])]
    dut = [r for r in counts if dut_mic is None or r["mic"] == dut_mic]
    overall = {m: cell(sum(r["wrong"] for r in dut if r["model"] == m), sum(r["n"] for r in dut if r["model"] == m))
               for m in order}
    tables = []
    for key, title, dut_only in DIMENSIONS:
        acc: dict[str, dict[str, list[int]]] = {}
        for r in dut if dut_only else counts:
            wn = acc.setdefault(_value(r, key), {}).setdefault(r["model"], [0, 0])
            wn[0] += int(r["wrong"] or 0)
            wn[1] += int(r["n"] or 0)
        rows = [{"value": v, "cells": {m: cell(*acc[v].get(m, (0, 0))) for m in order}}
                for v in sorted(acc, key=lambda v: _sort_key(key, v))]
        tables.append({"key": key, "title": title, "rows": rows})
    return {"models": order, "dut_mic": dut_mic, "overall": overall, "tables": tables}


def target_table(counts: Iterable[dict], dut_mic: str | None, models: list[str] | None = None) -> dict:
    """Issue 24: targeted success at the DUT mic (the DUT said the attack's target), per attack and
    source -> target pair, per model, with Wilson 95 % intervals.

    Returns
    -------
    ``{"models": [...], "dut_mic": ..., "rows": [{"value", "attack", "label", "target",
    "cells": {model: {hits, n, rate, lo, hi}}}]}``; ``rows`` is empty without a targeted attack.
    """
    dut = [r for r in counts if dut_mic is None or r["mic"] == dut_mic]
    seen = sorted({r["model"] for r in dut})
    order = [m for m in (models or []) if m in seen] + [m for m in seen if m not in (models or [])]
    acc: dict[tuple, dict[str, list[int]]] = {}
    for r in dut:
        hn = acc.setdefault((r["attack"], r["attack_kind"], r["eps"], r["label"], r["target"]), {}) \
            .setdefault(r["model"], [0, 0])
        hn[0] += int(r["hits"] or 0)
        hn[1] += int(r["n"] or 0)
    rows = []
    for (aid, kind, eps, label, target) in sorted(acc, key=lambda k: (k[1], k[2] or 0.0, k[0], k[3])):
        cells = {}
        for m in order:
            c = cell(*acc[(aid, kind, eps, label, target)].get(m, (0, 0)))
            c["hits"] = c.pop("wrong")
            cells[m] = c
        rows.append({"value": f"{kind} eps={eps:g} {label} -> {target}", "attack": aid, "label": label,
                     "target": target, "cells": cells})
    return {"models": order, "dut_mic": dut_mic, "rows": rows}
