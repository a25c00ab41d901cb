"""Plain-sentence findings computed from the data, each with the numbers behind it.

Every finding is a dict ``{"id": str, "text": str, "values": dict}``; the report prints the
text and ``summary.json`` keeps the values. Nothing here is hard-coded: a sentence appears
only when the data hold what it talks about.

Intervals: a rate pooled over rows that share a trial (several models or mics judged the
same played clip) gets a trial-level (cluster) bootstrap 95 % interval, seeded; a rate with
one row per trial keeps its Wilson interval. Each value says which (``ci``). A finding that
picks one pair among several (the mic pairs) reports Holm-adjusted p-values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from testbed.analysis.compare import all_mic_pairs, mic_tiers
from testbed.analysis.dimensions import resolve_dimensions, with_dimensions
from testbed.analysis.metrics import fmt_rate, is_targeted, usable
from testbed.analysis.metrics import rate_table as _wilson_table
from testbed.analysis.plots import dut_view
from testbed.analysis.stats import trial_interval
from testbed.analysis.targeted import targeted_finding
from testbed.stats import NOISE_P


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def rate_table(df: pd.DataFrame, by=()) -> pd.DataFrame:
    """:func:`~testbed.analysis.metrics.rate_table` with honest intervals for clustered groups.

    Where a group's rows share trials, ``error_lo/hi`` (and ``success_lo/hi``) are replaced
    by a trial-level bootstrap interval (:func:`~testbed.analysis.stats.trial_interval`);
    the added columns ``ci`` ("wilson" or "trial bootstrap") and ``n_trials`` say which.
    """
    t = _wilson_table(df, by).copy()
    dims = resolve_dimensions(by, df.columns)
    data = with_dimensions(df, dims)
    groups = ([data] if not dims else
              [g for _, g in data.groupby(dims, sort=True, observed=True, dropna=False)])
    ci, n_trials = [], []
    for i, sub in enumerate(groups):
        ok = usable(sub)
        err = trial_interval(~ok["correct"].astype(bool).to_numpy(), ok)
        if err is not None:
            t.loc[t.index[i], ["error_lo", "error_hi"]] = [err["lo"], err["hi"]]
        tgt = ok[is_targeted(ok)]
        hit = trial_interval(tgt["target_hit"].fillna(False).astype(bool).to_numpy(), tgt) if len(tgt) else None
        if hit is not None:
            t.loc[t.index[i], ["success_lo", "success_hi"]] = [hit["lo"], hit["hi"]]
        ci.append("trial bootstrap" if err is not None else "wilson")
        n_trials.append(err["n_trials"] if err is not None else int(len(ok)))
    t["ci"] = ci
    t["n_trials"] = n_trials
    return t


def _row_values(r: pd.Series) -> dict:
    return {"rate": float(r["error_rate"]), "lo": float(r["error_lo"]), "hi": float(r["error_hi"]),
            "n": int(r["n"]), "n_trials": int(r["n_trials"]), "ci": str(r["ci"])}


def _attack_name(attack: str) -> str:
    return {"fgsm": "FGSM", "pgd": "PGD", "nes": "NES", "ota-pgd": "over-the-air PGD",
            "eot-pgd": "EOT-PGD", "universal": "a universal perturbation"}.get(attack, attack)


def _mic_desc(mic: str, tiers: dict) -> str:
    tier = tiers.get(mic)
    return f"the {tier} mic '{mic}'" if tier else f"mic '{mic}'"


def _versus(a: pd.Series, b: pd.Series) -> str:
    """How rate ``a`` stands against rate ``b`` by their 95 % intervals: "clearly above",
    "clearly below", or "within the noise of" when the intervals overlap (a point estimate
    above the other is not reported as a difference)."""
    if a["error_lo"] > b["error_hi"]:
        return "clearly above"
    if a["error_hi"] < b["error_lo"]:
        return "clearly below"
    return "within the noise of"


def clean_vs_attack(df: pd.DataFrame) -> dict | None:
    """Clean error vs attacked error at the DUT mic, all models pooled."""
    data = usable(dut_view(df))
    clean = data[data["attack"].astype(str) == "none"]
    att = data[data["attack"].astype(str) != "none"]
    if clean.empty or att.empty:
        return None
    c = rate_table(clean).iloc[0]
    a = rate_table(att).iloc[0]
    per = rate_table(att, ["attack"]).sort_values("error_rate", ascending=False)
    parts = ", ".join(f"{_attack_name(r['attack'])} {fmt_rate(r['error_rate'], r['error_lo'], r['error_hi'])}"
                      for _, r in per.iterrows())
    verdict = _versus(a, c)
    text = (f"At the DUT mic the models err on {fmt_rate(c['error_rate'], c['error_lo'], c['error_hi'])} "
            f"of clean captures and on {fmt_rate(a['error_rate'], a['error_lo'], a['error_hi'])} of attacked "
            f"ones ({parts}): attacks are {verdict} the clean error. Intervals are 95 %: trial-level "
            f"bootstrap where several models or mics judged one trial, Wilson otherwise.")
    return {"id": "clean_vs_attack", "text": text,
            "values": {"clean": _row_values(c), "attacked": _row_values(a),
                       "per_attack": {r["attack"]: _row_values(r) for _, r in per.iterrows()}}}


def strongest_per_model(df: pd.DataFrame, max_models: int = 3) -> list[dict]:
    """For the most fooled models: the strongest (attack, eps) and its rate at each mic tier."""
    att = usable(df[df["attack"].astype(str) != "none"])
    data = dut_view(att)
    if data.empty:
        return []
    tiers = mic_tiers(df)
    t = rate_table(data, ["model", "attack", "eps"])
    t = t[t["n"] > 0]
    best = t.sort_values(["error_rate", "n"], ascending=[False, False]).drop_duplicates("model")
    out = []
    for _, r in best.head(max_models).iterrows():
        sel = att[(att["model"] == r["model"]) & (att["attack"] == r["attack"]) & (att["eps"] == r["eps"])]
        per_mic = rate_table(sel, ["mic"]).sort_values("error_rate", ascending=False)
        mic_parts = [f"{fmt_rate(m['error_rate'], m['error_lo'], m['error_hi'])} at {_mic_desc(m['mic'], tiers)}"
                     for _, m in per_mic.iterrows()]
        text = (f"{_attack_name(r['attack'])} at eps {r['eps']:g} fools {r['model']} in "
                + ", ".join(mic_parts) + f" (at least {int(per_mic['n'].min())} trials per mic).")
        out.append({"id": f"strongest:{r['model']}", "text": text[0].upper() + text[1:],
                    "values": {"model": r["model"], "attack": r["attack"], "eps": float(r["eps"]),
                               "per_mic": {m["mic"]: _row_values(m) for _, m in per_mic.iterrows()}}})
    return out


def pgd_vs_fgsm_delay(df: pd.DataFrame) -> dict | None:
    """PGD vs FGSM error at the DUT mic under non-zero sync delay (the paper's Fig. 6 claim)."""
    data = usable(dut_view(df))
    data = data[data["attack"].isin(["fgsm", "pgd"])]
    if set(data["attack"]) != {"fgsm", "pgd"}:
        return None
    delayed = data[data["delay_ms"].astype(float) > 0]
    if delayed.empty:
        return None
    t = rate_table(delayed, ["attack"]).set_index("attack")
    p, f = t.loc["pgd"], t.loc["fgsm"]
    dmin, dmax = delayed["delay_ms"].astype(float).min(), delayed["delay_ms"].astype(float).max()
    rng = f"{dmin:g} ms" if dmin == dmax else f"{dmin:g}-{dmax:g} ms"
    cmp = _versus(p, f)
    text = (f"Under sync delays of {rng}, PGD errs on {fmt_rate(p['error_rate'], p['error_lo'], p['error_hi'])} "
            f"of captures at the DUT mic and FGSM on {fmt_rate(f['error_rate'], f['error_lo'], f['error_hi'])}: "
            f"PGD is {cmp} FGSM under delay.")
    return {"id": "pgd_vs_fgsm_delay", "text": text,
            "values": {"pgd": _row_values(p), "fgsm": _row_values(f), "delay_ms": [float(dmin), float(dmax)]}}


def mic_difference(df: pd.DataFrame) -> dict | None:
    """The mic pair with the largest paired difference on attacked trials (McNemar)."""
    pairs = all_mic_pairs(df, attacked_only=True)
    pairs = [p for p in pairs if p["n_pairs"] > 0]
    if not pairs:
        return None
    p = max(pairs, key=lambda q: (abs(q["error_a"] - q["error_b"]), -q["p_value"]))
    tiers = mic_tiers(df)
    hi, lo = ("a", "b") if p["error_a"] >= p["error_b"] else ("b", "a")
    sig = "a significant" if p["p_holm"] < NOISE_P else "no significant"
    sign = 1.0 if hi == "a" else -1.0
    d_lo, d_hi = sorted((sign * p["diff_lo"], sign * p["diff_hi"]))
    p_txt = f"McNemar exact p = {p['p_value']:.2g}"
    if p["n_comparisons"] > 1:
        p_txt += f", Holm-adjusted over {p['n_comparisons']} mic pairs p = {p['p_holm']:.2g}"
    text = (f"On the same attacked trials, {_mic_desc(p['mic_' + hi], tiers)} is fooled in "
            f"{_pct(p['error_' + hi])} and {_mic_desc(p['mic_' + lo], tiers)} in {_pct(p['error_' + lo])}, "
            f"{100 * abs(p['error_a'] - p['error_b']):.0f} points more [{100 * d_lo:.0f}, {100 * d_hi:.0f}] "
            f"({p['ci']} 95 %; {p['n_pairs']} paired evaluations on {p['n_trials']} trials, {p_txt}: "
            f"{sig} difference).")
    return {"id": "mic_difference", "text": text, "values": p}


def position_effect(df: pd.DataFrame) -> dict | None:
    """Most and least effective adversary placement at the DUT mic."""
    if "placement" not in df.columns:
        return None
    att = usable(dut_view(df))
    att = att[att["attack"].astype(str) != "none"]
    if att["placement"].nunique() < 2:
        return None
    t = rate_table(att, ["placement"]).sort_values("error_rate", ascending=False)
    dist = att.groupby("placement")["dist_adv_m"].mean() if "dist_adv_m" in att.columns else {}
    top, bottom = t.iloc[0], t.iloc[-1]

    def where(r):
        d = dist.get(r["placement"], np.nan) if len(dist) else np.nan
        return f"{r['placement']}" + (f" ({d:.1f} m from the DUT mic)" if np.isfinite(d) else "")

    text = (f"With the adversary at {where(top)} attacks fool the DUT in "
            f"{fmt_rate(top['error_rate'], top['error_lo'], top['error_hi'])} of trials; at {where(bottom)} in "
            f"{fmt_rate(bottom['error_rate'], bottom['error_lo'], bottom['error_hi'])}.")
    return {"id": "position_effect", "text": text,
            "values": {r["placement"]: _row_values(r) for _, r in t.iterrows()}}


def transfer(df: pd.DataFrame) -> dict | None:
    """How well perturbations crafted on a source model fool the other models."""
    if "source_model" not in df.columns:
        return None
    att = usable(dut_view(df))
    att = att[(att["attack"].astype(str) != "none") & att["source_model"].notna()]
    cross = att[att["source_model"].astype(str) != att["model"].astype(str)]
    if cross.empty:
        return None
    t = rate_table(cross, ["source_model", "model"]).sort_values("error_rate", ascending=False)
    top, bottom = t.iloc[0], t.iloc[-1]
    text = (f"Perturbations crafted on {top['source_model']} transfer best to {top['model']} "
            f"({fmt_rate(top['error_rate'], top['error_lo'], top['error_hi'])} error)")
    if len(t) > 1:
        text += (f" and worst from {bottom['source_model']} to {bottom['model']} "
                 f"({fmt_rate(bottom['error_rate'], bottom['error_lo'], bottom['error_hi'])})")
    return {"id": "transfer", "text": text + ".",
            "values": {f"{r['source_model']}->{r['model']}": _row_values(r) for _, r in t.iterrows()}}


def crafted_played(df: pd.DataFrame) -> dict | None:
    """Over-the-air error by the rig a perturbation was crafted on and the rig it was played in."""
    if "crafted_on" not in df.columns:
        return None
    att = usable(dut_view(df))
    att = att[att["crafted_on"].notna()]
    if att.empty:
        return None
    t = rate_table(att, ["crafted_on", "played_in"])
    parts = [f"crafted on {r['crafted_on']}, played in {r['played_in']}: "
             f"{fmt_rate(r['error_rate'], r['error_lo'], r['error_hi'])} error" for _, r in t.iterrows()]
    return {"id": "crafted_played", "text": "Over-the-air perturbations " + "; ".join(parts) + ".",
            "values": {f"{r['crafted_on']}->{r['played_in']}": _row_values(r) for _, r in t.iterrows()}}


def replay(df: pd.DataFrame) -> dict | None:
    """Models evaluated offline on the recorded captures (eval_source = replay)."""
    if "eval_source" not in df.columns:
        return None
    data = usable(dut_view(df))
    rep = data[data["eval_source"].astype(str) == "replay"]
    rep = rep[~rep["model"].astype(str).str.contains("@k", regex=False)]   # ensemble_size() has those
    if rep.empty:
        return None
    att = rep[rep["attack"].astype(str) != "none"]
    clean = rep[rep["attack"].astype(str) == "none"]
    models = ", ".join(sorted(rep["model"].astype(str).unique()))
    parts = []
    vals = {"models": models}
    if not clean.empty:
        c = rate_table(clean).iloc[0]
        parts.append(f"{fmt_rate(c['error_rate'], c['error_lo'], c['error_hi'])} of clean captures")
        vals["clean"] = _row_values(c)
    if not att.empty:
        a = rate_table(att).iloc[0]
        parts.append(f"{fmt_rate(a['error_rate'], a['error_lo'], a['error_hi'])} of attacked ones")
        vals["attacked"] = _row_values(a)
    text = f"Replayed offline through {models}, the recorded DUT-mic captures are misclassified in " + \
        " and ".join(parts) + "."
    return {"id": "replay", "text": text, "values": vals}


def ensemble_size(df: pd.DataFrame) -> dict | None:
    """Attacked (and clean) error of a stochastic ensemble vs the members drawn at inference
    (replays of ``NAME@kN`` views), the paper's Fig. 8 in one sentence."""
    data = with_dimensions(usable(dut_view(df)), ["ensemble_size"])
    data = data[np.isfinite(data["ensemble_size"].astype(float))]
    if data.empty or data["ensemble_size"].nunique() < 2:
        return None
    att = data[data["attack"].astype(str) != "none"]
    if att.empty:
        return None
    t = rate_table(att, ["ensemble_size"]).sort_values("ensemble_size")
    parts = ", ".join(f"{int(r['ensemble_size'])}: {fmt_rate(r['error_rate'], r['error_lo'], r['error_hi'])}"
                      for _, r in t.iterrows())
    first, last = t.iloc[0], t.iloc[-1]
    trend = ("falls" if last["error_hi"] < first["error_lo"] else
             "rises" if last["error_lo"] > first["error_hi"] else "does not change clearly")
    text = (f"With more ensemble members drawn at inference, the stochastic model's error on attacked "
            f"DUT-mic captures {trend} (members: {parts}).")
    return {"id": "ensemble_size", "text": text,
            "values": {str(int(r["ensemble_size"])): _row_values(r) for _, r in t.iterrows()}}


def targeted(df: pd.DataFrame) -> dict | None:
    """Success rate of targeted attacks (prediction == target)."""
    data = usable(dut_view(df))
    tgt = data[is_targeted(data)]
    if tgt.empty:
        return None
    r = rate_table(tgt).iloc[0]
    text = (f"Targeted attacks make the DUT say the adversary's word in "
            f"{fmt_rate(r['success_rate'], r['success_lo'], r['success_hi'])} of {int(r['n_targeted'])} trials.")
    return {"id": "targeted", "text": text,
            "values": {"rate": float(r["success_rate"]), "lo": float(r["success_lo"]),
                       "hi": float(r["success_hi"]), "n": int(r["n_targeted"]), "ci": str(r["ci"])}}


def findings(df: pd.DataFrame) -> list[dict]:
    """All findings the data support, most important first."""
    out: list[dict] = []
    for fn in (clean_vs_attack,):
        f = fn(df)
        if f:
            out.append(f)
    out.extend(strongest_per_model(df))
    for fn in (pgd_vs_fgsm_delay, mic_difference, position_effect, transfer, crafted_played, ensemble_size,
               targeted, targeted_finding, replay):
        f = fn(df)
        if f:
            out.append(f)
    return out
