"""Background and microphone noise: a diffuse (spatially coherent) pink field and self-noise.

The diffuse field has the spatial coherence of an ideal spherically isotropic field,
``sinc(2 f d / c)`` between two mics ``d`` metres apart, and a pink (1/f) spectrum
from 20 Hz up; its level is the broadband (unweighted) sound pressure level in dB
SPL. Each mic then hears it through its own response and sensitivity. Self-noise is
white at the tier's equivalent input level.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from testbed.rig.geometry import SPEED_OF_SOUND_M_S

#: Reference pressure of dB SPL, pascal.
P_REF_PA = 20e-6
#: Lowest frequency of the diffuse field, Hz.
NOISE_F_LO_HZ = 20.0
#: Frequency grid (points from 0 to Nyquist) on which the coherence is factorised.
_COARSE_BINS = 257


def spl_to_pa(level_dbspl: float) -> float:
    """RMS pressure in pascal of a sound pressure level in dB SPL."""
    return float(P_REF_PA * 10 ** (level_dbspl / 20))


def pink_weights(freqs_hz: np.ndarray, f_lo_hz: float = NOISE_F_LO_HZ) -> np.ndarray:
    """Power weights of the diffuse field per frequency: ``1 / f`` above ``f_lo_hz``, 0 below."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    return np.where(f >= f_lo_hz, 1.0 / np.maximum(f, f_lo_hz), 0.0)


@lru_cache(maxsize=64)
def _mixing(positions: tuple[tuple[float, float, float], ...], sample_rate: int) -> np.ndarray:
    """Real mixing matrices ``C`` with ``C C^T = Gamma(f)`` on a coarse grid, shape (bins, M, M)."""
    p = np.asarray(positions, dtype=np.float64)
    d = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)
    f = np.linspace(0.0, sample_rate / 2, _COARSE_BINS)
    gamma = np.sinc(2.0 * f[:, None, None] * d[None] / SPEED_OF_SOUND_M_S)
    vals, vecs = np.linalg.eigh(gamma)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :]


def noise_coloring(
    mic_positions_m: np.ndarray,
    n_samples: int,
    sample_rate: int,
    level_dbspl: float,
    gains_per_pa: np.ndarray,
    responses_db: np.ndarray | None,
    self_noise_rms: np.ndarray | None = None,
) -> np.ndarray:
    """Per-frequency mixing matrices that turn white complex noise into the mics' noise.

    The covariance at rfft bin ``k`` is the diffuse field's (pink, coherence
    ``sinc(2 f d / c)``, through each mic's response and sensitivity) plus each mic's
    white self-noise on the diagonal. Compute once per geometry and length, then draw
    with :func:`render_noise`.

    Parameters
    ----------
    mic_positions_m : shape (n_mics, 3), metres.
    n_samples : samples per mic.
    sample_rate : Hz.
    level_dbspl : broadband level of the diffuse field, dB SPL (unweighted, 20 Hz to Nyquist).
    gains_per_pa : shape (n_mics,), digital units per pascal of each mic.
    responses_db : shape (n_mics, n_samples // 2 + 1), each mic's response on the
        ``numpy.fft.rfftfreq(n_samples, 1 / sample_rate)`` grid, or None for flat.
    self_noise_rms : shape (n_mics,), RMS of each mic's white self-noise (digital units), or None.

    Returns
    -------
    float64 array, shape (n_mics, n_mics, n_samples // 2 + 1): row ``i`` of the matrix at
    each rfft bin, how mic ``i`` mixes ``n_mics`` unit white sources
    """
    pos = np.asarray(mic_positions_m, dtype=np.float64).reshape(-1, 3)
    m = pos.shape[0]
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    w = pink_weights(freqs)
    a = spl_to_pa(level_dbspl) * n_samples / np.sqrt(2.0 * w.sum())
    amp = a * np.sqrt(w)[None, :] * np.asarray(gains_per_pa, dtype=np.float64)[:, None]
    if responses_db is not None:
        amp = amp * 10 ** (np.asarray(responses_db, dtype=np.float64) / 20)
    mix = _mixing(tuple(map(tuple, np.round(pos, 4))), int(sample_rate))
    idx = np.rint(freqs / (sample_rate / 2) * (_COARSE_BINS - 1)).astype(np.int64)
    col = mix[idx] * amp.T[:, :, None]  # rows scaled by each mic's amplitude
    if self_noise_rms is None or not np.any(self_noise_rms):
        return _per_mic(col)
    cov = col @ np.swapaxes(col, 1, 2)
    own = n_samples * np.asarray(self_noise_rms, dtype=np.float64) ** 2
    cov[:, np.arange(m), np.arange(m)] += own[None, :]
    try:     # positive definite with self-noise on every mic: Cholesky is 10x faster than eigh
        return _per_mic(np.linalg.cholesky(cov))
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(cov)
        return _per_mic(vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :])


