"""Scale-out benchmark: crafting on ``local:2`` against in-process, and the scheduler's per-task cost.

- ``craft_speedup_local2``: wall time of crafting PGD-20 perturbations for 64 one-second clips
  on an LM model in this process (one torch thread; best of 2, alternating with the cluster
  runs so a change in machine load hits both), divided by the same on a ``local:2``
  cluster (two single-threaded worker processes; both sides warmed by one batch first, cluster
  start-up excluded and reported as ``local2_start_s``; target >= 1.6 on a 2-core machine).
  ``craft_bit_identical``: the two runs gave the same float32 bits.
- ``replay_identical``: evaluating capture windows through the cluster gives the same
  predictions and scores as in-process.
- ``per_task_overhead_ms``: round trip of one empty task (submit -> result), and
  ``per_task_pipelined_ms``: wall time per empty task when 200 are in flight.
- ``expected_perturbations_per_s_{8,64}``: what 8 and 64 such workers would craft per second,
  from the measured per-batch cost plus the per-task overhead, capped by the scheduler's rate.

The model is an untrained LM network of the zoo's format (same compute as a trained one).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

KWS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]
BATCH = 16


def _zoo(root: Path) -> None:
    import torch

    from testbed.models import Zoo, build_model

    torch.manual_seed(0)
    Zoo(root).save("lm-fp32", build_model("lm", KWS), {"arch": "lm", "variant": "fp32", "labels": KWS,
                                                       "sample_rate": 16000, "clip_samples": 16000})


def _requests(n_clips: int, steps: int, model_hash: str) -> list:
    from testbed.session.runner import CraftRequest

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    reqs = []
    for b in range(0, n_clips, BATCH):
        k = np.arange(b, min(b + BATCH, n_clips))
        x = np.stack([0.3 * np.sin(2 * np.pi * (200 + 23 * i) * t) * np.hanning(16000) for i in k]).astype(np.float32)
        x += (0.01 * rng.standard_normal(x.shape)).astype(np.float32)
        y = (k % len(KWS)).astype(np.int64)
        reqs.append(CraftRequest("pgd", 0.01, "lm-fp32", model_hash, x, y, None, {"steps": steps, "seed": 100 + b}))
    return reqs


def run(quick: bool = False) -> dict:
    """Craft 64 clips with PGD-20 (16 with PGD-5 when ``quick``) in-process and on ``local:2``."""
    import torch

    from testbed.scale import model_ref, open_executor
    from testbed.scale.tasks import noop_task, warm_task
    from testbed.session.deps import Models
    from testbed.session.runner import craft_batch, evaluate_captures

    torch.set_num_threads(1)
    n_clips, steps, reps = (32, 5, 1) if quick else (64, 20, 2)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp) / "zoo"
        _zoo(root)
        models = Models(root)
        src = models.load("lm-fp32")
        reqs = _requests(n_clips, steps, src.model_hash)

        craft_batch(src.module, reqs[0])            # first-call allocations, as on the workers below

        def in_process() -> float:
            nonlocal here
            t0 = time.perf_counter()
            here = [craft_batch(src.module, r) for r in reqs]
            return time.perf_counter() - t0

        here: list = []
        local_times = [in_process()]

        rng = np.random.default_rng(1)
        windows = {f"w{i}": ((0.1 * rng.standard_normal(24000)).astype(np.float32), 2000.0) for i in range(32)}
        evals_here = evaluate_captures(models, windows, {"lm-fp32": src}, "replay", 16000)

        t0 = time.perf_counter()
        with open_executor("local:2") as ex:
            start_s = time.perf_counter() - t0
            client = ex.client
            ref = model_ref(models, "lm-fp32")
            client.run(warm_task, ref, reqs[0])     # import torch, load the model, craft once: every worker
            cluster_times = []
            for rep in range(reps):         # alternate the two, so a load change hits both
                t0 = time.perf_counter()
                there = dict(ex.craft_requests(models, reqs))
                cluster_times.append(time.perf_counter() - t0)
                if rep + 1 < reps:
                    local_times.append(in_process())
            evals_there = next(iter(ex.evaluate(models, ["lm-fp32"], [windows], "replay", 16000)))[2]

            x = np.zeros(16, np.float32)
            rounds = []
            for _ in range(20):
                t1 = time.perf_counter()
                client.submit(noop_task, x, pure=False).result()
                rounds.append(time.perf_counter() - t1)
            t1 = time.perf_counter()
            futs = [client.submit(noop_task, x, pure=False) for _ in range(200)]
            client.gather(futs)
            pipelined_s = (time.perf_counter() - t1) / 200

    local_s, cluster_s = min(local_times), min(cluster_times)
    per_batch_s = local_s / len(reqs)
    identical = all(np.array_equal(here[i], there[i]) for i in range(len(reqs)))
    replay_same = [(e.mic, e.prediction, e.scores) for e in evals_here] == [
        (e.mic, e.prediction, e.scores) for e in evals_there]
    overhead_s = float(np.median(rounds))
    task_s = per_batch_s + overhead_s
    sched_cap = BATCH / pipelined_s      # perturbations/s when the scheduler is the limit

    def expected(n_workers: int) -> float:
        return round(min(n_workers * BATCH / task_s, sched_cap), 1)

    return {
        "clips": n_clips,
        "repetitions": reps,
        "pgd_steps": steps,
        "batch": BATCH,
        "in_process_s": round(local_s, 3),
        "local2_s": round(cluster_s, 3),
        "local2_start_s": round(start_s, 2),
        "craft_speedup_local2": round(local_s / cluster_s, 3),
        "craft_speedup_target": 1.6,
        "craft_bit_identical": bool(identical),
        "replay_identical": bool(replay_same),
        "craft_batch_s": round(per_batch_s, 4),
        "per_task_overhead_ms": round(1e3 * overhead_s, 3),
        "per_task_pipelined_ms": round(1e3 * pipelined_s, 3),
        "overhead_pct_of_batch": round(100 * overhead_s / per_batch_s, 3),
        "expected_perturbations_per_s_1": round(BATCH / per_batch_s, 2),
        "expected_perturbations_per_s_8": expected(8),
        "expected_perturbations_per_s_64": expected(64),
    }
