"""Loudspeaker models and microphone tiers: magnitude responses, sensitivity, noise, ADC.

Built-in models are parametric (Butterworth-shaped high/low-pass skirts, presence
peaks, ripple) so they are smooth and documented; a CSV of ``hz, db`` rows (see
:func:`testbed.rig.load_response_csv`) replaces the shape of any of them. The tiers
differ where it matters for attacks on speech models: band limits (perturbation
energy above ~6-7 kHz or below ~200 Hz is lost), self-noise and ADC resolution.

Levels
------
A tier's ``sensitivity_dbfs_per_pa`` is the peak level in dBFS (AES17: a full-scale
sine is 0 dBFS) of a 1 Pa rms (94 dB SPL) 1 kHz sine; ``self_noise_dba`` is the
equivalent input noise in dB SPL (modelled as white noise of that level).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from testbed.errors import RigError

if TYPE_CHECKING:
    from testbed.rig import Mic, Rig

#: Floor of every magnitude response, dB (keeps FIR design well conditioned).
FLOOR_DB = -100.0


@dataclass(frozen=True)
class Shape:
    """A smooth magnitude response built from a few named parts (all in Hz and dB).

    Attributes
    ----------
    highpass : (corner_hz, order) Butterworth-magnitude high-pass, or None.
    lowpass : (corner_hz, order) Butterworth-magnitude low-pass, or None.
    peaks : ((centre_hz, gain_db, width_octaves), ...) Gaussian bumps in log frequency.
    ripple_db : amplitude of a sinusoidal ripple in log frequency (0 = none).
    ripple_per_octave : ripple cycles per octave.
    """

    highpass: tuple[float, int] | None = None
    lowpass: tuple[float, int] | None = None
    peaks: tuple[tuple[float, float, float], ...] = ()
    ripple_db: float = 0.0
    ripple_per_octave: float = 1.5

    def db(self, freqs_hz: np.ndarray) -> np.ndarray:
        """Magnitude in dB at ``freqs_hz`` (any shape), floored at :data:`FLOOR_DB`."""
        f = np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1e-3)
        out = np.zeros_like(f)
        if self.highpass is not None:
            fc, n = self.highpass
            r = (f / fc) ** (2 * n)
            out += 10 * np.log10(r / (1 + r))
        if self.lowpass is not None:
            fc, n = self.lowpass
            out -= 10 * np.log10(1 + (f / fc) ** (2 * n))
        lf = np.log2(f / 1000.0)
        for fc, g, w in self.peaks:
            out += g * np.exp(-0.5 * ((np.log2(f / fc)) / w) ** 2)
        if self.ripple_db:
            out += self.ripple_db * np.sin(2 * np.pi * self.ripple_per_octave * lf)
        return np.maximum(out, FLOOR_DB)


@dataclass(frozen=True)
class MicTier:
    """A microphone tier: response shape plus level, noise and converter facts."""

    name: str
    shape: Shape
    sensitivity_dbfs_per_pa: float
    self_noise_dba: float
    bits: int
    description: str = ""


@dataclass(frozen=True)
class SpeakerModel:
    """A loudspeaker model: its response shape (level comes from the rig's ``spl_at_1m_db``)."""

    name: str
    shape: Shape
    description: str = ""


MIC_TIER_MODELS: dict[str, MicTier] = {
    "reference": MicTier(
        "reference", Shape(), sensitivity_dbfs_per_pa=-26.0, self_noise_dba=15.0, bits=24,
        description="measurement microphone: flat, quiet, 24-bit",
    ),
    "mems": MicTier(
        "mems", Shape(highpass=(80.0, 2), peaks=((5500.0, 3.0, 0.9),), lowpass=(7800.0, 4)),
        sensitivity_dbfs_per_pa=-26.0, self_noise_dba=30.0, bits=16,
        description="digital MEMS: mild 80 Hz high-pass, +3 dB near 5.5 kHz, 16-bit",
    ),
    "smartphone": MicTier(
        "smartphone",
        Shape(highpass=(100.0, 4), lowpass=(7000.0, 8), peaks=((2500.0, 1.5, 1.0),)),
        sensitivity_dbfs_per_pa=-30.0, self_noise_dba=32.0, bits=16,
        description="phone voice path: 100 Hz - 7 kHz band-limit, fixed (AGC-free) gain, 16-bit",
    ),
    "electret-cheap": MicTier(
        "electret-cheap",
        Shape(highpass=(250.0, 2), lowpass=(5500.0, 6), peaks=((3200.0, 6.0, 0.5),)),
        sensitivity_dbfs_per_pa=-22.0, self_noise_dba=44.0, bits=12,
        description="cheap electret + preamp: 250 Hz high-pass, +6 dB presence at 3.2 kHz, "
                    "low-pass ~5.5 kHz, noisy, 12-bit, hot gain (clips early)",
    ),
}

SPEAKER_MODEL_SHAPES: dict[str, SpeakerModel] = {
    "flat": SpeakerModel("flat", Shape(), "ideal flat loudspeaker"),
    "small-bookshelf": SpeakerModel(
        "small-bookshelf", Shape(highpass=(80.0, 2), ripple_db=1.0, ripple_per_octave=1.3),
        "small two-way bookshelf: 80 Hz high-pass, +-1 dB ripple",
    ),
    "phone-speaker": SpeakerModel(
        "phone-speaker",
        Shape(highpass=(300.0, 4), lowpass=(7000.0, 6), peaks=((1000.0, 3.0, 0.7),)),
        "phone / laptop micro-speaker: 300 Hz - 7 kHz, resonance near 1 kHz",
    ),
}

#: Radiation pattern of each built-in speaker model, for a speaker whose ``directivity`` is
#: ``"model"`` (frequency-independent approximations: a small bookshelf box beams forward above
#: a few hundred Hz, a phone's tiny driver is nearly omni at speech frequencies; CSV: omni).
SPEAKER_DIRECTIVITY: dict[str, str] = {
    "flat": "omni",
    "small-bookshelf": "subcardioid",
    "phone-speaker": "omni",
}

#: Defaults for a mic given by a measured response CSV (shape from the file).
CSV_TIER_DEFAULTS = MicTier("csv", Shape(), sensitivity_dbfs_per_pa=-26.0, self_noise_dba=30.0, bits=16)


def _csv_path(value: str, rig: "Rig | None") -> Path:
    if rig is not None:
        from testbed.rig import resolve_response

        p = resolve_response(rig, value)
        assert p is not None
        return p
    return Path(value)


@lru_cache(maxsize=64)
def _csv_points(path: str, mtime: float) -> tuple[np.ndarray, np.ndarray]:
    from testbed.rig import load_response_csv

    return load_response_csv(path)


def _csv_db(path: Path, freqs_hz: np.ndarray) -> np.ndarray:
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise RigError(f"{path}: cannot read response CSV: {exc.strerror or exc}") from None
    hz, db = _csv_points(str(path), mtime)
    f = np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1e-3)
    # interpolate in log frequency, hold the end values outside the measured band
    out = np.interp(np.log(f), np.log(np.maximum(hz, 1e-3)), db)
    return np.maximum(out, FLOOR_DB)


