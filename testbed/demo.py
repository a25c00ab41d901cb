"""The demo: the whole story on the simulated office rig.

Builds a demo zoo if it is missing, runs a small session (clean, FGSM, PGD and over-the-air
PGD x 2 bounds x 3 sync delays x 2 placements x 2 mic tiers), replays it through one more
model, analyses it and returns the findings and the report's path. The CLI only prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Zoo variants of the LM architecture the demo needs: the live DUT models, the replay model
#: (int4) and the paper's stochastic low-rank ensemble (slr8), live and replayed as ensemble-size views.
VARIANTS = ("fp32", "lowrank", "int8", "int4", "slr8")
FAST_VARIANTS = ("fp32", "lowrank", "int8", "slr8")
#: members drawn when the demo replays the DUT-mic captures through lm-slr8 (paper Fig. 8)
ENSEMBLE_SIZES = (1, 2, 4, 8)
FAST_ENSEMBLE_SIZES = (1, 2)

#: The full demo's zoo: a corpus between --quick and the default size and a training budget
#: that fits the 10-minute demo on 2 cores with room to spare (1500 + 300 steps took the whole
#: demo to 9 min 41 s on a fresh machine: corpus 28 s, fp32 309 s, lowrank 82 s, slr8 100 s).
#: The --quick corpus (40 clips per class) leaves the
#: models near 45% clean accuracy, and then every condition errs and nothing can be compared.
DEMO_CORPUS_PER_CLASS = 200
DEMO_STEPS = 1200
DEMO_FINETUNE_STEPS = 200
#: the SLR ensemble's fine-tuning: warm-up steps on the noisy members (CE + consistency, about
#: twice an fp32 step), then steps of the full loss, each crafting PGD examples against two
#: members (about 8 fp32 steps): a short version of `models build`'s 1000 + 400
DEMO_SLR_WARMUP_STEPS = 150
DEMO_ROBUST_STEPS = 20
#: --fast (the test suite): the quick corpus and a token budget.
FAST_TRAINING = {"steps": 80, "finetune_steps": 20, "batch_size": 32}

#: ``progress(stage, done, total)``: stage is one of zoo, craft, trials, replay, analysis.
DemoProgress = Callable[[str, int, int | None], None]


@dataclass
class DemoResult:
    """What the demo produced, with wall times in seconds per stage."""

    session_id: str
    session_dir: Path
    run_reason: str
    live_models: list[str]
    replay_model: str
    report_html: Path
    summary_json: Path
    findings: list[dict]
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"session": self.session_id, "session_dir": str(self.session_dir), "run": self.run_reason,
                "live_models": self.live_models, "replay_model": self.replay_model,
                "report": str(self.report_html), "summary": str(self.summary_json),
                "findings": self.findings, "timings": self.timings}


def demo_plan(fast: bool, live_models: list[str], seed: int = 1) -> dict:
    """The demo's plan as a TOML-ready mapping (see DESIGN.md, "Plan file")."""
    if fast:
        labels, per_label, eps, steps, ota_steps, delays = ["yes", "no"], 1, [0.05], 3, 2, [0, 100]
    else:
        labels = ["yes", "no", "up", "down", "left", "right"]
        per_label, eps, steps, ota_steps, delays = 2, [0.01, 0.05], 20, 10, [0, 100, 250]
    src = "lm-fp32"
    return {
        "name": "demo-fast" if fast else "demo",
        "seed": seed,
        "repetitions": 1,
        "description": "testbed demo: clean vs FGSM vs PGD vs over-the-air PGD on the simulated office",
        "utterances": {"source": "synthetic", "labels": labels, "per_label": per_label},
        "attacks": [
            {"kind": "none"},
            {"kind": "fgsm", "eps": eps, "source_model": src},
            {"kind": "pgd", "eps": eps, "steps": steps, "source_model": src},
            {"kind": "pgd", "eps": eps, "steps": ota_steps, "source_model": src, "over_the_air": True},
        ],
        "sweep": {"delay_ms": delays, "delay_reference": "playback", "placements": ["P1", "P2"],
                  "mics": ["ref", "cheap"]},
        "evaluate": {"models": live_models},
        "timing": {"preroll_s": 0.1, "tail_s": 0.2},
    }


