"""What a trial commits: its captures, evaluations and the sounds each speaker played."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class CaptureRecord:
    """One mic's recording of a trial plus what was measured on it."""

    mic: str
    signal: np.ndarray                    # float32 (n_samples,)
    clipped: int = 0
    peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    spr_db: float | None = None
    snr_db: float | None = None
    arrival_delay_ms: float | None = None
    dist_user_m: float | None = None
    dist_adv_m: float | None = None
    angle_user_deg: float | None = None
    angle_adv_deg: float | None = None


@dataclass
class EvalRecord:
    """One model's prediction on one capture."""

    mic: str
    model: str
    model_hash: str | None
    eval_source: str                      # live | replay | serial
    prediction: str | None
    score_top: float | None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class TrialRecord:
    """Everything one trial commits."""

    trial_id: int
    captures: list[CaptureRecord]
    evaluations: list[EvalRecord]
    played: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)  # speaker -> (signal, offset)
    realised_delay_ms: float | None = None
    xruns: int = 0
    failed: bool = False
    error: str | None = None
    attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    placement_confirmed_at: float | None = None
    adv_pos_m: tuple[float, float, float] | None = None
    facts: dict = field(default_factory=dict)
