"""A synthetic evaluations frame with G's column contract and outcomes drawn from known rates.

Geometry comes from the real office rig (``testbed.rig.path_geometry``); whether each evaluation
is wrong is drawn from a probability that rises with the attack, the bound, the cheap mic and the
near placement, so tests can compare the analysis against brute-force counts and against the
direction of the effects.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from testbed.rig import geometry_table, load_rig

LABELS = ["yes", "no", "up", "down"]
ATTACKS = [("none", 0.0), ("fgsm", 0.005), ("fgsm", 0.01), ("pgd", 0.005), ("pgd", 0.01)]
DELAYS = [0.0, 100.0, 250.0]
PLACEMENTS = ["P1", "P2"]
MICS = {"ref": "reference", "cheap": "electret-cheap"}
MODELS = [("lm-fp32", "live"), ("lm-int8", "live"), ("lm-lowrank", "replay")]


def p_wrong(attack: str, eps: float, delay_ms: float, placement: str, mic: str, model: str) -> float:
    """The probability of a wrong prediction the synthetic store draws from."""
    if attack == "none":
        return 0.05 + (0.05 if mic == "cheap" else 0.0)
    p = 0.25 + 20 * eps
    if attack == "fgsm":
        p -= 0.15 * delay_ms / 250
    else:
        p += 0.2
    p += 0.15 if mic == "cheap" else -0.1
    p += 0.1 if placement == "P2" else 0.0
    p += 0.05 if model == "lm-int8" else 0.0
    return float(np.clip(p, 0.0, 0.99))


def synthetic_evaluations(rig_path, seed: int = 0, per_label: int = 2, session_id: str = "s1") -> pd.DataFrame:
    rig = load_rig(rig_path)
    rng = np.random.default_rng(seed)
    rows = []
    trial_id = 0
    utts = [(f"{lab}-{i}", lab) for lab in LABELS for i in range(per_label)]
    for (uid, label), (attack, eps), delay, placement in itertools.product(utts, ATTACKS, DELAYS, PLACEMENTS):
        trial_id += 1
        geo = geometry_table(rig, placement)
        adv = rig.placements[placement]["adversary"]
        for mic, tier in MICS.items():
            gu, ga = geo["user"][mic], geo["adversary"][mic]
            spr = np.inf if attack == "none" else 20 * np.log10(0.1 / eps) + 20 * np.log10(ga.distance_m / gu.distance_m)
            for model, source in MODELS:
                wrong = rng.random() < p_wrong(attack, eps, delay, placement, mic, model)
                pred = LABELS[(LABELS.index(label) + 1) % 4] if wrong else label
                rows.append(dict(
                    session_id=session_id, trial_id=trial_id, utterance_id=uid, label=label,
                    attack=attack, attack_id=f"{attack}-{eps:g}", eps=eps, target="untargeted",
                    source_model=None if attack == "none" else "lm-fp32", delay_ms=delay,
                    realised_delay_ms=delay + 0.01, placement=placement, repetition=0, mic=mic,
                    mic_tier=tier, is_dut_mic=mic == rig.dut.mic, model=model, model_arch="lm",
                    model_variant=model.split("-")[1], model_hash="h" + model, eval_source=source,
                    prediction=pred, correct=not wrong, target_hit=pd.NA, score_top=0.9,
                    spr_db=float(spr) if np.isfinite(spr) else np.nan, snr_db=30.0,
                    dist_user_m=gu.distance_m, dist_adv_m=ga.distance_m, angle_user_deg=gu.angle_deg,
                    angle_adv_deg=ga.angle_deg, adv_x_m=adv[0], adv_y_m=adv[1], adv_z_m=adv[2],
                    xruns=0, clipped=0, failed=False, error="",
                ))
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def evals() -> pd.DataFrame:
    from pathlib import Path

    return synthetic_evaluations(Path(__file__).resolve().parents[2] / "rigs" / "office-sim.toml")
