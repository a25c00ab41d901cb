"""Signal-processing building blocks of the augmentation transforms (NumPy/SciPy, no torch)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import fftconvolve, resample_poly
from scipy.signal.windows import hann


def _ratio(factor: float, max_den: int = 100) -> tuple[int, int]:
    frac = Fraction(float(factor)).limit_denominator(max_den)
    return frac.numerator, frac.denominator


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (duration / factor, pitch and formants x factor), like tape speed.

    Returns about ``round(len(x) / factor)`` samples, float32.
    """
    p, q = _ratio(factor)
    return resample_poly(x.astype(np.float64), q, p).astype(np.float32)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    pad = np.pad(x.astype(np.float64), (n_fft // 2, n_fft // 2 + hop))
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop]
    return np.fft.rfft(frames * hann(n_fft, sym=False), axis=1)  # (n_frames, n_fft//2+1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, n_out: int) -> np.ndarray:
    win = hann(n_fft, sym=False)
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * win
    n = hop * (len(frames) - 1) + n_fft
    y = np.zeros(n)
    norm = np.zeros(n)
    for i, f in enumerate(frames):
        y[i * hop:i * hop + n_fft] += f
        norm[i * hop:i * hop + n_fft] += win ** 2
    y = y / np.maximum(norm, 1e-8)
    y = y[n_fft // 2:]
    return np.pad(y, (0, max(0, n_out - len(y))))[:n_out]


def time_stretch(x: np.ndarray, rate: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder time stretch: ``rate`` > 1 is faster (shorter), pitch unchanged. float32."""
    spec = _stft(x, n_fft, hop)
    steps = np.arange(0, len(spec) - 1, rate)
    steps = steps[steps < len(spec) - 1]  # float arange may overshoot its stop
    idx = steps.astype(int)
    frac = (steps - idx)[:, None]
    s0, s1 = spec[idx], spec[idx + 1]
    mag = (1 - frac) * np.abs(s0) + frac * np.abs(s1)
    advance = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft
    dphase = np.angle(s1) - np.angle(s0) - advance
    dphase -= 2 * np.pi * np.round(dphase / (2 * np.pi))
    phase = np.angle(spec[0]) + np.concatenate([np.zeros((1, spec.shape[1])),
                                                np.cumsum(advance + dphase, axis=0)[:-1]])
    n_out = int(round(len(x) / rate))
    return _istft(mag * np.exp(1j * phase), n_fft, hop, n_out).astype(np.float32)


def shift_pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    """Move the pitch (and formants) by ``semitones`` keeping the duration; same length as ``x``, float32."""
    if abs(semitones) < 1e-6:
        return x.astype(np.float32, copy=True)
    r = 2.0 ** (semitones / 12.0)
    p, q = _ratio(r, 64)
    stretched = time_stretch(x, q / p)            # r times longer
    y = resample_poly(stretched, q, p)            # back to the original duration, F0 x r
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


def warp_formants(x: np.ndarray, alpha: float, n_fft: int = 512, hop: int = 128,
                  n_cepstrum: int = 24) -> np.ndarray:
    """Vocal-tract-length perturbation: scale the spectral envelope's frequency axis by ``alpha``.

    The envelope of each frame (cepstrum liftered to ``n_cepstrum`` coefficients) is stretched so
    a formant at f moves to ``alpha * f``; the harmonics (the pitch) stay where they were.
    ``alpha`` > 1 sounds like a shorter vocal tract. Same length as ``x``, float32.
    """
    spec = _stft(x, n_fft, hop)
    logmag = np.log(np.abs(spec) + 1e-7)
    cep = np.fft.irfft(logmag, n=n_fft, axis=1)
    cep[:, n_cepstrum:n_fft - n_cepstrum + 1] = 0.0
    env = np.fft.rfft(cep, axis=1).real
    bins = np.arange(spec.shape[1], dtype=np.float64)
    warped = np.stack([np.interp(bins / alpha, bins, e) for e in env])
    gain = np.exp(np.clip(warped - env, -6.0, 6.0))
    return _istft(spec * gain, n_fft, hop, len(x)).astype(np.float32)


def apply_response_db(x: np.ndarray, freqs_hz: np.ndarray, gains_db: np.ndarray,
                      sample_rate: int = 16000) -> np.ndarray:
    """Filter ``x`` with a zero-phase magnitude response given at ``freqs_hz`` (interpolated). float32."""
    n = 1 << int(np.ceil(np.log2(len(x) + 1024)))
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    g = 10 ** (np.interp(f, freqs_hz, gains_db) / 20.0)
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64), n) * g, n)[: len(x)]
    return y.astype(np.float32)


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution (``len(x) + len(h) - 1`` samples), float32."""
    return fftconvolve(x.astype(np.float64), h.astype(np.float64)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    """Root-mean-square level in full-scale units."""
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)) + 1e-12)


def autocorr_f0(x: np.ndarray, sample_rate: int = 16000, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median fundamental frequency (Hz) of the voiced 40 ms frames, by autocorrelation peak picking."""
    frame, hop = int(0.04 * sample_rate), int(0.01 * sample_rate)
    lo, hi = int(sample_rate / fmax), int(sample_rate / fmin)
    level = rms(x)
    f0s = []
    for start in range(0, len(x) - frame, hop):
        seg = x[start:start + frame].astype(np.float64)
        if rms(seg) < 0.5 * level:
            continue
        seg = seg - seg.mean()
        ac = np.correlate(seg, seg, "full")[frame - 1:]
        if ac[0] <= 0:
            continue
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] / ac[0] > 0.4:
            f0s.append(sample_rate / lag)
    return float(np.median(f0s)) if f0s else float("nan")
