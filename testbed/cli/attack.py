"""`testbed attack ...`: digital attack evaluation and crafting a plan's perturbations ahead."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from testbed.cli.common import console, make_progress, parse_key_values, print_json, split_csv, split_floats
from testbed.stats import NOISE_P

app = typer.Typer(help="Adversarial attacks: evaluate digitally (no channel); craft a plan's perturbations.",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Adversarial attacks: evaluate digitally (no channel); craft a plan's perturbations."""


def _finite(v):
    return v if isinstance(v, (int, str)) or (isinstance(v, float) and math.isfinite(v)) else None


@app.command("eval")
def eval_(
    model: str = typer.Option(..., "--model", "-m", help="source model(s) to craft on, comma-separated, e.g. lm-fp32"),
    attack: str = typer.Option("pgd", "--attack", "-a", help="fgsm | pgd | nes | eot-pgd | ota-pgd | universal | apgd | apgd-ce | apgd-dlr "
                                                               "| square | auto (APGD-CE, APGD-DLR, Square in cascade, "
                                                               "a clip robust only if all fail)"),
    eps: str = typer.Option("0.001,0.005,0.01,0.05", "--eps", help="L-inf bounds, PCM scale, comma-separated"),
    targets: str = typer.Option(None, "--targets", help="models to evaluate on, comma-separated (default: the sources)"),
    delay_ms: str = typer.Option("0", "--delay-ms", help="sync delays of the perturbation against the command, ms"),
    n: int = typer.Option(200, "--n", help="test clips to attack"),
    target_label: str = typer.Option(None, "--target-label", help="targeted attack: the label to aim for"),
    steps: int = typer.Option(None, "--steps", help="iterations (pgd, apgd, eot-pgd, ota-pgd, universal, auto; nes: iterations; "
                                                   "square: query budget per clip)"),
    restarts: int = typer.Option(1, "--restarts", help="random restarts per clip (white-box attacks, square); the "
                                                       "best per clip is kept, so restarts never lower the error"),
    gradient: str = typer.Option("ste", "--gradient",
                                 help="through quantised models: ste (straight-through rounding) | bpda "
                                      "(quantised forward, fp32 backward through the same weights)"),
    param: list[str] = typer.Option(None, "--param", help="more hyper-parameters, KEY=VALUE (JSON values), repeatable"),
    data: str = typer.Option(None, "--data", help="data set spec (default: the source model's card)"),
    rig_path: Path = typer.Option(None, "--rig", help="rig TOML for over-the-air kinds (ota-pgd, universal)"),
    root: Path = typer.Option(None, "--root", envvar="TESTBED_MODELS_DIR",
                              help="zoo folder (default: env TESTBED_MODELS_DIR or ./models)"),
    out: Path = typer.Option(Path("analysis/attack-eval"), "--out", "-o", help="folder for results.csv and plots"),
    seed: int = typer.Option(0, "--seed", help="seed of the clip choice and of the attack"),
    adaptive: bool = typer.Option(True, "--adaptive/--no-adaptive",
                                  help="stochastic models (slr, rse): average every gradient over several draws "
                                       "of the model's noise (adaptive EOT attack, the default); --no-adaptive: "
                                       "craft on ONE fixed, seeded draw of the model (a deterministic member), the "
                                       "non-adaptive attack a paper would run, and evaluate on the stochastic model"),
    loss: str = typer.Option(None, "--loss",
                             help="objective the attack ascends (default: the attack's own; ce for most): ce "
                                  "(cross-entropy) | margin (logit margin max_{j!=y} z_j - z_y: its gradient "
                                  "survives a saturated softmax, e.g. a distilled model's) | dlr (apgd only)"),
    batch_size: int = typer.Option(64, "--batch-size", help="clips per attack batch"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object (keys per target)"),
    # -- held-out-channel protocol (issue 20; see testbed/cli/attack_heldout.py) --------------------
    eval_rig: list[Path] = typer.Option(None, "--eval-rig",
                                        help="ota-pgd: evaluate the perturbations crafted through --rig through "
                                             "this rig's channels too (sim: fresh draws; measured: its IRs); "
                                             "repeatable"),
    eval_jitter_m: float = typer.Option(0.5, "--eval-jitter-m",
                                        help="position jitter of a simulated --eval-rig's fresh draws, metres"),
    eval_channels: int = typer.Option(8, "--eval-channels", help="channels drawn per --eval-rig"),
    # -- end of the held-out-channel options ---------------------------------------------------------
    # -- targeted command injection (issue 24; see testbed/cli/attack_targeted.py) ---------------------
    target_matrix: str = typer.Option(None, "--target-matrix",
                                      help="source->target pairs, e.g. yes:go,no:up: clips of each source label "
                                           "are attacked toward its target; success = the model says the target "
                                           "(per pair, Wilson 95 %), beside the untargeted error; writes targeted.csv"),
    # -- end of the targeted options -------------------------------------------------------------------
) -> None:
    """Craft an attack on source model(s) and evaluate it digitally on target models.

    Prints a table per target: clean accuracy, error rate under attack with its Wilson 95 %
    interval, success rate, mean SNR of the perturbation (dB), queries per clip and, from the
    second target on, the exact McNemar p-value of its errors against the first target's on
    the same clips ("within noise" when p >= 0.05). Writes results.csv, error_vs_eps.png,
    error_vs_delay.png and transfer.png to --out. With --json:

    {"settings": [{source, eps, delay_ms}, ...], "targets": {NAME: {"clean_accuracy": x,
    "clean_interval": [lo, hi], "error_rate": [...], "error_interval": [[lo, hi], ...],
    "success_rate": [...], "success_interval": [...], "success_n": [...], "snr_db": [...],
    "queries": [...], "queries_max": [...], "p_vs_first": [...], "within_noise": [...]}}, ...} with one list entry per
    setting, plus "n", "adaptive", "non_adaptive" ("fixed-draw" or null), "eot_samples" and
    "eot_draws" {source: model draws per gradient}, "loss", "gradient", "restarts" and, for
    --attack auto, "broken_by" (per setting: clips broken by each attack, clean, robust).
    On a stochastic source (slr, rse) the attack is adaptive by default: every gradient is an
    expectation over noise draws (EOT); --no-adaptive crafts on one fixed draw for comparison.
    --loss margin attacks the logit margin instead of the cross-entropy (check a defence
    that saturates the softmax with it, e.g. lm-distill).

    With --eval-rig (ota-pgd only): craft through --rig's channels and report, per evaluation
    rig, the error of the same perturbations through its channels, beside digital PGD and the
    clean command through the same channels, with Wilson 95 % intervals and the gap to the
    crafting channels (writes heldout.json). Example:
    testbed attack eval --model lm-fp32 --attack ota-pgd --eps 0.005 --rig rigs/office-sim.toml --eval-rig rigs/office-sim.toml --eval-rig rigs/lab-measured.toml

    Example: testbed attack eval --model lm-fp32 --attack pgd --eps 0.001,0.005,0.01,0.05 --targets lm-int8,lm-lowrank --delay-ms 0,100,500 --n 200
    """
    from testbed.attacks import ATTACKS
    from testbed.errors import AttackError

    kind = attack.strip()
    if kind not in ATTACKS:
        raise AttackError(f"--attack: unknown attack {kind!r} (have: {', '.join(ATTACKS)})")
    eps_list = split_floats(eps, "--eps")
    if not eps_list:
        raise AttackError("--eps: give at least one bound, e.g. --eps 0.005")
    bad = [e for e in eps_list if not (0 < e <= 1)]
    if bad:
        raise AttackError(f"--eps: {bad[0]:g} is not in (0, 1] (PCM scale; the paper uses 0.001 to 0.05)")
    delays = split_floats(delay_ms, "--delay-ms") or [0.0]
    if n < 1:
        raise AttackError(f"--n: must be at least 1, got {n}")
    if batch_size < 1:
        raise AttackError(f"--batch-size: must be at least 1, got {batch_size}")
    sources = split_csv(model)
    if not sources:
        raise AttackError("--model: give at least one model name")
    target_names = split_csv(targets) or list(sources)
    params = parse_key_values(param, "--param", "population=32")
    if steps is not None:
        params[{"nes": "iterations", "square": "n_queries"}.get(kind, "steps")] = steps
    params.setdefault("seed", seed)
    if loss is not None:
        params.setdefault("loss", loss.strip())
    if restarts != 1:
        params.setdefault("restarts", restarts)
    if gradient.strip() != "ste":
        params.setdefault("gradient", gradient.strip())

    import torch

    from testbed.acoustics.audibility import AUDIBILITY_KEYS
    from testbed.attacks import evaluate_attack, label_index, transfer_matrix
    from testbed.attacks.plots import plot_error_vs_delay, plot_error_vs_eps, plot_transfer_heatmap
    from testbed.errors import ModelError
    from testbed.models import Zoo, held_out_clips

    zoo = Zoo(root)
    loaded = {name: zoo.load(name) for name in dict.fromkeys(sources + target_names)}
    first = loaded[sources[0]]
    for name, m in loaded.items():
        if list(m.labels) != list(first.labels):
            raise ModelError(f"{name}: its labels differ from {sources[0]}'s; "
                             "source and target models must share one label set")
    if target_label is not None:
        label_index(first, target_label)
    if target_matrix is not None:  # issue 24: a bad pair fails before any data is loaded
        from testbed.attacks.targeted import parse_target_matrix

        parse_target_matrix(target_matrix, list(first.labels))
    from testbed.attacks import DEFAULT_EOT_SAMPLES

    stochastic = [s for s in sources if getattr(loaded[s], "stochastic", False)]
    eot = {s: 1 if not adaptive else int(params.get("eot_samples") or DEFAULT_EOT_SAMPLES) for s in stochastic}
    if stochastic and not json_out:
        if adaptive:
            console.print(f"{', '.join(stochastic)}: stochastic model, so the attack is adaptive: EOT over "
                          f"{', '.join(str(v) for v in sorted(set(eot.values())))} passes per gradient "
                          "(--no-adaptive for the non-adaptive attack on one fixed draw)")
        else:
            console.print(f"{', '.join(stochastic)}: stochastic model attacked non-adaptively (--no-adaptive): "
                          "crafted on one fixed, seeded draw of the model, evaluated on the model itself")
    if rig_path is not None:
        from testbed.rig import load_rig

        from testbed.session.craft_rig import crafting_channels

        params.setdefault("rig", crafting_channels(load_rig(rig_path))[0])
        if kind == "universal":
            params.setdefault("over_the_air", True)
    elif kind == "ota-pgd":
        raise AttackError("--rig: ota-pgd optimises through a rig's channels; give --rig rigs/office-sim.toml")
    # Build one attack up front so bad hyper-parameters fail before any data is loaded.
    from testbed.attacks import make_attack

    probe = make_attack(kind, first, eps_list[0], **params)
    loss_used = "ensemble" if kind == "auto" else probe.loss
    if loss_used != "ce" and not json_out:
        console.print(f"objective: {loss_used} (not the cross-entropy)")

    x, y, spec = held_out_clips(getattr(first, "card", {}) or {}, data, n, seed)
    # -- held-out-channel protocol (issue 20) ---------------------------------------------------------
    if eval_rig:
        from testbed.cli.attack_heldout import run_heldout

        run_heldout(first, sources[0], x, y, spec, kind=kind, eps=eps_list, params=params,
                    craft_rig_path=rig_path, eval_rig_paths=eval_rig, eval_jitter_m=eval_jitter_m,
                    n_channels=eval_channels, seed=seed, batch_size=batch_size, out=out, json_out=json_out)
        return
    # -- end of the held-out-channel block -------------------------------------------------------------
    sample_rate = int(getattr(first, "sample_rate", 16000))
    # -- targeted command injection (issue 24) ---------------------------------------------------------
    if target_matrix is not None:
        from testbed.cli.attack_targeted import run_target_matrix

        if target_label is not None:
            raise AttackError("--target-matrix: give either --target-label or --target-matrix, not both")
        run_target_matrix(loaded, sources, target_names, x, y, spec, matrix=target_matrix, kind=kind,
                          eps=eps_list, delays=delays, params=params, sample_rate=sample_rate,
                          batch_size=batch_size, out=out, json_out=json_out)
        return
    # -- end of the targeted block ---------------------------------------------------------------------
    torch.manual_seed(seed)
    with make_progress(transient=json_out) as bar:
        task = bar.add_task(f"{kind} on {', '.join(sources)}", total=len(x) * len(sources) * len(eps_list))
        table = evaluate_attack(
            {s: loaded[s] for s in sources}, {t: loaded[t] for t in target_names}, x, y,
            kind=kind, eps=eps_list, delays_ms=delays, target_label=target_label, params=params,
            sample_rate=sample_rate, batch_size=batch_size, adaptive=adaptive, draw_seed=seed,
            progress=lambda done, total: bar.update(task, completed=done, total=total))

    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    table.to_csv(csv_path, index=False)
    plots = [plot_error_vs_eps(table, out / "error_vs_eps.png"),
             plot_error_vs_delay(table, out / "error_vs_delay.png"),
             plot_transfer_heatmap(transfer_matrix(table, delay_ms=float(min(delays))), out / "transfer.png",
                                   title=f"{kind} transfer, eps {max(eps_list):g}: error rate (%)")]

    from testbed.attacks.evaluate import non_adaptive_mode

    first_rows = table[table["target"] == target_names[0]]
    settings = first_rows[["source", "eps", "delay_ms"]]
    result = {
        "attack": kind, "sources": sources, "n": int(len(x)), "data": spec,
        "target_label": target_label or "untargeted", "out": str(out), "csv": str(csv_path),
        "adaptive": bool(stochastic) and adaptive,
        "non_adaptive": non_adaptive_mode({s: loaded[s] for s in sources}, adaptive),
        "eot_samples": eot,
        "eot_draws": {s: int(g["eot_draws"].iloc[0]) for s, g in first_rows.groupby("source", sort=False)},
        "loss": loss_used, "gradient": getattr(probe, "gradient_mode", "ste"), "restarts": getattr(probe, "apgd_restarts", probe.restarts),
        "plots": [str(p) for p in plots],
        "settings": [{"source": r.source, "eps": float(r.eps), "delay_ms": float(r.delay_ms)}
                     for r in settings.itertuples()],
        "targets": {},
    }
    if kind == "auto":
        result["broken_by"] = [json.loads(v) if v else {} for v in first_rows["broken_by"]]
    for i, name in enumerate(target_names):
        g = table[table["target"] == name]
        p = [_finite(float(v)) for v in g["p_vs_first"]]
        result["targets"][name] = {
            "clean_accuracy": float(g["clean_accuracy"].iloc[0]),
            "clean_interval": [float(g["clean_low"].iloc[0]), float(g["clean_high"].iloc[0])],
            **{k: [_finite(float(v)) for v in g[k]]
               for k in ("error_rate", "success_rate", "snr_db", "queries", "queries_max")},
            "error_interval": [[float(lo), float(hi)] for lo, hi in zip(g["error_low"], g["error_high"])],
            "success_interval": [[_finite(float(lo)), _finite(float(hi))]
                                 for lo, hi in zip(g["success_low"], g["success_high"])],
            "success_n": [int(v) for v in g["success_n"]],
            "p_vs_first": p,
            "within_noise": [None if i == 0 or v is None else bool(v >= NOISE_P) for v in p],
            # audibility at the mic (issue 24): level_dbfs, level_db_spl, level_dba, loudness_lufs, ...
            **{k: [None if v is None else _finite(float(v)) for v in g[k]] for k in AUDIBILITY_KEYS if k != "snr_db"},
        }
    if json_out:
        print_json(result)
        return
    _print_tables(table, target_names, kind, len(x), target_label)
    if kind == "auto":
        for st, counts in zip(result["settings"], result["broken_by"]):
            console.print(f"auto, {st['source']} eps {st['eps']:g}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(f"wrote {csv_path} and {len(plots)} plots to {out}")


@app.command("craft")
def craft(
    plan_path: Path = typer.Argument(..., help="plan TOML file, e.g. sessions/plans/quick-sim.toml",
                                     show_default=False),
    rig_path: Path = typer.Option(..., "--rig", "-r", help="rig TOML file the session will run on",
                                  show_default=False),
    cluster: str = typer.Option("none", "--cluster", help="none (this process) | local[:N] | tcp://host:8786"),
    models_dir: Path = typer.Option(None, "--models-dir",
                                    help="model zoo root (default: $TESTBED_MODELS_DIR or ./models)"),
    cache_dir: Path = typer.Option(None, "--cache-dir",
                                   help="cache root (default: $TESTBED_CACHE_DIR or ~/.cache/ota-testbed)"),
    json_out: bool = typer.Option(False, "--json",
                                  help="print {needed, crafted, cached, cache_root, attacks, cluster} as JSON"),
) -> None:
    """Craft and cache every perturbation a plan needs, ahead of a (physical) session.

    Perturbations are cached by content (utterance, attack config, source model hash, seed), so a later 'testbed session run' of the same plan copies them instead of crafting, and running this twice crafts nothing the second time.

    Example: testbed attack craft sessions/plans/delay-sweep.toml --rig rigs/lab-a.toml --cluster local:2
    """
    from testbed.cli.common import err_console
    from testbed.scale import PerturbationCache, craft_plan, open_executor, parse_cluster

    spec = parse_cluster(cluster)
    with open_executor(spec) as executor, make_progress(transient=True, disable=json_out) as progress:
        if executor is not None and executor.dashboard and not json_out:
            err_console.print(f"Dask dashboard: {executor.dashboard}")
        task = progress.add_task("crafting", total=None)
        res = craft_plan(plan_path, rig_path, models_root=models_dir, cache=PerturbationCache(cache_dir),
                         executor=executor, progress=lambda d, n: progress.update(task, completed=d, total=n))
    if json_out:
        print_json({**res.as_dict(), "cluster": str(spec)})
        return
    console.print(f"{res.needed} perturbations for {len(res.attacks)} attack config(s): {res.crafted} crafted, "
                  f"{res.cached} already cached ({res.cache_root})")


def _print_tables(table, target_names: list[str], kind: str, n: int, target_label: str | None) -> None:
    from rich.table import Table

    for name in target_names:
        g = table[table["target"] == name]
        t = Table(title=f"{name}: {kind}, {n} clips, {target_label or 'untargeted'}, "
                        f"clean accuracy {100 * g['clean_accuracy'].iloc[0]:.1f}%")
        paired = name != target_names[0]
        cols = ["source", "eps", "delay ms", "error % [95% CI]", "success % [95% CI]", "SNR dB", "queries",
                "draws"] + ([f"McNemar p vs {target_names[0]}"] if paired else [])
        for col in cols:
            t.add_column(col, justify="left" if col == "source" else "right")
        for r in g.itertuples():
            row = [r.source, f"{r.eps:g}", f"{r.delay_ms:g}",
                   f"{100 * r.error_rate:.1f} [{100 * r.error_low:.1f}, {100 * r.error_high:.1f}]",
                   "-" if r.success_rate != r.success_rate else
                   f"{100 * r.success_rate:.1f} [{100 * r.success_low:.1f}, {100 * r.success_high:.1f}] "
                   f"(n={r.success_n})",
                   f"{r.snr_db:.1f}", f"{r.queries:.0f}", f"{r.eot_draws}"]
            if paired:
                row.append(f"{r.p_vs_first:.3g}" + (" within noise" if r.p_vs_first >= NOISE_P else ""))
            t.add_row(*row)
        console.print(t)
        console.print(f"{name}: clean accuracy 95% CI [{100 * g['clean_low'].iloc[0]:.1f}, "
                      f"{100 * g['clean_high'].iloc[0]:.1f}] %, n={n}")
        if paired:
            ref = table[table["target"] == target_names[0]]
            for r, e0 in zip(g.itertuples(), ref["error_rate"]):
                console.print(f"{name} vs {target_names[0]}, {r.source} eps {r.eps:g} delay {r.delay_ms:g} ms: "
                              f"error {100 * r.error_rate:.1f} % vs {100 * e0:.1f} %, exact McNemar p = "
                              f"{r.p_vs_first:.3g}" + (" (within noise)" if r.p_vs_first >= NOISE_P else ""))
