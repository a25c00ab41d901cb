"""Synthetic corpus build speed: 2 worker processes vs 1, and the projected default-size build time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def run(quick: bool = False) -> dict:
    """Build a small corpus twice (1 and 2 workers, fresh caches) and compare.

    Returns clips per second for each, ``speedup`` (2 workers / 1) and ``projected_default_s``, the
    default corpus (``CorpusConfig().per_class`` clips x 12 classes) at the 2-worker rate
    (target: <= 300 s on 2 cores).
    """
    from testbed.data.corpus import CorpusConfig, build_corpus

    per_class = 8 if quick else 30
    out: dict = {"clips": per_class * 12}
    for workers in (1, 2):
        cfg = CorpusConfig(per_class=per_class, seed=1000 + workers)
        with tempfile.TemporaryDirectory(prefix="testbed-bench-data-") as tmp:
            t0 = time.perf_counter()
            build_corpus(cfg, Path(tmp), workers=workers)
            out[f"clips_per_s_{workers}w"] = round(per_class * 12 / (time.perf_counter() - t0), 2)
    out["speedup"] = round(out["clips_per_s_2w"] / out["clips_per_s_1w"], 3)
    default = CorpusConfig().per_class
    out["default_clips"] = default * 12
    out["projected_default_s"] = round(default * 12 / out["clips_per_s_2w"], 1)
    return out