def mic_response_db(tier_or_csv: str, freqs_hz: np.ndarray, rig: "Rig | None" = None) -> np.ndarray:
    """Magnitude response of a mic tier (or a measured CSV) in dB, 0 dB = nominal sensitivity.

    Parameters
    ----------
    tier_or_csv : one of ``testbed.rig.MIC_TIERS`` or a path to a CSV of ``hz, db`` rows
        (relative paths resolve against ``rig.source`` when ``rig`` is given).
    freqs_hz : frequencies in Hz, any shape.
    rig : the rig the CSV path belongs to, if any.

    Returns
    -------
    float64 array of ``freqs_hz``'s shape, dB.

    Raises
    ------
    RigError
        Unknown tier name or unreadable CSV.
    """
    if tier_or_csv in MIC_TIER_MODELS:
        return MIC_TIER_MODELS[tier_or_csv].shape.db(freqs_hz)
    if not tier_or_csv.lower().endswith(".csv"):
        raise RigError(f"unknown mic tier {tier_or_csv!r} (use one of {', '.join(MIC_TIER_MODELS)} "
                       f"or a CSV path)")
    return _csv_db(_csv_path(tier_or_csv, rig), freqs_hz)


def speaker_response_db(model_or_csv: str, freqs_hz: np.ndarray, rig: "Rig | None" = None) -> np.ndarray:
    """Magnitude response of a loudspeaker model (or a measured CSV) in dB, 0 dB = nominal level.

    Parameters
    ----------
    model_or_csv : one of ``testbed.rig.SPEAKER_MODELS`` or a path to a CSV of ``hz, db`` rows.
    freqs_hz : frequencies in Hz, any shape.
    rig : the rig the CSV path belongs to, if any.

    Returns
    -------
    float64 array of ``freqs_hz``'s shape, dB.
    """
    if model_or_csv in SPEAKER_MODEL_SHAPES:
        return SPEAKER_MODEL_SHAPES[model_or_csv].shape.db(freqs_hz)
    if not model_or_csv.lower().endswith(".csv"):
        raise RigError(f"unknown speaker model {model_or_csv!r} (use one of "
                       f"{', '.join(SPEAKER_MODEL_SHAPES)} or a CSV path)")
    return _csv_db(_csv_path(model_or_csv, rig), freqs_hz)


