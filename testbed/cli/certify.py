"""`testbed models eval NAME --certify`: randomised-smoothing certification of a zoo model.

Called by :mod:`testbed.cli.models`; the certification itself is
:mod:`testbed.models.robust.certify`.
"""

from __future__ import annotations

from pathlib import Path

from testbed.cli.common import console, make_progress, print_json, split_csv


def certify_command(name: str, data: str | None, root: Path | None, *, sigma: float | None, n: int, n0: int,
                    alpha: float, clips: int, eps: str, seed: int, json_out: bool) -> None:
    """``models eval --certify``: certify ``clips`` test clips, print certified accuracy per radius."""
    from testbed.models import held_out_clips
    from testbed.errors import ModelError
    from testbed.models import Zoo
    from testbed.models.robust.certify import certified_accuracy, certify_clips
    from testbed.models.robust.smooth import SmoothedClassifier, linf_to_l2
    from testbed.stats import wilson_interval

    try:
        eps_list = [float(v) for v in split_csv(eps)]
    except ValueError:
        raise ModelError(f"--eps: {eps!r} is not a list of numbers, e.g. 0.0005,0.001") from None
    if n < 1 or n0 < 1 or clips < 1 or not 0 < alpha < 1 or any(e < 0 for e in eps_list):
        raise ModelError("--certify: need --n, --n0, --clips >= 1, 0 < --alpha < 1 and --eps >= 0")
    model = Zoo(root).load(name)
    card = getattr(model, "card", {}) or {}
    if isinstance(model, SmoothedClassifier):
        if sigma is not None:
            model.sigma.fill_(float(sigma))
    elif sigma is None:
        raise ModelError(f"{name} is not a smoothed model: give --sigma to certify it smoothed, or use an "
                         "lm-smooth model (models build --variants smooth)")
    elif sigma <= 0:
        raise ModelError(f"--sigma: must be > 0, got {sigma}")
    else:
        if getattr(model, "stochastic", False):
            raise ModelError(f"{name} is stochastic; certify a deterministic base model (e.g. lm-fp32)")
        model = SmoothedClassifier(model, sigma, seed=seed)
    model.reseed(seed)
    x, y, spec = held_out_clips(card, data, clips, seed)
    with make_progress(transient=True) as bar:
        task = bar.add_task(f"certify {name}", total=len(y))
        rows = certify_clips(model, x, y, n0=n0, n=n, alpha=alpha,
                             progress=lambda d, t: bar.update(task, completed=d, total=t))
    n_samples = int(x.shape[1])
    radii = [0.0] + [float(linf_to_l2(e, n_samples)) for e in eps_list]
    table = certified_accuracy(rows, radii, n_samples)
    abstained = sum(r["prediction"] < 0 for r in rows)
    a_lo, a_hi = wilson_interval(abstained, len(rows))
    result = {"model": name, "data": spec, "split": "test", "n": len(rows), "sigma": float(model.sigma),
              "n0": n0, "n_votes": n, "alpha": alpha, "seed": seed, "n_samples": n_samples,
              "abstain_rate": abstained / len(rows), "abstain_ci": [a_lo, a_hi],
              "linf_note": "an L-inf ball of radius eps lies inside the L2 ball of radius eps * sqrt(n_samples): "
                           "a certified L2 radius R certifies L-inf eps = R / sqrt(n_samples)",
              "certified": table, "clips": rows}
    if json_out:
        print_json(result)
        return
    from rich.table import Table

    t = Table(title=f"{name}: randomised smoothing, sigma {result['sigma']:g}, n0 {n0}, n {n}, alpha {alpha:g}, "
                    f"{len(rows)} clips of {spec} (abstained {100 * result['abstain_rate']:.1f} %)")
    for col in ("L2 radius", "L-inf eps (R / sqrt N)", "certified acc %", "Wilson 95 %", "k / n"):
        t.add_column(col, justify="right")
    for r in table:
        t.add_row(f"{r['radius_l2']:.4g}", f"{r['linf_eps']:.4g}", f"{100 * r['certified_accuracy']:.1f}",
                  f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]", f"{r['k']} / {r['n']}")
    console.print(t)
    console.print(f"radius 0: correct and not abstained. {result['linf_note']}.")
