"""The AudioBackend contract shared by the simulated and the hardware backends.

All signals are float32 PCM in [-1, 1] at the backend's ``sample_rate``.
Captures are aligned to the *user speaker's start*: sample 0 of every capture is
the moment the user speaker's first sample left the speaker (after latency
compensation on hardware), so an arrival at a mic at ``d / c`` seconds appears at
sample ``d / c * sample_rate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Playback:
    """One speaker's signal and its start offset.

    Attributes
    ----------
    signal : float32 array, shape (n_samples,)
    offset_samples : start relative to the trial's time zero, in samples; may be
        fractional (realised by a fractional-delay filter) and must be >= 0.
    """

    signal: np.ndarray
    offset_samples: float = 0.0


@dataclass
class TrialFacts:
    """What the backend measured while running one trial (all levels in dBFS)."""

    backend: str
    sample_rate: int
    latency_samples: float = 0.0
    xruns: int = 0
    status_flags: list[str] = field(default_factory=list)
    clipped_samples: dict[str, int] = field(default_factory=dict)       # per mic
    speaker_peak_dbfs: dict[str, float] = field(default_factory=dict)
    speaker_rms_dbfs: dict[str, float] = field(default_factory=dict)
    mic_peak_dbfs: dict[str, float] = field(default_factory=dict)
    mic_rms_dbfs: dict[str, float] = field(default_factory=dict)
    limited: dict[str, bool] = field(default_factory=dict)              # limiter engaged, per speaker
    speaker_true_peak_dbtp: dict[str, float] = field(default_factory=dict)   # 4x oversampled, per speaker
    speaker_max_rms_dbfs: dict[str, float] = field(default_factory=dict)     # loudest 1 s, per speaker
    speaker_seconds_at_ceiling: dict[str, float] = field(default_factory=dict)  # within 1 dB of max_dbfs
    realised_offsets_samples: dict[str, float] = field(default_factory=dict)   # per speaker
    arrival_offsets_samples: dict[str, dict[str, float]] = field(default_factory=dict)  # speaker -> mic
    placement: str | None = None
    notes: list[str] = field(default_factory=list)
    # -- SPL (issue 23): each speaker's own level at each mic over its playback, when the
    # backend knows it (the simulator does): speaker -> mic -> RMS dBFS, unweighted / A-weighted
    source_rms_dbfs: dict[str, dict[str, float]] = field(default_factory=dict)
    source_rms_dbfs_a: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Capture:
    """Per-microphone recordings of one trial plus the backend's timing facts.

    ``mics[name]`` is float32, shape (n_samples,), all of the same length.
    """

    mics: dict[str, np.ndarray]
    facts: TrialFacts


@runtime_checkable
class AudioBackend(Protocol):
    """Plays several signals on named speakers and records named mics in one stream."""

    name: str
    sample_rate: int

    def run_trial(
        self,
        plays: Mapping[str, Playback],
        record_s: float,
        placement: str | None = None,
    ) -> Capture:
        """Play ``plays`` (keyed by speaker name), record every mic for ``record_s`` seconds.

        Raises
        ------
        DeviceError
            The device is missing or failed; the message names it.
        """
        ...

    def close(self) -> None:
        """Release devices; the backend is unusable afterwards."""
        ...


def dbfs(x: np.ndarray, kind: str = "peak") -> float:
    """Level of ``x`` in dBFS (``kind`` 'peak' or 'rms'); -inf-safe floor at -200 dBFS."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return -200.0
    v = np.max(np.abs(x)) if kind == "peak" else np.sqrt(np.mean(x * x))
    return float(20 * np.log10(max(v, 1e-10)))
