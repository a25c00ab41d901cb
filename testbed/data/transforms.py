"""Named, seeded domain-randomisation transforms for synthetic speech.

Each transform is a small frozen dataclass holding its parameter ranges; calling it with a
signal and a ``numpy.random.Generator`` draws its random values from that generator only and
returns the new signal plus a dict of what it drew (recorded in the clip's metadata), so the
same generator state always gives the same output. :data:`TRANSFORMS` maps names to classes
and :data:`TRANSFORM_ORDER` is the order a corpus applies the enabled ones in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from testbed.data import dsp
from testbed.data.noise import noise_chunk

Facts = dict[str, Any]


@dataclass(frozen=True)
class Transform:
    """Base: ``p`` is the probability the transform acts on a clip (else it passes it through)."""

    name: ClassVar[str] = ""
    p: float = 1.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000) -> tuple[np.ndarray, Facts]:
        if rng.random() >= self.p:
            return x, {}
        return self.apply(x, rng, sample_rate)

    def apply(self, x: np.ndarray, rng: np.random.Generator, sample_rate: int) -> tuple[np.ndarray, Facts]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The transform's parameters as plain JSON-able values (for the corpus hash)."""
        return asdict(self)


@dataclass(frozen=True)
class Speed(Transform):
    """Speed perturbation (resampling): duration / factor, pitch and formants x factor."""

    name: ClassVar[str] = "speed"
    factor: tuple[float, float] = (0.85, 1.18)

    def apply(self, x, rng, sample_rate):
        f = float(rng.uniform(*self.factor))
        return dsp.change_speed(x, f), {"speed": round(f, 4)}


@dataclass(frozen=True)
class Pitch(Transform):
    """Pitch shift in semitones keeping the duration (phase vocoder + resampling)."""

    name: ClassVar[str] = "pitch"
    semitones: tuple[float, float] = (-4.0, 4.0)

    def apply(self, x, rng, sample_rate):
        s = float(rng.uniform(*self.semitones))
        return dsp.shift_pitch(x, s), {"pitch_st": round(s, 3)}


@dataclass(frozen=True)
class Formant(Transform):
    """Vocal-tract-length perturbation: formants x alpha, pitch unchanged."""

    name: ClassVar[str] = "formant"
    alpha: tuple[float, float] = (0.86, 1.16)

    def apply(self, x, rng, sample_rate):
        a = float(rng.uniform(*self.alpha))
        return dsp.warp_formants(x, a), {"vtlp_alpha": round(a, 4)}


@dataclass(frozen=True)
class Loudness(Transform):
    """A smooth random loudness contour (``depth_db`` around a random level, a few control points)."""

    name: ClassVar[str] = "loudness"
    depth_db: float = 6.0
    points: tuple[int, int] = (2, 5)

    def apply(self, x, rng, sample_rate):
        k = int(rng.integers(self.points[0], self.points[1] + 1))
        gains = rng.uniform(-self.depth_db, self.depth_db, size=k)
        contour = np.interp(np.linspace(0, 1, len(x)), np.linspace(0, 1, k), gains)
        return (x * 10 ** (contour / 20)).astype(np.float32), {"loudness_db": np.round(gains, 2).tolist()}


_EQ_FREQS = np.array([0, 50, 100, 200, 400, 800, 1600, 3200, 5000, 6400, 8000], dtype=np.float64)


def _own_mic_speaker_db(rng: np.random.Generator, freqs: np.ndarray) -> tuple[np.ndarray, str]:
    """A simple random device response: high-pass, low-pass and two peaks (used without acoustics models)."""
    lo = rng.uniform(60, 450)
    hi = rng.uniform(3000, 7800)
    f = np.maximum(freqs, 1.0)
    g = -10 * np.log10(1 + (lo / f) ** 4) - 10 * np.log10(1 + (f / hi) ** 4)
    for _ in range(2):
        fc, gain, q = rng.uniform(300, 6000), rng.uniform(-8, 8), rng.uniform(0.7, 3.0)
        g += gain * np.exp(-0.5 * (np.log2(f / fc) * q) ** 2)
    return g, f"own(lo={lo:.0f},hi={hi:.0f})"


