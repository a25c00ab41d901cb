"""The report's "How audible was it" section (issue 24): success beside audibility, per attack.

One row per attack configuration (attack id: kind, bound, eps, source model, parameters) and,
for targeted attacks, per source -> target pair. Success is counted at the DUT mic over every
evaluation model, with a Wilson 95 % interval: for a targeted attack, the DUT reporting the target
(as :mod:`testbed.analysis.targeted` counts it), otherwise any error. Beside it, over the row's
trials, each trial's ``facts["audibility"]`` (:mod:`testbed.session.audibility`) at the speaker and
at the DUT mic: SNR (median and interquartile range), the fraction of frames above the command's
masking threshold (median) and the masking margin (median over trials of each trial's max over frames
and bins, and of its median over frames).

Sessions recorded before these facts existed have none: the section then says so.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from testbed.analysis.metrics import fmt_rate, is_targeted, usable
from testbed.analysis.plots import dut_view
from testbed.analysis.stats import wilson_interval
from testbed.errors import TestbedError
from testbed.session import store

#: The two references of the section, their ``facts["audibility"]`` location and column prefix.
REFERENCES = (("speaker", "at the speaker"), ("dut", "at the DUT mic"))
#: Per-reference figures, as column suffixes.
FIGURES = ("snr_db", "snr_q25", "snr_q75", "frames_above", "margin_db", "median_margin_db", "n_aud")
NO_FACTS = ("these sessions recorded no audibility per trial (they ran before issue 24's audibility "
            "facts; run the plan again to get them)")
NO_ATTACK = "these sessions hold no attacked trial"


def audibility_facts(sessions) -> tuple[pd.DataFrame, dict[str, dict], list[str]]:
    """``(rows, bounds, problems)``: one row per (session, trial) that stored audibility, with the
    speaker's and the DUT mic's figures (``speaker_snr_db`` ..., ``dut_snr_db`` ...); the bound of
    every attack id (``"masking"`` or ``"linf"``); and why a session could not be read."""
    rows, bounds, problems = [], {}, []
    dut_mics = _dut_mics(sessions.evaluations)
    for sid, path in sessions.paths.items():
        try:
            with store.open_reader(path) as r:
                timing = r.capture_timing()
                attacks = r.attacks()
        except (TestbedError, OSError, sqlite3.Error, ValueError) as exc:
            problems.append(f"session {sid}: cannot read its trials ({exc})")
            continue
        for aid, a in attacks.items():
            bounds[aid] = str((a.params or {}).get("bound", "linf"))
        seen = set()
        for tid, _, _, facts in timing:
            aud = facts.get("audibility")
            if tid in seen or not aud:
                continue
            seen.add(tid)
            row = {"session_id": sid, "trial_id": int(tid)}
            mic = dut_mics.get(sid) or facts.get("dut_mic")
            for prefix, entry in (("speaker", aud.get("speaker")), ("dut", (aud.get("mics") or {}).get(mic))):
                entry = entry or {}
                row[f"{prefix}_snr_db"] = entry.get("snr_db")
                row[f"{prefix}_frames_above"] = entry.get("frames_above")
                row[f"{prefix}_margin_db"] = entry.get("masking_margin_db")
                row[f"{prefix}_median_margin_db"] = entry.get("median_margin_db")
                row[f"{prefix}_reference"] = entry.get("reference")
            rows.append(row)
    return pd.DataFrame(rows), bounds, problems


def _dut_mics(df: pd.DataFrame) -> dict[str, str]:
    if "is_dut_mic" not in df.columns:
        return {}
    d = df[df["is_dut_mic"].fillna(False).astype(bool)]
    return {str(s): str(m) for s, m in d.groupby("session_id")["mic"].first().items()}


def _stats(values: pd.Series) -> dict:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"median": None, "q25": None, "q75": None}
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75)}


def audibility_table(df: pd.DataFrame, aud: pd.DataFrame, bounds: dict[str, str] | None = None) -> pd.DataFrame:
    """Success with Wilson 95 % interval beside audibility, per attack id (and pair when targeted).

    Parameters
    ----------
    df : evaluations (``load_evaluations`` columns); only the DUT mic's usable attacked rows count
    aud : :func:`audibility_facts` rows (``session_id``, ``trial_id``, ``speaker_*``, ``dut_*``)
    bounds : attack id -> bound

    Returns
    -------
    One row per group: ``attack_id``, ``attack``, ``bound``, ``eps``, ``label`` (``"*"`` untargeted),
    ``target``, ``measure`` (``"target"`` or ``"error"``), ``n``, ``k``, ``rate``, ``lo``, ``hi``,
    ``n_trials``, and per reference ``speaker_`` / ``dut_`` + ``snr_db`` (median), ``snr_q25``,
    ``snr_q75``, ``frames_above`` (median), ``margin_db`` (median of the trials' max margins),
    ``median_margin_db`` (median of the trials' per-frame median margins), ``n_aud`` (trials with facts).
    """
    data = usable(dut_view(df))
    data = data[data["attack"].astype(str) != "none"].copy()
    cols = ["attack_id", "attack", "bound", "eps", "label", "target", "measure", "n", "k", "rate", "lo", "hi",
            "n_trials"] + [f"{p}_{f}" for p, _ in REFERENCES for f in FIGURES]
    if data.empty:
        return pd.DataFrame(columns=cols)
    data["_targeted"] = is_targeted(data).to_numpy()
    data.loc[~data["_targeted"], "label"] = "*"
    if not aud.empty:
        data = data.merge(aud, on=["session_id", "trial_id"], how="left")
    rows = []
    for (aid, label, target), sub in data.groupby(["attack_id", "label", "target"], sort=True, dropna=False):
        targeted = bool(sub["_targeted"].iloc[0])
        n = int(len(sub))
        k = int(sub["target_hit"].fillna(False).astype(bool).sum()) if targeted else \
            int((~sub["correct"].astype(bool)).sum())
        lo, hi = wilson_interval(k, n)
        row = {"attack_id": aid, "attack": sub["attack"].iloc[0], "bound": (bounds or {}).get(aid, "linf"),
               "eps": float(sub["eps"].iloc[0]), "label": label, "target": target,
               "measure": "target" if targeted else "error", "n": n, "k": k, "rate": k / n if n else np.nan,
               "lo": lo, "hi": hi, "n_trials": int(sub[["session_id", "trial_id"]].drop_duplicates().shape[0])}
        trials = sub.drop_duplicates(["session_id", "trial_id"])
        for p, _ in REFERENCES:
            if f"{p}_snr_db" not in trials.columns:
                row.update({f"{p}_{f}": None for f in FIGURES})
                row[f"{p}_n_aud"] = 0
                continue
            have = trials[trials[f"{p}_reference"].notna()]
            snr = _stats(have[f"{p}_snr_db"])
            row.update({f"{p}_snr_db": snr["median"], f"{p}_snr_q25": snr["q25"], f"{p}_snr_q75": snr["q75"],
                        f"{p}_frames_above": _stats(have[f"{p}_frames_above"])["median"],
                        f"{p}_margin_db": _stats(have[f"{p}_margin_db"])["median"],
                        f"{p}_median_margin_db": _stats(have[f"{p}_median_margin_db"])["median"],
                        f"{p}_n_aud": int(len(have))})
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def audibility_section(sessions) -> dict:
    """``{"rows": [...], "note": str | None}`` for ``summary.json`` and the template; ``note`` says
    why the audibility columns are empty (old sessions, no attack, unreadable store)."""
    aud, bounds, problems = audibility_facts(sessions)
    t = audibility_table(sessions.evaluations, aud, bounds)
    note = None
    if t.empty:
        note = NO_ATTACK
    elif aud.empty:
        note = "; ".join(problems) or NO_FACTS
    rows = t.astype(object).where(t.notna(), None).to_dict(orient="records")
    return {"rows": rows, "note": note}


def _db(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def audibility_html_rows(section: dict) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the section's table."""
    head = ["attack", "bound", "eps", "source -> target", "success [95% CI]", "n"]
    for _, name in REFERENCES:
        head += [f"SNR dB {name}: median [IQR]", f"frames above threshold {name}",
                 f"masking margin dB {name}: max (frame median)"]
    rows = []
    for r in section["rows"]:
        what = "any error" if r["measure"] == "error" else f"{r['label']} -> {r['target']}"
        cells = [str(r["attack"]), str(r["bound"]), f"{r['eps']:g}", what,
                 f"{fmt_rate(r['rate'], r['lo'], r['hi'])} ({r['k']}/{r['n']})", str(r["n"])]
        for p, _ in REFERENCES:
            snr = r.get(f"{p}_snr_db")
            cells.append("-" if snr is None else f"{snr:.1f} [{r[f'{p}_snr_q25']:.1f}, {r[f'{p}_snr_q75']:.1f}]")
            fa = r.get(f"{p}_frames_above")
            cells.append("-" if fa is None else f"{100 * fa:.0f}%")
            cells.append(f"{_db(r.get(f'{p}_margin_db'))} ({_db(r.get(f'{p}_median_margin_db'))})")
        rows.append(cells)
    return head, rows
