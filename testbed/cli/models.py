"""`testbed models ...`: build the zoo, list it, show a card, evaluate a model."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, finite_float, make_progress, parse_key_values, print_json, split_csv

app = typer.Typer(help="The model zoo: build, list, show, eval.", no_args_is_help=True)

RootOpt = typer.Option(None, "--root", envvar="TESTBED_MODELS_DIR",
                       help="zoo folder (default: env TESTBED_MODELS_DIR or ./models)")
NameArg = typer.Argument(..., help="model name, e.g. lm-int8", show_default=False)


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.3f}"


@app.command("build")
def build(
    arch: str = typer.Option("lm,ete,lms", "--arch", help="comma-separated architectures: ete, lm, lms"),
    variants: str = typer.Option("fp32,lowrank,int16,int8,int4", "--variants",
                                 help="comma-separated variants: fp32, lowrank, int16, int8, int4; robust "
                                      "(fine-tuned from fp32): slr4, slr8, distill, advtrain, rse, smooth"),
    data: str = typer.Option("synthetic", "--data",
                             help="data set: synthetic | speech-commands:PATH | folder:PATH"),
    quick: bool = typer.Option(False, "--quick", help="small corpus and short training (tests, demo)"),
    seed: int = typer.Option(0, "--seed", help="training seed"),
    steps: int = typer.Option(None, "--steps", help="fp32 training steps (default per arch)"),
    finetune_steps: int = typer.Option(None, "--finetune-steps",
                                       help="low-rank fine-tuning steps (default: a third of --steps; 0: none)"),
    rank_fraction: float = typer.Option(None, "--rank-fraction", show_default=False, callback=finite_float,
                                        help="rank kept where the paper's rank would not truncate a layer "
                                             "(default 0.75; the SLR ensemble keeps 0.75 too, at most 16 "
                                             "singular values per layer)"),
    warmup_steps: int = typer.Option(None, "--warmup-steps", min=0,
                                     help="SLR only: steps of CE + consistency (no adversarial term) before "
                                          "the robust fine-tuning (default 1000; --quick 30)"),
    robust: list[str] = typer.Option(None, "--robust", metavar="KEY=VALUE",
                                     help="robust variants' training setting, repeatable, e.g. --robust "
                                          "sigma_rel=0.3 --robust adv_eps=0.005. Names: sigma_rel, mu_rel, "
                                          "alpha, beta, gamma (SLR's loss weights, sum 1), adv_kind, adv_eps, "
                                          "adv_steps, train_members, lr, temperature, adv_weight, "
                                          "rse_sigma_init_rel, rse_sigma_inner_rel, smooth_sigma"),
    reuse_fp32: bool = typer.Option(False, "--reuse-fp32",
                                    help="start from the zoo's stored <arch>-fp32 (same data split) "
                                         "instead of training it again"),
    root: Path = RootOpt,
    json_out: bool = typer.Option(False, "--json", help="print the written cards' summary as JSON"),
) -> None:
    """Train architectures x variants and write models/<arch>-<variant>/ (weights + card).

    Example: testbed models build --arch lm --variants fp32,lowrank,int8 --quick

    Example (add the baselines to an existing zoo): testbed models build --arch lm
    --variants distill,advtrain,rse --reuse-fp32

    Example (the paper's defence, 1000 warm-up then 400 robust steps, the defaults): testbed
    models build --arch lm --variants slr8 --reuse-fp32 --warmup-steps 1000 --finetune-steps 400

    Example (a stronger adversarial term, noisier members): testbed models build --arch lm
    --variants slr8 --reuse-fp32 --robust sigma_rel=0.3 --robust alpha=0.5 --robust beta=0.2
    --robust gamma=0.3 --robust adv_eps=0.005
    """
    import torch

    from testbed.models import Zoo, build_zoo
    from testbed.models.lowrank import DEFAULT_RANK_FRACTION
    from testbed.models.robust import RobustConfig

    settings = parse_key_values(robust, "--robust", "sigma_rel=0.3")
    if warmup_steps is not None:
        settings["warmup_steps"] = warmup_steps
    robust_config = RobustConfig().with_(**settings) if settings else None   # bad values fail before training

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with make_progress() as bar:
        tasks: dict[str, int] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        names = build_zoo(split_csv(arch), split_csv(variants), data=data, quick=quick, root=root,
                          seed=seed, progress=progress, steps=steps, finetune_steps=finetune_steps,
                          rank_fraction=DEFAULT_RANK_FRACTION if rank_fraction is None else rank_fraction,
                          reuse_fp32=reuse_fp32,
                          robust_config=robust_config)
    zoo = Zoo(root)
    rows = [_summary(n, zoo.card(n)) for n in names]
    if json_out:
        print_json({"root": str(zoo.root), "models": rows})
        return
    _print_table(rows, title=f"built in {zoo.root}")


def _summary(name: str, card: dict) -> dict:
    from testbed.stats import wilson_interval

    m = card.get("metrics", {})
    acc, n_test = m.get("test_accuracy"), card.get("data", {}).get("n_test")
    ci = list(wilson_interval(round(acc * n_test), n_test)) if acc is not None and n_test else None
    return {"name": name, "arch": card.get("arch"), "variant": card.get("variant"),
            "param_count": card.get("param_count"), "size_bytes": card.get("size_bytes"),
            "size_mb": round(card.get("size_bytes", 0) / 1e6, 4),
            "paper_size_mb": card.get("paper", {}).get("size_mb"),
            "test_accuracy": acc, "test_accuracy_ci": ci, "n_test": n_test, "val_accuracy": m.get("val_accuracy"),
            "data": card.get("data", {}).get("spec"), "hash": card.get("weights_sha256")}


def _print_table(rows: list[dict], title: str) -> None:
    from rich.table import Table

    t = Table(title=title)
    for col in ("name", "params", "MB", "paper MB", "test acc [Wilson 95 %] (n)", "data", "sha256"):
        t.add_column(col, justify="left" if col in ("name", "data", "sha256") else "right")
    for r in rows:
        acc, ci = r["test_accuracy"], r["test_accuracy_ci"]
        shown = "-" if acc is None else f"{acc:.3f}" + ("" if ci is None else
                                                        f" [{ci[0]:.3f}, {ci[1]:.3f}] ({r['n_test']})")
        t.add_row(r["name"], f"{r['param_count']:,}", _mb(r["size_bytes"] or 0), str(r["paper_size_mb"]),
                  shown, str(r["data"]), str(r["hash"])[:12])
    console.print(t)


@app.command("list")
def list_(
    root: Path = RootOpt,
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """List the zoo: parameter count and size in MB beside the paper's, test accuracy, hash.

    Example: testbed models list --json
    """
    from testbed.models import Zoo

    zoo = Zoo(root)
    rows = [_summary(n, zoo.card(n)) for n in zoo.names()]
    if json_out:
        print_json({"root": str(zoo.root), "models": rows})
        return
    if not rows:
        console.print(f"no models in {zoo.root}; run: testbed models build --quick")
        return
    _print_table(rows, title=f"model zoo {zoo.root}")


@app.command("show")
def show(
    name: str = NameArg,
    root: Path = RootOpt,
    json_out: bool = typer.Option(False, "--json", help="print the whole card as JSON"),
) -> None:
    """Show a model card: data, metrics, size, layers, ranks (full vs used) or bits.

    Example: testbed models show lm-lowrank
    """
    from rich.table import Table

    from testbed.models import Zoo

    card = Zoo(root).card(name)
    if json_out:
        print_json(card)
        return
    m, d, comp = card.get("metrics", {}), card.get("data", {}), card.get("compression", {})
    console.print(f"[bold]{name}[/bold]: arch {card['arch']}, variant {card['variant']}, "
                  f"{card['param_count']:,} parameters, {card['size_bytes']:,} bytes "
                  f"(paper {card['arch'].upper()}: {card['paper']['size_mb']} MB)")
    console.print(f"layers {card.get('layers')} (paper: " + ", ".join(
        f"{k}:{card['paper'][k]}" for k in ("conv", "pool", "bn", "fc")) + ")")
    console.print(f"labels: {', '.join(card['labels'])}")
    console.print(f"preprocessing: {card['preprocessing']}")
    console.print(f"data: {d.get('spec')} (quick={d.get('quick')}, split {d.get('split_hash')}, "
                  f"train/val/test {d.get('n_train')}/{d.get('n_val')}/{d.get('n_test')})")
    console.print("accuracy: " + ", ".join(
        f"{k.removesuffix('_accuracy')} {v:.4f}" for k, v in m.items()
        if k.endswith("_accuracy") and v is not None))
    tr = card.get("training", {})
    console.print(f"training: seed {tr.get('seed')}, {tr.get('steps_run')} of {tr.get('steps')} steps, "
                  f"best at {tr.get('best_step')}, {tr.get('seconds')} s")
    console.print(f"weights sha256: {card['weights_sha256']}")
    if comp.get("kind") == "lowrank":
        console.print(f"low-rank factorisation: {comp['rule']}; rank fraction {comp['rank_fraction']}")
        t = Table()
        for col in ("layer", "matrix", "full rank", "rank used", "rule", "params", "energy"):
            t.add_column(col, no_wrap=True)
        for layer in comp["layers"]:
            t.add_row(layer["layer"], "x".join(map(str, layer["shape"])),
                      str(layer["full_rank"]), str(layer["rank"]), layer["rule"],
                      f"{layer['params_dense']}->{layer['params_lowrank']}",
                      f"{layer['energy_kept']:.3f}")
        console.print(t)
    elif comp.get("kind") == "fixed-point":
        console.print(f"dynamic fixed point, {comp['bits']} bits: {comp['scheme']}")
        t = Table()
        for col in ("layer", "bits w/in", "frac len w", "frac len in", "input max", "distinct w"):
            t.add_column(col, no_wrap=True)
        for layer in comp["layers"]:
            t.add_row(layer["layer"], f"{layer['bits']}/{layer['act_bits']}", str(layer["fl_w"]), str(layer["fl_a"]),
                      f"{layer['act_max']:.4g}", str(layer["distinct_weights"]))
        console.print(t)


@app.command("eval")
def eval_(
    name: str = NameArg,
    data: str = typer.Option(None, "--data", help="data set spec (default: the test split of the model's own data)"),
    root: Path = RootOpt,
    out: Path = typer.Option(None, "--out", "-o", help="write the confusion matrix PNG here (file or folder)"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
    certify: bool = typer.Option(False, "--certify",
                                 help="randomised-smoothing certification (Cohen et al.): certified accuracy at "
                                      "L2 radii and their L-inf eps for the clip length"),
    sigma: float = typer.Option(None, "--sigma", help="--certify: noise std, PCM scale (default: the smooth "
                                                      "model's own; required for other models)"),
    n_votes: int = typer.Option(1000, "--n", help="--certify: estimation votes per clip"),
    n0: int = typer.Option(100, "--n0", help="--certify: selection votes per clip"),
    alpha: float = typer.Option(0.001, "--alpha", help="--certify: failure probability of each certificate"),
    clips: int = typer.Option(100, "--clips", help="--certify: test clips (seeded choice)"),
    eps: str = typer.Option("0.0001,0.0002,0.0005,0.001,0.002,0.005", "--eps",
                            help="--certify: L-inf bounds to report (each as the L2 radius eps * sqrt(samples))"),
    seed: int = typer.Option(0, "--seed", help="--certify: seed of the clip choice and the noise"),
) -> None:
    """Evaluate a model: accuracy, per-class accuracy, confusion matrix, each rate with its
    Wilson 95 % interval.

    A folder: data set whose classes are a subset of the model's labels is evaluated on
    those classes (every clip, since it was not used for training).

    --certify certifies the smoothed classifier instead (lm-smooth, or any model smoothed
    with --sigma): n0 votes choose the class, n votes bound its probability from below
    (Clopper-Pearson, 1 - alpha), radius R = sigma * Phi^-1(pA_lower), abstain when
    pA_lower <= 0.5. An L-inf ball of radius eps lies inside the L2 ball of radius
    eps * sqrt(N), so a certified L2 radius R covers L-inf eps = R / sqrt(N) (N = 16000: R / 126.5).

    Example: testbed models eval lm-fp32 --data folder:/work/shared/data/real-dev --json

    Example: testbed models eval lm-smooth --certify --clips 100 --n 1000
    """
    import torch

    from testbed.models import evaluate_on, save_confusion_png

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if certify:
        from testbed.cli.certify import certify_command

        certify_command(name, data, root, sigma=sigma, n=n_votes, n0=n0, alpha=alpha, clips=clips, eps=eps,
                        seed=seed, json_out=json_out)
        return
    with make_progress(transient=True) as bar:
        task = bar.add_task(f"eval {name}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = evaluate_on(name, data, root=root, progress=progress)
    _add_intervals(result)
    if out is not None:
        path = out / f"{name}-confusion.png" if out.is_dir() or out.suffix == "" else out
        path.parent.mkdir(parents=True, exist_ok=True)
        save_confusion_png(result, path, title=f"{name} on {result['data']} "
                           f"({result['split']}): accuracy {result['accuracy']:.3f}")
        result["confusion_png"] = str(path)
    if json_out:
        print_json(result)
        return
    lo, hi = result["accuracy_ci"]
    elo, ehi = result["error_ci"]
    console.print(f"[bold]{name}[/bold] on {result['data']} ({result['split']}, n={result['n']}): "
                  f"accuracy {result['accuracy']:.4f} [{lo:.4f}, {hi:.4f}], "
                  f"error {result['error']:.4f} [{elo:.4f}, {ehi:.4f}] (Wilson 95 %)")
    for label, pc in result["per_class"].items():
        plo, phi = pc["accuracy_ci"]
        console.print(f"  {label:>8}: {pc['accuracy']:.3f} [{plo:.3f}, {phi:.3f}] (n={pc['n']})")
    if out is not None:
        console.print(f"wrote {result['confusion_png']}")


def _add_intervals(result: dict) -> None:
    """Add Wilson 95 % intervals to an evaluation result, in place.

    Adds ``correct``, ``accuracy_ci``, ``error``, ``error_ci`` and ``conf`` at the top level and
    ``correct`` + ``accuracy_ci`` per class; counts come from the confusion matrix.
    """
    from testbed.stats import wilson_interval

    cols = result["predicted_labels"]
    diag = {cls: int(row[cols.index(cls)]) for cls, row in zip(result["classes"], result["confusion"])}
    n, k = int(result["n"]), sum(diag.values())
    lo, hi = wilson_interval(k, n)
    result.update(correct=k, accuracy_ci=[lo, hi], error=round(1.0 - k / n, 5), error_ci=[1.0 - hi, 1.0 - lo],
                  conf=0.95)
    for cls, pc in result["per_class"].items():
        pc["correct"] = diag[cls]
        pc["accuracy_ci"] = list(wilson_interval(diag[cls], int(pc["n"])))


@app.command("ablate")
def ablate(
    arch: str = typer.Option("lm", "--arch", help="architecture to train on every corpus variant: ete, lm, lms"),
    steps: int = typer.Option(None, "--steps", help="training steps per variant, the same for all "
                                                     "(default: models build's for --arch)"),
    per_class: int = typer.Option(None, "--per-class", min=1,
                                  help="clips per class of every variant's corpus (default: the default corpus's)"),
    variants: str = typer.Option(None, "--variants",
                                 help="comma-separated variants (default: all): multi-engine, espeak-only, "
                                      "no-speed, no-pitch, no-formant, no-loudness, no-eq, no-reverb, no-onset, "
                                      "no-noise"),
    real: str = typer.Option("folder:../shared/data/real-dev", "--real", envvar="TESTBED_REAL_DEV",
                             help="real recordings to measure on (only evaluated, never trained on)"),
    quick: bool = typer.Option(False, "--quick", help="40 clips per class and at most 200 steps (smoke run)"),
    seed: int = typer.Option(0, "--seed", help="corpus, split and training seed"),
    json_out: bool = typer.Option(False, "--json", help="print the ablation table as JSON"),
) -> None:
    """Sim-to-real ablation: train one architecture per corpus variant, measure it on real speech.

    Variants: the default multi-engine corpus, espeak-ng only, and each randomisation turned
    off; same model, steps and seed for every row.

    Example: testbed models ablate --arch lm --per-class 100 --steps 600 --real folder:../shared/data/real-dev --json
    """
    import torch

    from testbed.models.ablation import run_ablation

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with make_progress(transient=json_out) as bar:
        tasks: dict[str, int] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        result = run_ablation(real, arch=arch, steps=steps, quick=quick, seed=seed,
                              variants=split_csv(variants) or None, per_class=per_class, progress=progress)
    if json_out:
        print_json(result)
        return
    from rich.table import Table

    t = Table(title=f"{result['arch']} x corpus variants: {result['per_class']} clips/class, {result['steps']} steps, "
                    f"real = {result['real']} (n={result['n_real']})")
    for col in ("variant", "synthetic test", "real [Wilson 95 %]", "real keywords", "real unknown"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    from testbed.stats import wilson_interval

    n_real = int(result["n_real"])
    for r in result["rows"]:
        unk = r["real_per_class"].get("unknown")
        lo, hi = wilson_interval(round(r["real_acc"] * n_real), n_real)
        t.add_row(r["variant"], f"{r['synthetic_test_acc']:.3f}", f"{r['real_acc']:.3f} [{lo:.3f}, {hi:.3f}]",
                  "-" if r["real_keyword_acc"] is None else f"{r['real_keyword_acc']:.3f}",
                  "-" if unk is None else f"{unk:.3f}")
    console.print(t)


from testbed.cli.ensemble import ensemble_curve  # noqa: E402  (robust models, engineer R)

app.command("ensemble-curve")(ensemble_curve)
