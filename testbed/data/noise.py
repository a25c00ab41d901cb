"""Background noise: the shipped real recordings (Speech Commands ``_background_noise_``) and coloured noise."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

NOISE_COLOURS = ("white", "pink", "brown")


@lru_cache(maxsize=4)
def noise_recordings(sample_rate: int = 16000) -> tuple[np.ndarray, ...]:
    """The shipped background recordings (``testbed/assets/noise/*.wav``), float32 mono at ``sample_rate``."""
    from testbed.data.audio_io import read_audio

    root = resources.files("testbed") / "assets" / "noise"
    paths = sorted(p for p in root.iterdir() if p.name.endswith(".wav"))
    return tuple(read_audio(p, sample_rate) for p in paths)


def coloured_noise(n_samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f^0 (white), 1/f (pink) or 1/f^2 (brown) power spectrum, (n_samples,) float32."""
    spec = rng.standard_normal(n_samples // 2 + 1) + 1j * rng.standard_normal(n_samples // 2 + 1)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    power = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    x = np.fft.irfft(spec / f ** (power / 2), n=n_samples)
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def noise_chunk(n_samples: int, rng: np.random.Generator, sample_rate: int = 16000,
                p_recording: float = 0.75) -> tuple[np.ndarray, str]:
    """A unit-RMS background-noise excerpt, (n_samples,) float32, and a name saying where it came from.

    With probability ``p_recording`` a random stretch of a random real recording, else coloured noise.
    """
    if rng.random() < p_recording:
        recs = noise_recordings(sample_rate)
        k = int(rng.integers(len(recs)))
        rec = recs[k]
        start = int(rng.integers(0, len(rec) - n_samples))
        x = rec[start:start + n_samples].astype(np.float64)
        x = x - x.mean()
        name = f"recording{k}"
    else:
        colour = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
        x = coloured_noise(n_samples, colour, rng).astype(np.float64)
        name = colour
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32), name
