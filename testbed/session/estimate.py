"""Dry run of a plan: how many trials, how long, how much to craft, how much disk."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from testbed.rig import Rig
from testbed.session.plan import Plan
from testbed.session.timing import trial_timing
from testbed.session.trials import attack_configs, expand_trials, placement_changes

#: Assumed command length when the utterances are not generated (one second of speech).
COMMAND_S = 1.0
#: 24-bit FLAC of a capture: about this many bytes per sample (noise compresses poorly).
FLAC_BYTES_PER_SAMPLE = 2.6
#: Rough simulator and model costs on one CPU core, seconds.
SIM_S_PER_AUDIO_S = 0.05
EVAL_S_PER_CAPTURE = 0.004
CRAFT_S_PER_STEP = 0.01


@dataclass
class PlanEstimate:
    """What a plan would do on a rig (no audio played, nothing written)."""

    trials: int
    captures: int
    evaluations: int
    perturbations: int
    placements: int
    placement_changes: int
    record_s_per_trial: float
    audio_s: float
    settle_s: float
    compute_s: float
    duration_s: float
    disk_bytes: int
    models: list[str]
    mics: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_plan(plan: Plan, rig: Rig) -> PlanEstimate:
    """Trial count, estimated duration and disk for ``plan`` on ``rig``.

    Duration is audio time plus settle time between trials on hardware, or an estimate of
    the simulator's compute on the sim rig; crafting cost grows with the attack's steps.
    """
    utts = [(f"{lab}-{i}", lab) for lab in plan.utterances.labels for i in range(plan.utterances.per_label)]
    trials = expand_trials(plan, utts)
    configs = {c.attack_id: c for c in attack_configs(plan)}
    n_adv = int(COMMAND_S * rig.sample_rate)
    tail = plan.timing.tail_s if plan.timing.tail_s is not None else rig.hardware.tail_s
    worst = max(abs(d) for d in plan.sweep.delay_ms)
    timing = trial_timing(rig, plan.placements()[0], n_adv, n_adv, worst, plan.sweep.delay_reference,
                          preroll_s=plan.timing.preroll_s, tail_s=tail)
    rec_s = timing.record_s
    mics = plan.mics(rig)
    models = plan.eval_models(rig)
    n = len(trials)
    crafts = {(t.utterance_id, t.attack_id) for t in trials if not configs[t.attack_id].is_none}
    craft_s = sum(CRAFT_S_PER_STEP * int(configs[a].params.get("steps", 20)) for _, a in crafts)
    audio_s = n * rec_s
    settle = n * rig.hardware.settle_s if rig.is_physical else 0.0
    eval_s = n * len(mics) * len(models) * EVAL_S_PER_CAPTURE
    compute = craft_s + eval_s + (0.0 if rig.is_physical else audio_s * SIM_S_PER_AUDIO_S)
    duration = compute + (audio_s + settle if rig.is_physical else 0.0)
    per_trial_bytes = (len(mics) * rec_s * rig.sample_rate + 2 * COMMAND_S * rig.sample_rate) \
        * FLAC_BYTES_PER_SAMPLE + 4096
    disk = int(n * per_trial_bytes + len(crafts) * n_adv * 4 + len(utts) * n_adv * 4)
    return PlanEstimate(
        trials=n, captures=n * len(mics), evaluations=n * len(mics) * len(models), perturbations=len(crafts),
        placements=len(plan.placements()), placement_changes=placement_changes(trials),
        record_s_per_trial=round(rec_s, 4), audio_s=round(audio_s, 2), settle_s=round(settle, 2),
        compute_s=round(compute, 2), duration_s=round(duration, 2), disk_bytes=disk, models=models, mics=mics)