def ensure_demo_zoo(models_root: Path, fast: bool, progress: DemoProgress | None = None) -> list[str]:
    """Train the demo's LM variants into ``models_root`` unless all are there; returns their names."""
    from testbed.data import CorpusConfig, load_dataset
    from testbed.models import Zoo, build_zoo
    from testbed.models.robust import RobustConfig

    variants = FAST_VARIANTS if fast else VARIANTS
    names = [f"lm-{v}" for v in variants]
    zoo = Zoo(models_root)
    if all(zoo.exists(n) for n in names):
        return names

    def on_build(desc: str, done: int, total: int) -> None:
        if progress:
            progress(f"zoo: {desc}", done, total)

    if fast:
        build_zoo(["lm"], list(variants), data="synthetic", quick=True, root=models_root, seed=0,
                  progress=on_build, **FAST_TRAINING)
    else:
        if progress:
            progress("zoo: synthesising the demo corpus", 0, None)
        dataset = load_dataset("synthetic", config=CorpusConfig(per_class=DEMO_CORPUS_PER_CLASS), seed=0)
        build_zoo(["lm"], list(variants), data="synthetic", root=models_root, seed=0, progress=on_build,
                  steps=DEMO_STEPS, finetune_steps=DEMO_FINETUNE_STEPS, robust_steps=DEMO_ROBUST_STEPS,
                  robust_config=RobustConfig(warmup_steps=DEMO_SLR_WARMUP_STEPS), dataset=dataset)
    return names


def run_demo(out: Path, *, fast: bool = False, models_dir: Path | None = None, seed: int = 1,
             progress: DemoProgress | None = None) -> DemoResult:
    """Zoo, session, replay, analysis on the simulated office rig, all under ``out``.

    Runs on at most 2 torch threads and puts the caller's thread count back afterwards.
    """
    import torch

    from testbed.models.threads import torch_threads

    with torch_threads(min(2, torch.get_num_threads())):
        return _run_demo(out, fast=fast, models_dir=models_dir, seed=seed, progress=progress)


def _run_demo(out: Path, *, fast: bool, models_dir: Path | None, seed: int,
              progress: DemoProgress | None) -> DemoResult:
    import tomli_w

    from testbed.analysis import build_report, load_sessions
    from testbed.session import RunEvent, Runner, create_session, open_runner_parts, replay_session
    from testbed.workspace import assets_dir

    report_progress = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rig_path = assets_dir() / "rigs" / "office-sim.toml"
    models_root = models_dir or out / "models"
    if fast:
        live, replay_model, sizes = ["lm-fp32", "lm-int8", "lm-slr8"], "lm-lowrank", FAST_ENSEMBLE_SIZES
    else:
        live, replay_model, sizes = ["lm-fp32", "lm-lowrank", "lm-int8", "lm-slr8"], "lm-int4", ENSEMBLE_SIZES

    ensure_demo_zoo(models_root, fast, progress)
    timings["zoo_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    plan_path = out / "sessions" / "plans" / f"{'demo-fast' if fast else 'demo'}.toml"
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(tomli_w.dumps(demo_plan(fast, live, seed)).encode())
    store = create_session(plan_path, rig_path, root=out / "sessions", models_root=models_root)
    with store:
        rig, plan, models, calibration = open_runner_parts(store, models_root)

        def on_event(ev: RunEvent) -> None:
            if ev.kind == "trial":
                report_progress("trials", ev.done, ev.total)
            elif ev.kind == "craft":
                report_progress("craft", ev.done, max(ev.total, 1))

        result = Runner(store, rig, plan, models, calibration=calibration, on_event=on_event).run()
        sid, spath = store.session_id, store.path
    timings["session_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    replay_session(spath, [replay_model], models_root=models_root,
                   progress=lambda d, n: report_progress("replay", d, n))
    # the ensemble-size curve: the DUT-mic captures again through lm-slr8 drawing k members
    replay_session(spath, [f"lm-slr8@k{k}" for k in sizes], mics=[rig.dut.mic],
                   models_root=models_root, progress=lambda d, n: report_progress("replay", d, n))
    timings["replay_s"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    report = build_report(load_sessions([spath]), out / "analysis" / sid, ["attack", "eps"],
                          progress=lambda d, n: report_progress("analysis", d, n))
    timings["analysis_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0
    return DemoResult(sid, spath, result.reason, live, replay_model, report.html_path,
                      report.summary_path, report.findings, timings)