@dataclass(frozen=True)
class EQ(Transform):
    """Random colouration by a microphone tier and loudspeaker model, plus a random spectral tilt.

    Uses ``testbed.acoustics.mic_response_db`` / ``speaker_response_db`` (the simulator's
    models) when that module provides them, else a simple random band-pass with peaks.
    """

    name: ClassVar[str] = "eq"
    tilt_db_per_octave: float = 2.0
    own_fraction: float = 0.5

    def apply(self, x, rng, sample_rate):
        freqs = np.linspace(0, sample_rate / 2, 129)
        models = _acoustics_models()
        if models is not None and rng.random() >= self.own_fraction:
            from testbed.rig.schema import MIC_TIERS, SPEAKER_MODELS

            tier = MIC_TIERS[int(rng.integers(len(MIC_TIERS)))]
            spk = SPEAKER_MODELS[int(rng.integers(len(SPEAKER_MODELS)))]
            g = np.asarray(models[0](tier, freqs), float) + np.asarray(models[1](spk, freqs), float)
            what = f"{tier}+{spk}"
        else:
            g, what = _own_mic_speaker_db(rng, freqs)
        tilt = float(rng.uniform(-self.tilt_db_per_octave, self.tilt_db_per_octave))
        g = g + tilt * np.log2(np.maximum(freqs, 100.0) / 1000.0)
        band = (freqs >= 300) & (freqs <= 3400)
        g = g - np.mean(g[band])
        y = dsp.apply_response_db(x, freqs, g, sample_rate)
        return y, {"eq": what, "tilt_db_oct": round(tilt, 2)}


def _acoustics_models():
    try:
        from testbed.acoustics import mic_response_db, speaker_response_db
    except ImportError:
        return None
    return mic_response_db, speaker_response_db


@dataclass(frozen=True)
class Reverb(Transform):
    """Convolution with the impulse response of a random small room (a pool drawn per corpus).

    The output keeps the reverberant tail (longer than the input) and the input's RMS level.
    """

    name: ClassVar[str] = "reverb"
    p: float = 0.7
    rt60_s: tuple[float, float] = (0.15, 0.7)
    pool_size: int = 32
    #: r1-follow: a folder of measured IRs (any names, rates, channels); ``irs_share`` of the pool
    #: comes from it (:func:`testbed.data.rooms.folder_rir_pool`), the rest from random shoeboxes
    irs: str | None = None
    irs_share: float = 1.0
    #: octave-band absorption with a low-frequency-heavy profile, air absorption, farther mics
    #: (:func:`testbed.data.rooms.random_rir`); part of the corpus key only when true
    realistic: bool = False
    rirs: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.irs_share) <= 1.0:
            raise TypeError(f"irs_share must be in [0, 1], got {self.irs_share}")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p": self.p, "rt60_s": self.rt60_s, "pool_size": self.pool_size}
        if self.realistic:
            out["realistic"] = True
        if self.irs is not None:  # the folder's contents are part of a corpus's identity
            from testbed.data.rooms import ir_folder_digest

            out.update(irs=self.irs, irs_share=self.irs_share, irs_digest=ir_folder_digest(self.irs))
        return out

    def pool(self, seed: int, sample_rate: int) -> tuple[np.ndarray, ...]:
        """The corpus's RIR pool: ``pool_size`` RIRs, measured (``irs``) and/or random shoeboxes."""
        from testbed.data.rooms import folder_rir_pool, rir_pool

        n_measured = int(round(self.pool_size * self.irs_share)) if self.irs is not None else 0
        measured = folder_rir_pool(self.irs, n_measured, seed, sample_rate) if n_measured else []
        box = rir_pool(self.pool_size - n_measured, seed, sample_rate, self.rt60_s, self.realistic) \
            if self.pool_size > n_measured else []
        return tuple(measured) + tuple(box)

    def apply(self, x, rng, sample_rate):
        if self.irs is not None and not self.rirs:
            from dataclasses import replace

            return replace(self, rirs=_pool_cached(self, sample_rate)).apply(x, rng, sample_rate)
        if self.rirs:
            k = int(rng.integers(len(self.rirs)))
            h = self.rirs[k]
        else:
            from testbed.data.rooms import random_rir

            h, _ = random_rir(rng, sample_rate, self.rt60_s, self.realistic)
            k = -1
        y = dsp.convolve(x, h)
        y *= dsp.rms(x) / dsp.rms(y[: len(x)])
        return y.astype(np.float32), {"rir": k}


