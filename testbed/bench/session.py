"""Session benchmark: store overhead per trial and offline replay speed, on the simulated rig.

- ``store_overhead_pct``: time spent committing a trial (FLAC encoding, fsyncs, the SQLite
  transaction) as a percentage of the trial's recorded audio duration (target <= 5 %).
- ``replay_x_realtime``: seconds of recorded audio evaluated per wall-clock second, per
  model (LM architecture; target >= 100x).

The models are untrained LM networks of the zoo's format (same compute as trained ones);
the commands are tones, so the benchmark needs neither a corpus nor a trained zoo.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

KWS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]

PLAN = """
name = "bench"
seed = 0
[utterances]
labels = ["yes", "no"]
per_label = {per_label}
[[attacks]]
kind = "none"
[[attacks]]
kind = "fgsm"
eps = [0.01]
source_model = "lm-fp32"
[sweep]
delay_ms = {delays}
placements = ["P1", "P2"]
mics = ["ref", "cheap"]
[evaluate]
models = ["lm-fp32", "lm-lowrank", "lm-int8"]
"""


def _zoo(root: Path) -> None:
    import torch

    from testbed.models import Zoo, build_model

    zoo = Zoo(root)
    for i, name in enumerate(("lm-fp32", "lm-lowrank", "lm-int8")):
        torch.manual_seed(i)
        zoo.save(name, build_model("lm", KWS), {"arch": "lm", "variant": name.split("-")[1], "labels": KWS,
                                                 "sample_rate": 16000, "clip_samples": 16000})


def _tones(labels: list[str], per_label: int) -> list[tuple[str, str, np.ndarray, dict]]:
    t = np.arange(16000) / 16000
    return [(f"{lab}-{i}", lab, (0.3 * np.sin(2 * np.pi * (250 + 90 * k + 37 * i) * t) * np.hanning(16000))
             .astype(np.float32), {}) for k, lab in enumerate(labels) for i in range(per_label)]


def run(quick: bool = False) -> dict:
    """Run a sim session (200 trials x 2 mics x 3 models; 20 when ``quick``) and replay it."""
    import torch

    from testbed.session import Runner, create_session, open_runner_parts, replay_session
    from testbed.workspace import assets_dir

    torch.set_num_threads(1)
    per_label, delays = (1, [0, 100, 250, 400, 500]) if quick else (5, [0, 100, 250, 400, 500])
    with tempfile.TemporaryDirectory(prefix="bench-session-") as tmp:
        tmp = Path(tmp)
        _zoo(tmp / "zoo")
        plan = tmp / "plan.toml"
        plan.write_text(PLAN.format(per_label=per_label, delays=delays))
        rig = assets_dir() / "rigs" / "office-sim.toml"
        store = create_session(plan, rig, root=tmp / "sessions", models_root=tmp / "zoo",
                               utterances=_tones(["yes", "no"], per_label))
        r, p, models, cal = open_runner_parts(store)
        t0 = time.perf_counter()
        result = Runner(store, r, p, models, calibration=cal).run()
        wall = time.perf_counter() - t0
        stats = result.stats
        n = stats.committed_this_run
        store.close()
        t0 = time.perf_counter()
        rep = replay_session(store.path, ["lm-fp32"], models_root=tmp / "zoo")
        replay_wall = time.perf_counter() - t0
    return {
        "trials": n,
        "mics": 2,
        "models": 3,
        "audio_s_per_trial": round(stats.audio_s / n, 4),
        "store_s_per_trial": round(stats.store_s / n, 5),
        "store_overhead_pct": round(100 * stats.store_s / stats.audio_s, 3),
        "store_overhead_target_pct": 5.0,
        "trial_wall_s": round(wall / n, 4),
        "session_x_realtime": round(stats.audio_s / wall, 3),
        "replay_audio_s": round(rep.audio_s, 2),
        "replay_wall_s": round(replay_wall, 3),
        "replay_x_realtime": round(rep.audio_s / replay_wall, 1),
        "replay_target_x_realtime": 100.0,
    }