def _per_mic(col: np.ndarray) -> np.ndarray:
    """(bins, m, m) -> contiguous (m, m, bins): per mic pair, one row over frequency."""
    return np.ascontiguousarray(col.transpose(1, 2, 0))


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """Standard normal draws of ``shape``, seeded by ``rng`` (one integer is taken from it).

    torch's vectorised Box-Muller sampler is 2-3x faster than numpy's ziggurat here, and the
    noise draw is the largest single cost of a simulated trial.
    """
    import torch

    gen = torch.Generator().manual_seed(int(rng.integers(2**63)))
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    return torch.randn(shape, generator=gen, dtype=tdtype).numpy()


def noise_terms(coloring: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Per mic ``i``, the sources ``j >= 1`` whose mixing row ``coloring[i, j]`` is not all zero
    (a Cholesky factor is lower-triangular): what :func:`noise_spectrum` needs to add. Compute it
    once per coloring."""
    m = coloring.shape[0]
    return tuple(tuple(j for j in range(1, m) if np.any(coloring[i, j])) for i in range(m))


def noise_spectrum(coloring: np.ndarray, rng: np.random.Generator,
                   terms: tuple[tuple[int, ...], ...] | None = None) -> np.ndarray:
    """Draw one noise realisation from :func:`noise_coloring`'s matrices, as rfft bins.

    A caller that already works in the frequency domain adds this to its spectrum and saves
    an inverse FFT; :func:`render_noise` is the time-domain form. ``terms`` (from
    :func:`noise_terms`) skips the all-zero mixing rows; the result is the same.

    Returns
    -------
    complex array, shape (n_mics, n_bins); complex64 when ``coloring`` is float32
    """
    m, _, bins = coloring.shape
    real = np.float32 if coloring.dtype == np.float32 else np.float64
    z = standard_normal(rng, (m, 2, bins), real)               # real and imaginary parts
    out = np.empty((m, bins), dtype=np.complex64 if real is np.float32 else np.complex128)
    part, tmp = np.empty((2, bins), dtype=real), np.empty((2, bins), dtype=real)
    scale = real(np.sqrt(0.5))     # in the coloring's precision: a float64 scalar would cast each row
    for i in range(m):              # a handful of mics: real multiply-adds beat a batched matmul
        np.multiply(coloring[i, 0], z[0], out=part)
        for j in (range(1, m) if terms is None else terms[i]):
            part += np.multiply(coloring[i, j], z[j], out=tmp)
        np.multiply(part, scale, out=part)
        out[i].real, out[i].imag = part
    return out


def render_noise(coloring: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one noise realisation from :func:`noise_coloring`'s matrices.

    Returns
    -------
    float64 array, shape (n_mics, n_samples)
    """
    return sfft.irfft(noise_spectrum(coloring, rng), n=n_samples, axis=-1)


def diffuse_noise(
    mic_positions_m: np.ndarray,
    n_samples: int,
    sample_rate: int,
    level_dbspl: float,
    gains_per_pa: np.ndarray,
    responses_db: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """A diffuse pink noise field as the mics' ADCs see it (no self-noise).

    Parameters are those of :func:`noise_coloring`; ``rng`` is the only source of randomness.

    Returns
    -------
    float32 array, shape (n_mics, n_samples)
    """
    col = noise_coloring(mic_positions_m, n_samples, sample_rate, level_dbspl, gains_per_pa, responses_db)
    return render_noise(col, n_samples, rng).astype(np.float32)


def diffuse_noise_rms(level_dbspl: float, gain_per_pa: float, response_db_fn, sample_rate: int) -> float:
    """Expected RMS (digital units) of the diffuse field at one mic.

    ``response_db_fn(freqs_hz) -> dB`` is the mic's response (None for flat).
    """
    freqs = np.linspace(0.0, sample_rate / 2, 4097)
    w = pink_weights(freqs)
    g2 = np.ones_like(freqs) if response_db_fn is None else 10 ** (response_db_fn(freqs) / 10)
    return float(spl_to_pa(level_dbspl) * gain_per_pa * np.sqrt((w * g2).sum() / w.sum()))


def self_noise_rms(self_noise_dba: float, gain_per_pa: float) -> float:
    """RMS (digital units) of a mic's self-noise, modelled as white at its equivalent input level."""
    return float(spl_to_pa(self_noise_dba) * gain_per_pa)
