"""Model benchmarks: zoo build time against its budget, and compressed vs fp32 cost.

Figures are ratios against a baseline measured in the same run (fp32 inference time,
fp32 stored bytes) or against the issue's budget (10 minutes for the quick LM zoo build).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import numpy as np

#: the issue's budget for ``testbed models build --quick`` (LM fp32 + lowrank + int8), seconds
QUICK_BUILD_BUDGET_S = 600.0


def _time_per_call(fn, repeats: int) -> float:
    fn()                                   # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def run(quick: bool = False) -> dict:
    """Benchmark the models area.

    ``quick``: untrained LM and its compressed variants only (latency and size ratios).
    Otherwise also builds the quick LM zoo (fp32 + lowrank + int8, quick corpus) and reports
    its wall time against the 10-minute budget.
    """
    import torch

    from testbed.models import build_model, compress, param_count

    labels = [f"c{i}" for i in range(12)]
    rng = np.random.default_rng(0)
    x = torch.from_numpy((0.1 * rng.standard_normal((64, 16000))).astype(np.float32))
    out: dict = {"threads": torch.get_num_threads()}
    torch.manual_seed(0)
    fp32 = build_model("lm", labels).eval()
    models = {"fp32": fp32}
    for variant in ("lowrank", "int8"):
        m = copy.deepcopy(fp32)
        compress(m, variant, calib_x=x[:16].numpy())
        models[variant] = m.eval()
    repeats = 2 if quick else 5
    with torch.no_grad():
        t = {v: _time_per_call(lambda m=m: m(x), repeats) for v, m in models.items()}
        t1 = {v: _time_per_call(lambda m=m: m(x[:1]), repeats * 5) for v, m in models.items()}
    out["lm_fp32_batch64_ms"] = round(1000 * t["fp32"], 2)
    for v in ("lowrank", "int8"):
        out[f"lm_{v}_vs_fp32_time_batch64"] = round(t[v] / t["fp32"], 3)
        out[f"lm_{v}_vs_fp32_time_batch1"] = round(t1[v] / t1["fp32"], 3)
        out[f"lm_{v}_vs_fp32_params"] = round(param_count(models[v]) / param_count(fp32), 4)
    if not quick:
        from testbed.models import Zoo, build_zoo

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            names = build_zoo(["lm"], ["fp32", "lowrank", "int8"], quick=True, root=Path(tmp))
            build_s = time.perf_counter() - t0
            zoo = Zoo(tmp)
            cards = {n: zoo.card(n) for n in names}
        out["quick_build_s"] = round(build_s, 1)
        out["quick_build_vs_budget"] = round(build_s / QUICK_BUILD_BUDGET_S, 3)
        base = cards["lm-fp32"]
        for n, c in cards.items():
            out[f"{n}_test_accuracy"] = c["metrics"]["test_accuracy"]
            if n != "lm-fp32":
                out[f"{n}_vs_fp32_bytes"] = round(c["size_bytes"] / base["size_bytes"], 4)
    return out
