"""`testbed models ensemble-curve`: error rate against ensemble size of a stochastic model (Fig. 8).

Registered on the ``models`` group by :mod:`testbed.cli.models`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, finite_float, make_progress, print_json, split_csv


def ensemble_curve(
    name: str = typer.Argument(..., help="a stochastic model, e.g. lm-slr8", show_default=False),
    members: str = typer.Option("1,2,4,8,16", "--members", help="ensemble sizes, comma-separated"),
    attack: str = typer.Option("pgd", "--attack", "-a", help="white-box attack: fgsm | pgd | eot-pgd"),
    eps: float = typer.Option(0.005, "--eps", callback=finite_float, help="L-inf bound, PCM scale"),
    steps: int = typer.Option(20, "--steps", help="attack iterations (pgd, eot-pgd)"),
    adaptive: bool = typer.Option(True, "--adaptive/--no-adaptive",
                                  help="adaptive: every gradient averages --eot-samples draws of the "
                                       "ensemble's noise (EOT); --no-adaptive: one draw per gradient"),
    eot_samples: int = typer.Option(8, "--eot-samples", help="noise draws per gradient when adaptive"),
    n: int = typer.Option(100, "--n", help="test clips (the same for every ensemble size)"),
    data: str = typer.Option(None, "--data", help="data set spec (default: the model card's)"),
    seed: int = typer.Option(0, "--seed", help="seed of the clip choice, the noise and the attack"),
    root: Path = typer.Option(None, "--root", envvar="TESTBED_MODELS_DIR",
                              help="zoo folder (default: env TESTBED_MODELS_DIR or ./models)"),
    out: Path = typer.Option(Path("analysis/ensemble-curve"), "--out", "-o",
                             help="folder for ensemble_curve.csv and ensemble_curve.png"),
    json_out: bool = typer.Option(False, "--json", help="print the table as JSON"),
) -> None:
    """Clean and attacked error rate of a stochastic ensemble for n = 1, 2, 4, 8, 16 members.

    For every size the attack is crafted white-box against that same ensemble; the clips and
    seeds are the same for every size. Writes ensemble_curve.csv and ensemble_curve.png.

    Example: testbed models ensemble-curve lm-slr8 --members 1,2,4,8,16 --eps 0.005 --n 100
    """
    from testbed.errors import ModelError

    try:
        sizes = [int(v) for v in split_csv(members)]
    except ValueError:
        raise ModelError(f"--members: {members!r} is not a list of whole numbers, e.g. 1,2,4,8,16") from None
    if not sizes or any(s < 1 for s in sizes):
        raise ModelError(f"--members: give ensemble sizes >= 1, got {members!r}")
    if n < 1:
        raise ModelError(f"--n: must be at least 1, got {n}")
    if eot_samples < 1:
        raise ModelError(f"--eot-samples: must be at least 1, got {eot_samples}")

    import torch

    from testbed.attacks import ATTACKS
    from testbed.models import held_out_clips
    from testbed.errors import AttackError
    from testbed.models import Zoo
    from testbed.models.robust import ensemble_curve as curve
    from testbed.models.robust import plot_ensemble_curve

    if attack not in ATTACKS or attack in ("nes", "ota-pgd", "universal"):
        raise AttackError(f"--attack: {attack!r} is not a digital white-box attack (use fgsm, pgd or eot-pgd)")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = Zoo(root).load(name)
    if not getattr(model, "stochastic", False):
        raise ModelError(f"{name} is not stochastic; the ensemble curve needs an slr or rse model (e.g. lm-slr8)")
    x, y, spec = held_out_clips(getattr(model, "card", {}) or {}, data, n, seed)
    with make_progress(transient=json_out) as bar:
        task = bar.add_task(f"{attack} on {name} for n = {members}", total=len(sizes) * len(x))
        table = curve(model, x, y, members=sizes, attack=attack, eps=eps, steps=steps, adaptive=adaptive,
                      eot_samples=eot_samples, seed=seed, name=name,
                      progress=lambda done, total: bar.update(task, completed=done, total=total))
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "ensemble_curve.csv"
    table.to_csv(csv_path, index=False)
    png = plot_ensemble_curve(table, out / "ensemble_curve.png",
                              title=f"{name}: error vs ensemble size ({spec}, n={len(x)})")
    result = {"model": name, "data": spec, "csv": str(csv_path), "png": str(png),
              "rows": [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                       for r in table.to_dict(orient="records")]}
    if json_out:
        print_json(result)
        return
    how = f"adaptive EOT ({eot_samples} draws per gradient)" if adaptive else "non-adaptive (1 draw per gradient)"
    console.print(f"[bold]{name}[/bold]: {attack} eps {eps:g}, {how}, {len(x)} clips of {spec}")
    console.print("  rates are % with Wilson 95 % intervals; p: exact McNemar of the attacked errors "
                  f"against n = {sizes[0]} on the same clips")
    for r in table.itertuples():
        p = "" if r.mcnemar_p != r.mcnemar_p else f", p = {r.mcnemar_p:.3g}"
        console.print(f"  n = {r.n_members:>2}: clean error {100 * r.clean_error:5.1f} % "
                      f"[{100 * r.clean_error_ci_low:.1f}, {100 * r.clean_error_ci_high:.1f}], "
                      f"attacked error {100 * r.error_rate:5.1f} % "
                      f"[{100 * r.error_ci_low:.1f}, {100 * r.error_ci_high:.1f}] (n={r.n}){p}")
    console.print(f"wrote {csv_path} and {png}")