_POOLS: dict[tuple, tuple[np.ndarray, ...]] = {}


def _pool_cached(rv: "Reverb", sample_rate: int) -> tuple[np.ndarray, ...]:
    """A measured-IR Reverb's pool (seed 0) for use outside a corpus, built once per process."""
    key = (rv.irs, rv.irs_share, rv.pool_size, rv.rt60_s, rv.realistic, int(sample_rate))
    if key not in _POOLS:
        _POOLS[key] = rv.pool(0, int(sample_rate))
    return _POOLS[key]


@dataclass(frozen=True)
class Onset:
    """Place a signal inside a window of ``n_out`` samples at a random onset (not a :class:`Transform`).

    ``core`` is the length of the part that must fit (the dry word, without a reverberant tail).
    """

    name: ClassVar[str] = "onset"
    margin_s: float = 0.02

    def __call__(self, x: np.ndarray, rng: np.random.Generator, n_out: int, core: int | None = None,
                 sample_rate: int = 16000, random: bool = True) -> tuple[np.ndarray, Facts]:
        core = len(x) if core is None else min(core, len(x))
        margin = int(self.margin_s * sample_rate)
        room = n_out - core - 2 * margin
        if room <= 0:
            start = max(0, (n_out - core) // 2)
        elif random:
            start = margin + int(rng.integers(0, room + 1))
        else:
            start = margin + room // 2
        out = np.zeros(n_out, dtype=np.float32)
        seg = x[: n_out - start]
        if core > n_out:  # longer than the window: keep its middle
            off = (core - n_out) // 2
            seg, start = x[off:off + n_out], 0
        out[start:start + len(seg)] = seg
        return out, {"onset_s": round(start / sample_rate, 4), "onset_samples": int(start)}

    def params(self) -> dict[str, Any]:
        return {"margin_s": self.margin_s}


@dataclass(frozen=True)
class Noise(Transform):
    """Background noise (shipped real recordings or coloured noise) at a random SNR in dB.

    The SNR is relative to the speech power over ``core`` samples (the word, not the whole window).
    """

    name: ClassVar[str] = "noise"
    p: float = 0.85
    snr_db: tuple[float, float] = (8.0, 35.0)
    p_recording: float = 0.75

    def __call__(self, x, rng, sample_rate=16000, core: int | None = None):
        if rng.random() >= self.p:
            return x, {}
        return self.apply(x, rng, sample_rate, core)

    def apply(self, x, rng, sample_rate, core=None):
        snr = float(rng.uniform(*self.snr_db))
        n, src = noise_chunk(len(x), rng, sample_rate, self.p_recording)
        n_core = len(x) if not core else core
        p_speech = float(np.sum(x.astype(np.float64) ** 2) / max(n_core, 1))
        y = x + n * np.sqrt(p_speech / 10 ** (snr / 10))
        return y.astype(np.float32), {"snr_db": round(snr, 2), "noise": src}


#: name -> transform class
TRANSFORMS: dict[str, type] = {t.name: t for t in (Speed, Pitch, Formant, Loudness, EQ, Reverb, Onset, Noise)}
#: the order a corpus applies its enabled transforms in
TRANSFORM_ORDER: tuple[str, ...] = ("speed", "pitch", "formant", "loudness", "eq", "reverb", "onset", "noise")
