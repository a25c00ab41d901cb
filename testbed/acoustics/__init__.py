"""The physics of the simulated rig: rooms, loudspeakers, microphones, noise, clocks.

Public surface:

- :func:`fractional_delay` -- sub-sample delays (windowed sinc), also for hardware backends.
- :func:`mic_response_db`, :func:`speaker_response_db` -- the built-in tier / speaker models.
- :func:`sample_channel` -> :class:`Channel` -- speaker -> mic impulse responses with levels,
  cached per geometry; used by the simulator and by over-the-air attacks (EOT).
- :class:`RirCache`, :class:`RoomSpec` -- image-source RIRs (pyroomacoustics) cached per geometry,
  with band RT60s, air absorption, :class:`SourceDirectivity` and an optional ray-traced tail.
- :func:`ir_stats` -> :class:`IrStats` -- onset, RT60 (Schroeder T20/T30, broadband and per octave
  band), DRR, C50 and late spectral tilt of an IR (:mod:`testbed.acoustics.irstats`).
"""

from testbed.acoustics.adc import adc
from testbed.acoustics.channel import (
    Channel,
    build_channel,
    clear_caches,
    mic_noise_rms,
    speaker_gain_pa,
)
from testbed.acoustics.fractional import apply_clock_ppm, fractional_delay, resample_at
from testbed.acoustics.noise import diffuse_noise, self_noise_rms, spl_to_pa
from testbed.acoustics.responses import (
    MIC_TIER_MODELS,
    SPEAKER_MODEL_SHAPES,
    MicFacts,
    MicTier,
    Shape,
    SpeakerModel,
    mic_facts,
    mic_response_db,
    speaker_response_db,
)
from testbed.acoustics.irstats import IrStats, ir_stats
from testbed.acoustics.draw import sample_channel
from testbed.acoustics.room import RirCache, RoomSpec, SourceDirectivity, compute_rirs, default_rir_cache

__all__ = [
    "MIC_TIER_MODELS", "SPEAKER_MODEL_SHAPES",
    "Channel", "IrStats", "MicFacts", "MicTier", "RirCache", "RoomSpec", "Shape", "SourceDirectivity",
    "SpeakerModel", "adc", "apply_clock_ppm", "build_channel", "clear_caches", "compute_rirs", "default_rir_cache",
    "diffuse_noise", "fractional_delay", "ir_stats", "mic_facts", "mic_noise_rms", "mic_response_db",
    "resample_at", "sample_channel", "self_noise_rms", "speaker_gain_pa",
    "speaker_response_db", "spl_to_pa",
]
