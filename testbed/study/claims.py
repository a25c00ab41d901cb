"""The paper's findings as testable claims: "paper says / we measure / interval / verdict".

Each claim reads the study table; a claim whose cells are not finished (or whose models are not
in the zoo) says so instead of a verdict. Comparisons of two models or attacks on the same clips
use the exact McNemar test, and the p-values of all claims are Holm-adjusted together.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from testbed.stats import NOISE_P, holm
from testbed.study.grid import BASELINES
from testbed.study.table import clip_bootstrap, paired, pick


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


def _paired_claim(a: pd.Series | None, b: pd.Series | None, what: str, name_a: str, name_b: str,
                  verdict: tuple[str, str, str]) -> dict:
    """A claim decided by the exact McNemar test of ``b`` against ``a`` on the same clips;
    ``verdict`` is what to say when ``b`` errs significantly more, significantly less, or
    neither (p >= 0.05)."""
    if a is None or b is None:
        return {}
    p = paired(a, b)
    more, less, same = verdict
    return {"measure": f"{what}: {name_b} {100 * p['b']:.1f} % vs {name_a} {100 * p['a']:.1f} % "
                       f"(same {p['n']} clips)",
            "interval": f"McNemar p = {p['p']:.2g}", "p": p["p"],
            "verdict": same if p["p"] >= NOISE_P else (more if p["diff"] > 0 else less)}


def _compressed(t: pd.DataFrame) -> dict:
    a = _largest_eps(t, figure="fig4", target="lm-fp32", attack="pgd")
    b = None if a is None else _one(t, figure="fig4", target="lm-lowrank", attack="pgd", eps=float(a.eps))
    return _paired_claim(a, b, f"PGD eps {getattr(a, 'eps', 0):g}", "fp32", "lowrank",
                         ("holds (more vulnerable)", "does not hold (less vulnerable)", "holds (within noise)"))


def _blackbox(t: pd.DataFrame) -> dict:
    for attack in ("nes", "square"):
        r = _largest_eps(t, figure="fig5", target="lm-fp32", attack=attack, target_label="untargeted")
        if r is not None:
            return {"measure": f"lm-fp32, {attack.upper()} at eps {r.eps:g}: {_rate(r)}", "interval": _ci(r),
                    "verdict": _threshold(r, 0.5)}
    return {}


def _delay(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="fig6", target="lm-fp32")
    if rows.empty or rows.delay_ms.max() == 0:
        return {}
    d, eps = float(rows.delay_ms.max()), float(rows.eps.min())
    return _paired_claim(_one(rows, attack="fgsm", delay_ms=d, eps=eps), _one(rows, attack="pgd", delay_ms=d, eps=eps),
                         f"eps {eps:g}, {d:g} ms late", "FGSM", "PGD",
                         ("holds", "does not hold", "inconclusive (within noise)"))


def _transfer(t: pd.DataFrame) -> dict:
    """Pooled transfer error over every (source, target) pair of different architectures. The
    pairs are attacked on the same clips, so one clip's outcomes are not independent (a clip hard
    for one pair tends to be hard for all): the interval resamples clips, not rows."""
    rows = pick(t, figure="fig7", attack="pgd")
    rows = rows[rows.source != rows.target]
    if rows.empty:
        return {}
    k, n = int(rows.errors.sum()), int(rows.n.sum())
    lo, hi = clip_bootstrap(rows)
    row = pd.Series({"ci_low": lo, "ci_high": hi})
    return {"measure": f"PGD eps {rows.eps.iloc[0]:g} crafted on one architecture, other architectures: "
                       f"{100 * k / n:.1f} % ({k}/{n}, {len(rows)} pairs on the same "
                       f"{int(rows.n.max())} clips)",
            "interval": f"[{100 * lo:.1f}, {100 * hi:.1f}] % (clip bootstrap)", "verdict": _threshold(row, 0.9)}


def _ensemble(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="fig8", arch="lm")
    if len(rows) < 2:
        return {}
    k_of = rows.target.str.extract(r"@k(\d+)$")[0].astype(int)
    small, large = rows.loc[k_of.idxmin()], rows.loc[k_of.idxmax()]
    return _paired_claim(small, large, f"PGD eps {small.eps:g}", small.target, large.target,
                         ("does not hold (more error)", "holds", "does not hold (within noise)"))


def _bits(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="fig4", attack="pgd", arch="lm")
    if rows.empty:
        return {}
    eps = float(rows.eps.min())
    return _paired_claim(_one(rows, target="lm-fp32", eps=eps), _one(rows, target="lm-int16", eps=eps),
                         f"PGD eps {eps:g}", "fp32", "int16", ("does not hold", "does not hold", "holds (within noise)"))


def _first_common_eps(rows: pd.DataFrame, *targets: str) -> float | None:
    """The smallest bound at which every one of ``targets`` has a finished cell."""
    common = set.intersection(*(set(pick(rows, target=t).eps.round(12)) for t in targets))
    return float(min(common)) if common else None


def _defence(t: pd.DataFrame) -> dict:
    rows = pick(t, figure="defence", arch="lm")
    eps = None if rows.empty else _first_common_eps(rows, "lm-fp32", "lm-slr8")
    if eps is None:
        return {}
    a = _one(rows, target="lm-fp32", eps=eps)
    return _paired_claim(a, _one(rows, target="lm-slr8", eps=eps), f"{a.attack.upper()} eps {eps:g}",
                         "fp32", "slr8", ("does not hold (more error)", "holds", "does not hold (within noise)"))


def _baselines(t: pd.DataFrame) -> dict:
    """SLR against the strongest of the paper's three baselines (the one with the lowest error) at
    the smallest bound where SLR and a baseline are both finished."""
    rows = pick(t, figure="defence", arch="lm")
    if rows.empty:
        return {}
    first = {b: _first_common_eps(rows, "lm-slr8", f"lm-{b}") for b in BASELINES}
    first = {b: e for b, e in first.items() if e is not None}
    if not first:
        return {}
    eps = min(first.values())
    best = min((_one(rows, target=f"lm-{b}", eps=eps) for b, e in first.items() if e == eps),
               key=lambda r: r.error_rate)
    return _paired_claim(best, _one(rows, target="lm-slr8", eps=eps),
                         f"{best.attack.upper()} eps {eps:g}, strongest baseline", best.variant, "slr8",
                         ("does not hold (the baseline is stronger)", "holds", "does not hold (within noise)"))


CLAIMS: tuple[tuple[str, str, Callable[[pd.DataFrame], dict]], ...] = (
    ("fig4", "Undefended models are extremely vulnerable to white-box PGD (error near 100 %)", _vulnerable),
    ("fig4", "Low-rank compressed models are at least as vulnerable as the uncompressed ones", _compressed),
    ("fig5", "Black-box NES attacks also fool the undefended models", _blackbox),
    ("fig6", "PGD perturbations survive a sync delay better than FGSM's", _delay),
    ("fig7", "White-box PGD transfers almost perfectly across architectures", _transfer),
    ("fig8", "More ensemble members lower the error under attack", _ensemble),
    ("fig9", "INT16 follows the fp32 model closely under attack", _bits),
    ("defence", "The stochastic low-rank ensemble (SLR) lowers the white-box error against fp32", _defence),
    ("defence", "SLR is more robust than adversarial augmentation, distillation and RSE", _baselines),
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
        if r["p"] < NOISE_P <= q:        # decided by a difference that the correction does not keep
            r["verdict"] = "inconclusive (significant alone, not after Holm correction)"
    return out
