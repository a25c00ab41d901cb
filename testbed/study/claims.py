"""The paper's findings as testable claims: "paper says / we measure / interval / verdict".

Each claim reads the study table; a claim whose cells are not finished (or whose models are not
in the zoo) says so instead of a verdict. Comparisons of two models or attacks on the same clips
use the exact McNemar test, and the p-values of all claims are Holm-adjusted together.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from testbed.stats import holm, wilson_interval
from testbed.study.table import paired, pick

ALPHA = 0.05


def _rate(row: pd.Series) -> str:
    return f"{100 * row.error_rate:.1f} % ({row.errors}/{row.n})"


def _ci(row: pd.Series) -> str:
    return f"[{100 * row.ci_low:.1f}, {100 * row.ci_high:.1f}] %"


def _threshold(row: pd.Series, level: float) -> str:
    if row.ci_low >= level:
        return "holds"
    if row.ci_high < level:
        return "does not hold"
    return f"inconclusive (interval straddles {100 * level:.0f} %)"


def _one(t: pd.DataFrame, **where) -> pd.Series | None:
    rows = pick(t, **where)
    return None if rows.empty else rows.iloc[0]


def _largest_eps(t: pd.DataFrame, **where) -> pd.Series | None:
    rows = pick(t, **where)
    return None if rows.empty else rows.sort_values("eps").iloc[-1]


def _vulnerable(t: pd.DataFrame) -> dict:
    r = _largest_eps(t, figure="fig4", target="lm-fp32", attack="pgd")
    if r is None:
        return {}
    return {"measure": f"lm-fp32, PGD at eps {r.eps:g}: {_rate(r)}", "interval": _ci(r),
            "verdict": _threshold(r, 0.9)}


def _compressed(t: pd.DataFrame) -> dict:
    a, b = _largest_eps(t, figure="fig4", target="lm-fp32", attack="pgd"), None
    if a is not None:
        b = _one(t, figure="fig4", target="lm-lowrank", attack="pgd", eps=float(a.eps))
    if a is None or b is None:
        return {}
    p = paired(a, b)
    verdict = ("holds (more vulnerable)" if p["diff"] > 0 and p["p"] < ALPHA else
               "does not hold (less vulnerable)" if p["diff"] < 0 and p["p"] < ALPHA else "holds (within noise)")
    return {"measure": f"PGD eps {a.eps:g}: lowrank {100 * p['b']:.1f} % vs fp32 {100 * p['a']:.1f} % "
                       f"(same {p['n']} clips)", "interval": f"McNemar p = {p['p']:.2g}", "p": p["p"],
            "verdict": verdict}


def _blackbox(t: pd.DataFrame) -> dict:
    for attack in ("nes", "square"):
        r = _largest_eps(t, figure="fig5", target="lm-fp32", attack=attack, target_label="untargeted")
        if r is not None:
            return {"measure": f"lm-fp32, {attack.upper()} at eps {r.eps:g}: {_rate(r)}", "interval": _ci(r),
                    "verdict": _threshold(r, 0.5)}
    return {}


def _delay(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="fig6", target="lm-fp32")
    if rows.empty:
        return {}
    d, eps = rows.delay_ms.max(), rows.eps.min()
    f, g = _one(rows, attack="fgsm", delay_ms=float(d), eps=float(eps)), _one(rows, attack="pgd", delay_ms=float(d),
                                                                            eps=float(eps))
    if f is None or g is None or d == 0:
        return {}
    p = paired(f, g)
    verdict = ("holds" if p["diff"] > 0 and p["p"] < ALPHA else
               "does not hold" if p["diff"] < 0 and p["p"] < ALPHA else "inconclusive (within noise)")
    return {"measure": f"eps {eps:g}, {d:g} ms late: PGD {100 * p['b']:.1f} % vs FGSM {100 * p['a']:.1f} %",
            "interval": f"McNemar p = {p['p']:.2g}", "p": p["p"], "verdict": verdict}


def _transfer(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="fig7", attack="pgd")
    rows = rows[rows.source != rows.target]
    if rows.empty:
        return {}
    k, n = int(rows.errors.sum()), int(rows.n.sum())
    lo, hi = wilson_interval(k, n)
    row = pd.Series({"ci_low": lo, "ci_high": hi})
    return {"measure": f"PGD eps {rows.eps.iloc[0]:g} crafted on one architecture, other architectures: "
                       f"{100 * k / n:.1f} % ({k}/{n}, {len(rows)} pairs; clips shared between pairs)",
            "interval": f"[{100 * lo:.1f}, {100 * hi:.1f}] %", "verdict": _threshold(row, 0.9)}


def _ensemble(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="fig8", arch="lm")
    if len(rows) < 2:
        return {}
    k_of = rows.target.str.extract(r"@k(\d+)$")[0].astype(int)
    small, large = rows.loc[k_of.idxmin()], rows.loc[k_of.idxmax()]
    p = paired(small, large)
    verdict = ("holds" if p["diff"] < 0 and p["p"] < ALPHA else
               "does not hold (more error)" if p["diff"] > 0 and p["p"] < ALPHA else "does not hold (within noise)")
    return {"measure": f"PGD eps {small.eps:g}: {large.target} {100 * p['b']:.1f} % vs {small.target} "
                       f"{100 * p['a']:.1f} %", "interval": f"McNemar p = {p['p']:.2g}", "p": p["p"], "verdict": verdict}


def _bits(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="fig4", attack="pgd", arch="lm")
    if rows.empty:
        return {}
    eps = float(rows.eps.min())
    a, b = _one(rows, target="lm-fp32", eps=eps), _one(rows, target="lm-int16", eps=eps)
    if a is None or b is None:
        return {}
    p = paired(a, b)
    verdict = "holds (within noise)" if p["p"] >= ALPHA else "does not hold"
    return {"measure": f"PGD eps {eps:g}: int16 {100 * p['b']:.1f} % vs fp32 {100 * p['a']:.1f} %",
            "interval": f"McNemar p = {p['p']:.2g}", "p": p["p"], "verdict": verdict}


def _defence(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="defence", arch="lm")
    if rows.empty:
        return {}
    eps = float(rows.eps.min())
    a, b = _one(rows, target="lm-fp32", eps=eps), _one(rows, target="lm-slr8", eps=eps)
    if a is None or b is None:
        return {}
    p = paired(a, b)
    verdict = ("holds" if p["diff"] < 0 and p["p"] < ALPHA else
               "does not hold (more error)" if p["diff"] > 0 and p["p"] < ALPHA else "does not hold (within noise)")
    return {"measure": f"{a.attack.upper()} eps {eps:g}: slr8 {100 * p['b']:.1f} % vs fp32 {100 * p['a']:.1f} %",
            "interval": f"McNemar p = {p['p']:.2g}", "p": p["p"], "verdict": verdict}


CLAIMS: tuple[tuple[str, str, Callable[[pd.DataFrame], dict]], ...] = (
    ("fig4", "Undefended models are extremely vulnerable to white-box PGD (error near 100 %)", _vulnerable),
    ("fig4", "Low-rank compressed models are at least as vulnerable as the uncompressed ones", _compressed),
    ("fig5", "Black-box NES attacks also fool the undefended models", _blackbox),
    ("fig6", "PGD perturbations survive a sync delay better than FGSM's", _delay),
    ("fig7", "White-box PGD transfers almost perfectly across architectures", _transfer),
    ("fig8", "More ensemble members lower the error under attack", _ensemble),
    ("fig9", "INT16 follows the fp32 model closely under attack", _bits),
    ("defence", "The stochastic low-rank ensemble (SLR) lowers the white-box error against fp32", _defence),
)


def verdicts(table: pd.DataFrame) -> list[dict]:
    """One row per claim: ``figure, paper, measure, interval, verdict`` (and ``p_holm`` where a
    paired test decided it). A claim with no finished cells says ``not measured``."""
    out = []
    for figure, says, fn in CLAIMS:
        got = fn(table) if not table.empty else {}
        out.append({"figure": figure, "paper": says, "measure": got.get("measure", "cells not finished or "
                    "models not in the zoo"), "interval": got.get("interval", "-"), "p": got.get("p"),
                    "verdict": got.get("verdict", "not measured")})
    ps = [r["p"] for r in out if r["p"] is not None]
    for r, q in zip([r for r in out if r["p"] is not None], holm(ps) if ps else []):
        r["p_holm"] = float(q)
        if q >= ALPHA and r["verdict"] in ("holds",) and r["figure"] in ("fig6", "fig8", "defence"):
            r["verdict"] = "inconclusive after Holm correction"
    return out
