"""Sim-to-real ablation: real-speech accuracy of one architecture trained on corpus variants.

Each variant changes one thing of the default corpus (engines, or one transform off); every
variant trains the same architecture with the same recipe as ``testbed models build`` (steps,
learning-rate schedule, waveform augmentation, seed), then is measured on its own synthetic
test split and on a folder of real recordings (e.g. ``../shared/data/real-dev``). The real
clips are only ever evaluated, never trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from testbed.data.corpus import CorpusConfig
from testbed.data.dataset import load_dataset
from testbed.data.labels import KEYWORDS
from testbed.data.transforms import TRANSFORM_ORDER
from testbed.errors import DataError
from testbed.models.archs import build_model
from testbed.models.build import train_fp32
from testbed.models.predict import predict

#: clips per class and training steps of ``quick`` ablations (smoke runs and tests)
QUICK_PER_CLASS = 40
QUICK_MAX_STEPS = 200


def ablation_variants(base: CorpusConfig | None = None) -> dict[str, CorpusConfig]:
    """Variant name -> corpus config: ``multi-engine`` (the default), ``espeak-only`` and
    ``no-<transform>`` for each enabled transform."""
    base = base or CorpusConfig()
    out = {"multi-engine": base, "espeak-only": base.model_copy(update={"engines": {"espeak": 1.0}})}
    for t in TRANSFORM_ORDER:
        if t in base.transforms:
            out[f"no-{t}"] = base.without(t)
    return out


def _real_accuracy(pred: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Overall, keyword-only and per-class accuracy of predictions ``pred`` (n,) against ``y`` (n,)."""
    kw = np.isin(y, [labels.index(w) for w in KEYWORDS if w in labels])
    per_class = {lab: round(float(np.mean(pred[y == i] == i)), 3) for i, lab in enumerate(labels)
                 if np.any(y == i)}
    return {"real_acc": round(float(np.mean(pred == y)), 4),
            "real_keyword_acc": round(float(np.mean(pred[kw] == y[kw])), 4) if kw.any() else None,
            "real_per_class": per_class}


def run_ablation(real: str, *, arch: str = "lm", steps: int | None = None, quick: bool = False, seed: int = 0,
                 variants: list[str] | None = None, per_class: int | None = None, cache_dir: Path | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Train ``arch`` on each corpus variant and measure it on real speech.

    Parameters
    ----------
    real : a dataset spec of real recordings, e.g. ``folder:../shared/data/real-dev`` (all its clips are
        used; their class names must be model labels, ``unknown`` included)
    arch : model architecture (``testbed.models.ARCHS``)
    steps : training steps per variant, the same for all (default: ``testbed models build``'s for ``arch``)
    quick : small corpora (40 clips per class) and at most 200 steps, for smoke runs
    seed : corpus, split and training seed
    variants : names from :func:`ablation_variants` (default: all)
    per_class : clips per class of every variant's corpus (default: the default corpus's, or 40 when quick)
    cache_dir : corpus cache root (default env ``TESTBED_CACHE_DIR`` or ``~/.cache/ota-testbed``)
    progress : called as ``progress(what, done, total)``; ``what`` is ``"<variant> data"`` while the
        corpus is built and ``"<variant> train"`` while the model trains

    Returns
    -------
    ``{"arch", "steps", "per_class", "seed", "real", "n_real", "rows": [{"variant", "engines", "transforms",
    "synthetic_test_acc", "real_acc", "real_keyword_acc", "real_per_class": {label: acc},
    "best_step", "train_seconds"}, ...]}``

    Raises
    ------
    DataError : unknown variant, or a real class that is not a model label.
    """
    base = CorpusConfig(seed=seed)
    if quick or per_class:
        base = base.model_copy(update={"per_class": per_class or QUICK_PER_CLASS})
    all_variants = ablation_variants(base)
    names = variants or list(all_variants)
    unknown = [n for n in names if n not in all_variants]
    if unknown:
        raise DataError(f"--variants: unknown ablation variant {', '.join(unknown)} (have: {', '.join(all_variants)})")
    real_ds = load_dataset(real, seed=seed)
    real_split = real_ds.all()
    rows = []
    n_steps = steps
    for name in names:
        cfg = all_variants[name]
        data_cb = (lambda d, t, n=name: progress(f"{n} data", d, t)) if progress else None
        ds = load_dataset("synthetic", config=cfg, cache_dir=cache_dir, progress=data_cb)
        missing = [lab for lab in real_ds.labels if lab not in ds.labels]
        if missing:
            raise DataError(f"{real}: class folder {', '.join(missing)} is not a model label "
                            f"(labels: {', '.join(ds.labels)})")
        y_real = np.array([ds.labels.index(real_ds.labels[k]) for k in real_split.y], dtype=np.int64)
        torch.manual_seed(seed)
        model = build_model(arch, ds.labels, ds.sample_rate, ds.clip_samples)
        train_cb = (lambda d, t, n=name: progress(f"{n} train", d, t)) if progress else None
        res = train_fp32(model, ds, steps=steps, quick=quick, seed=seed, progress=train_cb,
                         max_steps=QUICK_MAX_STEPS if quick else None)
        n_steps = res["steps"]
        pred, _ = predict(model, real_split.x)
        test_pred = predict(model, ds.test.x)[0] if len(ds.test.y) else np.zeros(0, np.int64)
        rows.append({
            "variant": name,
            "engines": sorted(cfg.engines),
            "transforms": list(cfg.transforms),
            "synthetic_test_acc": round(float(np.mean(test_pred == ds.test.y)), 4) if len(ds.test.y) else None,
            **_real_accuracy(pred, y_real, ds.labels),
            "best_step": res["best_step"],
            "train_seconds": res["seconds"],
        })
    return {"arch": arch, "steps": n_steps, "per_class": base.per_class, "seed": seed, "real": real,
            "n_real": int(len(real_split.y)), "rows": rows}
