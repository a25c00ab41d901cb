"""Fixtures for the session tests: a hand-made store (no models needed) and plan files in tmp_path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from testbed.session.store import CaptureRecord, EvalRecord, SessionStore, TrialRecord
from testbed.session.trials import AttackConfig, TrialSpec

SR = 16000
LABELS = ["yes", "no"]


def make_record(trial_id: int, rng: np.random.Generator, mics=("ref", "cheap"), n: int = 8000) -> TrialRecord:
    """A trial with noise captures of ``n`` samples and one live evaluation per mic."""
    caps = [CaptureRecord(mic=m, signal=(0.1 * rng.standard_normal(n)).astype(np.float32), spr_db=20.0,
                          snr_db=30.0, dist_user_m=1.5, dist_adv_m=1.2) for m in mics]
    evals = [EvalRecord(mic=m, model="lm-fp32", model_hash="abc", eval_source="live", prediction="yes",
                        score_top=0.9, scores={"yes": 0.9, "no": 0.1}) for m in mics]
    played = {"user": ((0.2 * rng.standard_normal(n)).astype(np.float32), 1600.0)}
    return TrialRecord(trial_id=trial_id, captures=caps, evaluations=evals, played=played, xruns=0,
                       facts={"record_s": n / SR, "command_start_samples": {m: 0.0 for m in mics}})


@pytest.fixture
def hand_store(tmp_path) -> SessionStore:
    """A session of 4 planned trials (yes/no x none/fgsm) with nothing committed yet."""
    attacks = [AttackConfig("none", "none", 0.0, "untargeted", None, False, {}),
               AttackConfig("fgsm-0.01-untargeted-lm-fp32", "fgsm", 0.01, "untargeted", "lm-fp32", False, {})]
    utts = [(f"{lab}-0", lab, np.zeros(SR, np.float32), {}) for lab in LABELS]
    planned = [TrialSpec(i, f"{lab}-0", lab, a.attack_id, 0.0, "P1", 0)
               for i, (lab, a) in enumerate((lab, a) for lab in LABELS for a in attacks)]
    meta = {"session_id": "hand", "plan_name": "hand", "rig_name": "office-sim", "sample_rate": SR,
            "dut_mic": "cheap", "rig": {"mics": {"ref": {"tier": "reference"}, "cheap": {"tier": "electret-cheap"}},
                                        "speakers": {"user": {"role": "user"}}}}
    store = SessionStore.create(tmp_path / "sessions" / "hand", meta=meta, files={"plan.toml": b"name='hand'\n"},
                                attacks=attacks, utterances=utts, planned=planned, sample_rate=SR)
    yield store
    store.close()


def one_line_exit_2(r, *needles: str) -> str:
    """Assert a CLI result is exit status 2 with one line of output, no traceback, holding every
    one of ``needles``; return the output."""
    out = r.output
    assert r.exit_code == 2, out
    assert "Traceback" not in out
    assert len([ln for ln in out.strip().splitlines() if ln.strip()]) == 1, out
    for n in needles:
        assert n in out, (n, out)
    return out


def tree_hashes(folder: Path, pattern: str = "audio/**/*.flac") -> dict[str, str]:
    """sha256 of every file matching ``pattern`` under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern)) if p.is_file()}


KWS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    """A zoo of untrained (seeded) lm-fp32, lm-lowrank and lm-int8 models: real Zoo files, instant to make.

    Their predictions are arbitrary but deterministic, which is all the store and runner tests need.
    """
    import torch

    from testbed.models import Zoo, build_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-zoo")
    zoo = Zoo(root)
    for i, name in enumerate(("lm-fp32", "lm-lowrank", "lm-int8")):
        torch.manual_seed(i)
        zoo.save(name, build_model("lm", KWS), {"arch": "lm", "variant": name.split("-")[1], "labels": KWS,
                                                 "sample_rate": SR, "clip_samples": SR})
    return root


def tone_utterances(labels, per_label: int = 1, n: int = SR) -> list[tuple[str, str, np.ndarray, dict]]:
    """One windowed tone per (label, index): distinct, deterministic stand-ins for spoken commands."""
    t = np.arange(n) / SR
    out = []
    for lab in labels:
        for i in range(per_label):
            f = 250.0 + 90.0 * KWS.index(lab) + 37.0 * i
            out.append((f"{lab}-{i}", lab, (0.3 * np.sin(2 * np.pi * f * t) * np.hanning(n)).astype(np.float32), {}))
    return out


QUICK_PLAN = """
name = "{name}"
seed = 1
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
delay_reference = "{reference}"
placements = ["P1", "P2"]
mics = ["ref", "cheap"]
[evaluate]
models = ["lm-fp32", "lm-lowrank", "lm-int8"]
[timing]
preroll_s = 0.1
tail_s = 0.1
"""


def quick_plan(tmp_path: Path, name: str = "quick", per_label: int = 1, delays=(0,),
               reference: str = "playback") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(QUICK_PLAN.format(name=name, per_label=per_label, delays=list(delays), reference=reference))
    return p
