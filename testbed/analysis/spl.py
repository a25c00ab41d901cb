"""The report's levels section: each mic's command, perturbation and ambient level by attack and
bound, in dB SPL (unweighted and A-weighted) beside dBFS, from each trial's ``facts["levels"]``
(:mod:`testbed.session.levels`). Without an SPL calibration the section says why."""

from __future__ import annotations

import sqlite3

import pandas as pd

from testbed.errors import TestbedError
from testbed.session import store

#: Level fields summarised (medians over trials), in display order.
FIELDS = ("command_db_spl", "command_dba_spl", "perturbation_db_spl", "perturbation_dba_spl",
          "ambient_dba_spl", "command_dbfs", "perturbation_dbfs", "ambient_dbfs")


def level_frame(sessions) -> tuple[pd.DataFrame, list[str]]:
    """One row per (session, trial, mic) with its attack, eps and level fields; and the reasons
    SPL is absent, as the trials recorded them."""
    ev = sessions.evaluations
    keys = ev[["session_id", "trial_id", "attack", "eps"]].drop_duplicates(["session_id", "trial_id"])
    rows, absent = [], []
    for sid, path in sessions.paths.items():
        try:
            with store.open_reader(path) as r:
                timing = r.capture_timing()
        except (TestbedError, OSError, sqlite3.Error, ValueError) as exc:   # no readable store: no levels
            absent.append(f"session {sid}: cannot read its trials ({exc})")
            continue
        for tid, mic, _, facts in timing:
            lv = (facts.get("levels") or {}).get(mic)
            if lv is None:
                continue
            if facts.get("spl_absent") and facts["spl_absent"] not in absent:
                absent.append(facts["spl_absent"])
            rows.append({"session_id": sid, "trial_id": tid, "mic": mic,
                         "spl_source": facts.get("spl_source"), **lv})
    if not rows:
        return pd.DataFrame(columns=["session_id", "trial_id", "mic", "attack", "eps", *FIELDS]), absent
    df = pd.DataFrame(rows).merge(keys, on=["session_id", "trial_id"], how="left")
    return df, absent


def spl_summary(sessions) -> dict:
    """``{"rows": [...], "source": [...], "note": str | None}``: medians of :data:`FIELDS` by mic,
    attack and eps (rows only for fields some trial has); ``note`` says why SPL is absent."""
    df, absent = level_frame(sessions)
    if df.empty:
        return {"rows": [], "source": [], "note": "; ".join(absent) or "these sessions recorded no levels "
                                                  "per trial (recorded before levels in dB SPL existed)"}
    have = [f for f in FIELDS if f in df.columns]
    g = df.groupby(["mic", "attack", "eps"], dropna=False)
    out = g[have].median().round(1)
    out.insert(0, "n", g.size())
    recs = out.reset_index().astype(object).where(out.reset_index().notna(), None).to_dict(orient="records")
    has_spl = any(f.endswith("_spl") for f in have)
    note = None if has_spl else ("; ".join(absent) or "no SPL calibration")
    sources = sorted({s for s in df["spl_source"].dropna()})
    return {"rows": recs, "source": sources, "note": note}


def spl_html_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the levels table: "dB SPL (dB(A))" pairs beside dBFS."""
    def pair(r: dict, a: str, b: str) -> str:
        x, y = r.get(a), r.get(b)
        if x is None:
            return "-" if y is None else f"({y:.1f})"
        return f"{x:.1f}" if y is None else f"{x:.1f} ({y:.1f})"

    head = ["mic", "attack", "eps", "n", "command dB SPL (A)", "perturbation dB SPL (A)", "ambient dB(A) SPL",
            "command dBFS", "perturbation dBFS", "ambient dBFS"]
    rows = []
    for r in summary["rows"]:
        rows.append([str(r["mic"]), str(r["attack"]), f"{r['eps']:g}", str(int(r["n"])),
                     pair(r, "command_db_spl", "command_dba_spl"),
                     pair(r, "perturbation_db_spl", "perturbation_dba_spl"),
                     "-" if r.get("ambient_dba_spl") is None else f"{r['ambient_dba_spl']:.1f}",
                     *("-" if r.get(k) is None else f"{r[k]:.1f}" for k in ("command_dbfs", "perturbation_dbfs",
                                                                             "ambient_dbfs"))])
    return head, rows
