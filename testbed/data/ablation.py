"""Sim-to-real ablation: real-speech accuracy of one architecture trained on corpus variants.

Each variant changes one thing of the default corpus (engines, or one transform off); every
variant trains the same architecture with the same steps and seed, then is measured on its own
synthetic test split and on a folder of real recordings (e.g. ``../shared/data/real-dev``).
The real clips are only ever evaluated, never trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from testbed.data.corpus import CorpusConfig
from testbed.data.transforms import TRANSFORM_ORDER
from testbed.errors import DataError


def ablation_variants(base: CorpusConfig | None = None) -> dict[str, CorpusConfig]:
    """Variant name -> corpus config: ``multi-engine`` (the default), ``espeak-only`` and
    ``no-<transform>`` for each enabled transform."""
    base = base or CorpusConfig()
    out = {"multi-engine": base, "espeak-only": base.model_copy(update={"engines": {"espeak": 1.0}})}
    for t in TRANSFORM_ORDER:
        if t in base.transforms:
            out[f"no-{t}"] = base.without(t)
    return out


def run_ablation(real: str, *, arch: str = "lm", steps: int = 1500, quick: bool = False, seed: int = 0,
                 variants: list[str] | None = None, cache_dir: Path | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Train ``arch`` on each corpus variant and measure it on real speech.

    Parameters
    ----------
    real : a dataset spec of real recordings, e.g. ``folder:../shared/data/real-dev`` (all its clips are used)
    arch : model architecture (``testbed.models.ARCHS``)
    steps : training steps per variant (the same for all)
    quick : small corpora (40 clips per class) and at most 200 steps, for smoke runs
    seed : corpus, split and training seed
    variants : names from :func:`ablation_variants` (default: all)
    progress : called as ``progress(variant, done, total)`` during corpus build and training

    Returns
    -------
    ``{"arch", "steps", "real", "n_real", "rows": [{"variant", "engines", "transforms",
    "synthetic_test_acc", "real_acc", "real_keyword_acc", "real_per_class": {label: acc}}, ...]}``
    """
    import torch

    from testbed.data.dataset import load_dataset
    from testbed.models import build_model, predict, train

    all_variants = ablation_variants(CorpusConfig.quick(seed=seed) if quick else CorpusConfig(seed=seed))
    names = variants or list(all_variants)
    unknown = [n for n in names if n not in all_variants]
    if unknown:
        raise DataError(f"--variants: unknown ablation variant {', '.join(unknown)} (have: {', '.join(all_variants)})")
    steps = min(steps, 200) if quick else steps
    real_ds = load_dataset(real, seed=seed)
    real_split = real_ds.all()
    rows = []
    for name in names:
        cfg = all_variants[name]
        cb = (lambda d, t, n=name: progress(n, d, t)) if progress else None
        ds = load_dataset("synthetic", config=cfg, cache_dir=cache_dir, progress=cb)
        torch.manual_seed(seed)
        model = build_model(arch, ds.labels)
        res = train(model, ds, steps=steps, seed=seed,
                    progress=(lambda d, t, n=name: progress(n, d, t)) if progress else None)
        model.eval()
        # map the real set's label indices onto the model's labels by name
        y_real = np.array([ds.labels.index(real_ds.labels[k]) if real_ds.labels[k] in ds.labels else -1
                           for k in real_split.y])
        pred, _ = predict(model, real_split.x)
        kw = np.isin(y_real, [ds.labels.index(w) for w in ds.labels[:10]])
        per_class = {lab: float(np.mean(pred[y_real == i] == i)) for i, lab in enumerate(ds.labels)
                     if np.any(y_real == i)}
        test_pred, _ = predict(model, ds.test.x)
        rows.append({
            "variant": name,
            "engines": sorted(cfg.engines),
            "transforms": list(cfg.transforms),
            "synthetic_test_acc": round(float(np.mean(test_pred == ds.test.y)), 4),
            "real_acc": round(float(np.mean(pred == y_real)), 4),
            "real_keyword_acc": round(float(np.mean(pred[kw] == y_real[kw])), 4) if kw.any() else None,
            "real_per_class": {k: round(v, 3) for k, v in per_class.items()},
            "train_seconds": res.get("seconds") if isinstance(res, dict) else None,
        })
    return {"arch": arch, "steps": steps, "seed": seed, "real": real, "n_real": int(len(real_split.y)), "rows": rows}