@dataclass(frozen=True)
class MicFacts:
    """The numbers the simulator needs for one mic, tier defaults with the rig's overrides applied."""

    tier: str
    sensitivity_dbfs_per_pa: float
    self_noise_dba: float
    bits: int
    clock_ppm: float = 0.0

    @property
    def gain_per_pa(self) -> float:
        """Digital full-scale units per pascal (instantaneous), from the AES17 sensitivity."""
        return float(10 ** (self.sensitivity_dbfs_per_pa / 20) / np.sqrt(2))


def mic_facts(mic: "Mic") -> MicFacts:
    """Sensitivity, self-noise, ADC bits and clock error of a rig mic (tier defaults + overrides)."""
    base = MIC_TIER_MODELS.get(mic.tier, CSV_TIER_DEFAULTS)
    return MicFacts(
        tier=mic.tier,
        sensitivity_dbfs_per_pa=(base.sensitivity_dbfs_per_pa if mic.sensitivity_dbfs_per_pa is None
                                 else mic.sensitivity_dbfs_per_pa),
        self_noise_dba=base.self_noise_dba if mic.self_noise_dba is None else mic.self_noise_dba,
        bits=base.bits if mic.bits is None else mic.bits,
        clock_ppm=mic.clock_ppm,
    )


def is_flat(db: np.ndarray, tol_db: float = 1e-6) -> bool:
    """True when a response is 0 dB everywhere (no filter needed)."""
    return bool(np.all(np.abs(db) < tol_db))


def zero_phase_fir(freqs_hz: np.ndarray, db: np.ndarray, sample_rate: int, n_taps: int = 1023) -> np.ndarray:
    """A linear-phase FIR realising a magnitude response, returned *centred* (zero phase).

    Parameters
    ----------
    freqs_hz, db : the response on a grid from 0 to ``sample_rate / 2`` Hz.
    sample_rate : Hz.
    n_taps : odd; the tap ``(n_taps - 1) // 2`` is time zero.

    Returns
    -------
    float64 array, shape (n_taps,); convolving with it and dropping the first
    ``(n_taps - 1) // 2`` samples applies the response without shifting arrivals.
    """
    from scipy.signal import firwin2

    gain = 10 ** (np.asarray(db, dtype=np.float64) / 20)
    f = np.asarray(freqs_hz, dtype=np.float64)
    gain[-1] = gain[-1] if n_taps % 2 else 0.0
    return firwin2(n_taps, f, gain, fs=sample_rate, window=("kaiser", 6.0))
