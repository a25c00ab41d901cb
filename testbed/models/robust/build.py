"""Training the robust variants from an architecture's trained fp32 model, and rebuilding them.

Every robust variant starts from the same trained fp32 model and is fine-tuned through
:func:`testbed.models.train.train` with its own loss (``loss_fn``) for the same number of
steps, keeping the final state (the clean-accuracy checkpoint rule would favour the least
robust early steps).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from testbed.errors import ModelError
from testbed.models.cards import make_card, split_metrics
from testbed.models.robust.losses import (
    AdversarialExamples,
    adversarial_training_loss,
    distillation_loss,
    noisy_ce_loss,
    slr_loss,
    temperature_ce_loss,
)
from testbed.models.robust.rse import make_rse, restructure_rse
from testbed.models.robust.slr import make_slr, restructure_slr
from testbed.models.robust.variants import ROBUST_STEPS, SLR_WARMUP_STEPS, RobustConfig, robust_kind
from testbed.models.train import train

Progress = Callable[[int, int], None]


def _fit(model: nn.Module, dataset: Any, steps: int, config: RobustConfig, *, batch_size: int, seed: int,
         loss_fn, augment, progress: Progress | None) -> dict:
    hist = train(model, dataset, steps=steps, batch_size=batch_size, lr=config.lr, seed=seed,
                 eval_every=steps, progress=progress, loss_fn=loss_fn, augment=augment, patience=steps,
                 lr_schedule=config.lr_schedule)
    return {"steps": steps, "steps_run": hist["steps_run"], "seconds": hist["seconds"],
            "lr": config.lr, "lr_schedule": config.lr_schedule,
            "val_accuracy_end": hist["val_accuracy"], "checkpoint": "final"}


def train_robust(base: nn.Module, variant: str, dataset: Any, *, config: RobustConfig | None = None,
                 quick: bool = False, seed: int = 0, batch_size: int = 64, augment=None,
                 calib_x: np.ndarray | None = None, progress: Progress | None = None) -> tuple[nn.Module, dict, dict]:
    """Make and fine-tune robust ``variant`` from a trained fp32 model (left untouched).

    Parameters
    ----------
    base : nn.Module
        The architecture's trained fp32 KwsModel.
    variant : str
        One of :data:`~testbed.models.robust.variants.ROBUST_VARIANTS`.
    dataset : testbed.data.Dataset
        Training data (``train`` for updates).
    config : RobustConfig, optional
        Hyper-parameters (default: :class:`RobustConfig`).
    quick : bool
        Short fine-tuning (tests, demo) when ``config.steps`` is not set.
    seed : int
        Seeds fine-tuning, the training attacks and the ensemble's noise generator.
    batch_size : int
        Clips per update.
    augment : callable, optional
        Waveform augmentation for training batches.
    calib_x : ndarray (n, samples), optional
        Sample clips (RSE measures its layers' input scales on them; default: 64 training clips).
    progress : callable(done, total), optional

    Returns
    -------
    (model, compression, robust) where ``compression`` is the card's compression entry
    (``kind`` slr / rse, or none for the deterministic baselines) and ``robust`` the card's
    ``robust`` entry (kind, settings, training facts).
    """
    config = config or RobustConfig()
    kind, members = robust_kind(variant)
    steps = config.steps if config.steps is not None else ROBUST_STEPS["quick" if quick else "full"]
    if steps < 1:
        raise ModelError(f"robust variant {variant}: steps must be >= 1, got {steps}")
    model = copy.deepcopy(base)
    fit = dict(batch_size=batch_size, augment=augment, progress=progress)
    adversary = AdversarialExamples(config.adv_kind, config.adv_eps, config.adv_steps,
                                    eps_range=config.adv_eps_range, seed=seed)
    robust: dict = {"kind": kind, "variant": variant, "settings": config.as_dict()}
    if kind == "slr":
        n_train = config.train_members or min(int(members), 2)
        model, compression = make_slr(model, members, sigma_rel=config.sigma_rel, mu_rel=config.mu_rel,
                                      seed=seed)
        warm = config.warmup_steps if config.warmup_steps is not None else SLR_WARMUP_STEPS["quick" if quick else "full"]
        if warm > 0:
            clean = config.alpha + config.beta
            loss = slr_loss(config.alpha / clean, config.beta / clean, 0.0, n_members=n_train)
            robust["warmup"] = dict(_fit(model, dataset, warm, config, seed=seed + 4, loss_fn=loss, **fit),
                                    loss="alpha*CE(ensemble) + beta*consistency, renormalised (no adversarial term)")
        loss = slr_loss(config.alpha, config.beta, config.gamma, n_members=n_train, adversary=adversary)
        robust["training"] = _fit(model, dataset, steps, config, seed=seed + 2, loss_fn=loss, **fit)
        robust.update(train_members=n_train, loss="alpha*CE(ensemble) + beta*consistency (eq. 4) + "
                      "gamma*KL(ensemble(x) || ensemble(x+delta)) (eq. 6)", adversary=adversary.describe())
        compression["train_members"] = n_train
    elif kind == "rse":
        if calib_x is None:
            calib_x = dataset.train.x[np.sort(np.random.default_rng(seed).choice(
                len(dataset.train.y), min(64, len(dataset.train.y)), replace=False))]
        model, compression = make_rse(model, calib_x, members, sigma_init_rel=config.rse_sigma_init_rel,
                                      sigma_inner_rel=config.rse_sigma_inner_rel, seed=seed)
        robust["training"] = _fit(model, dataset, steps, config, seed=seed + 2, loss_fn=noisy_ce_loss(1), **fit)
        robust["loss"] = "cross entropy of one noisy pass per clip (Liu et al.)"
    elif kind == "advtrain":
        loss = adversarial_training_loss(adversary, config.adv_weight)
        robust["training"] = _fit(model, dataset, steps, config, seed=seed + 2, loss_fn=loss, **fit)
        robust.update(loss=f"(1 - w) CE(x) + w CE(x + delta), w = {config.adv_weight}",
                      adversary=adversary.describe())
        compression = {"kind": "none"}
    elif kind == "distill":
        t = float(config.temperature)
        teacher = copy.deepcopy(base)
        half = max(1, steps // 2)
        teacher_info = _fit(teacher, dataset, half, config, seed=seed + 2, loss_fn=temperature_ce_loss(t), **fit)
        student_info = _fit(model, dataset, max(1, steps - half), config, seed=seed + 3,
                            loss_fn=distillation_loss(teacher, t), **fit)
        robust.update(temperature=t, training={"teacher": teacher_info, "student": student_info},
                      loss="teacher: CE(softmax(z / T)); student: soft CE against softmax(teacher / T) at T; "
                           "predicts at T = 1", initialisation="teacher and student from the fp32 model")
        compression = {"kind": "none"}
    elif kind == "smooth":
        from functools import partial

        from testbed.models.robust.smooth import train_smooth

        model, compression, smooth = train_smooth(
            base, dataset, sigma=config.smooth_sigma, n_members=int(members), steps=steps, seed=seed, augment=augment,
            loss_fn=None, fit=partial(_fit, config=config, batch_size=batch_size, progress=progress))
        robust.update(smooth)
    else:   # pragma: no cover - ROBUST_VARIANTS and this dispatch are kept together
        raise ModelError(f"robust variant {variant}: no recipe for kind {kind!r}")
    model.eval()
    if getattr(model, "stochastic", False):
        model.reseed(int(compression["seed"]))
    return model, compression, robust


def _train_subset(dataset: Any, n_max: int, seed: int) -> Any:
    """``dataset`` with at most ``n_max`` training clips (a seeded choice), for the card's train accuracy.

    An ensemble answers with all its members, so measuring it on thousands of training clips
    would cost more than its fine-tuning; val and test are kept whole.
    """
    tr = dataset.train
    if len(tr.y) <= n_max or not dataclasses.is_dataclass(dataset):
        return dataset
    idx = np.sort(np.random.default_rng(seed).choice(len(tr.y), n_max, replace=False))
    meta = [tr.meta[i] for i in idx] if len(tr.meta) == len(tr.y) else []
    return dataclasses.replace(dataset, train=dataclasses.replace(tr, x=tr.x[idx], y=np.asarray(tr.y)[idx], meta=meta))


def restructure_robust(model: nn.Module, compression: dict) -> nn.Module:
    """Give a freshly built model a robust card's structure (``kind`` slr or rse); weights come after."""
    kind = compression.get("kind")
    if kind == "slr":
        return restructure_slr(model, compression)
    if kind == "rse":
        return restructure_rse(model, compression)
    if kind == "smooth":
        from testbed.models.robust.smooth import restructure_smooth

        return restructure_smooth(model, compression)
    raise ModelError(f"model card: unknown robust compression kind {kind!r}")


def build_robust_variant(base: nn.Module, arch: str, variant: str, dataset: Any, *, zoo, quick: bool,
                         seed: int, data_seed: int, training: dict, fp32_metrics: dict,
                         batch_size: int = 64, augment=None, calib_x: np.ndarray | None = None,
                         config: RobustConfig | None = None, steps: int | None = None,
                         progress: Callable[[str, int, int], None] | None = None) -> str:
    """Train robust ``variant`` of ``arch`` and save it to ``zoo`` as ``<arch>-<variant>``.

    Called by :func:`testbed.models.build.build_zoo` for robust variants; ``training`` and
    ``fp32_metrics`` describe the fp32 model it starts from; ``steps`` (e.g. ``models build
    --finetune-steps``) overrides the fine-tuning steps of ``config``.

    Returns
    -------
    str : the name written.
    """
    name = f"{arch}-{variant}"
    config = config or RobustConfig()
    if steps is not None:
        config = config.with_(steps=steps)

    def tprogress(done: int, total: int) -> None:
        if progress:
            progress(f"train {name}", done, total)

    model, compression, robust = train_robust(base, variant, dataset, config=config, quick=quick, seed=seed,
                                              batch_size=batch_size, augment=augment, calib_x=calib_x,
                                              progress=tprogress)
    metrics = split_metrics(model, _train_subset(dataset, 500, seed))
    metrics["fp32_test_accuracy"] = fp32_metrics["test_accuracy"]
    if getattr(model, "stochastic", False):
        model.reseed(int(compression["seed"]))
    card = make_card(model, arch, variant, dataset, quick=quick, seed=seed, data_seed=data_seed,
                     training=dict(training, fine_tune=robust.get("training"),
                                   **({"warmup": robust["warmup"]} if "warmup" in robust else {})),
                     metrics=metrics, compression=compression)
    card["robust"] = robust
    if getattr(model, "stochastic", False):
        card["n_members"] = int(model.n_members)
    zoo.save(name, model, card)
    if progress:
        progress(f"saved {name}", 1, 1)
    return name
