"""Reading audio files and fitting signals to fixed-length windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from testbed.errors import DataError


def resample(signal: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample a (n_samples,) float signal with ``torchaudio.functional.resample``."""
    if int(from_hz) == int(to_hz):
        return signal.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)), int(from_hz), int(to_hz))
    return out.numpy().astype(np.float32)


def fit_length(signal: np.ndarray, n_samples: int, mode: str = "loudest") -> np.ndarray:
    """Pad with zeros at the end, or cut, to exactly ``n_samples``.

    Parameters
    ----------
    signal : (n,) float32
    n_samples : int
    mode : {"loudest", "start"}
        How to cut a longer signal: keep the ``n_samples`` window holding the most energy
        (a word inside a longer recording), or the first ``n_samples``.
    """
    n = len(signal)
    if n == n_samples:
        return signal.astype(np.float32, copy=False)
    if n < n_samples:
        return np.pad(signal, (0, n_samples - n)).astype(np.float32)
    if mode == "start":
        return signal[:n_samples].astype(np.float32)
    energy = np.concatenate([[0.0], np.cumsum(signal.astype(np.float64) ** 2)])
    win = energy[n_samples:] - energy[:-n_samples]
    start = int(np.argmax(win))
    return signal[start:start + n_samples].astype(np.float32)


def read_audio(path: str | Path, sample_rate: int = 16000, n_samples: int | None = None) -> np.ndarray:
    """Read an audio file as float32 mono PCM in [-1, 1] at ``sample_rate``.

    Parameters
    ----------
    path : file path (any format libsndfile reads: WAV, FLAC, OGG, ...)
    sample_rate : int
        Output rate in Hz; other rates are resampled with torchaudio.
    n_samples : int or None
        If given, pad with zeros or cut (keeping the loudest window) to this many samples.

    Returns
    -------
    (n_samples,) float32

    Raises
    ------
    DataError
        The file is missing, unreadable, empty or not audio.
    """
    path = Path(path)
    try:
        pcm, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, OSError, RuntimeError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read audio ({reason}); is it a WAV/FLAC file?") from None
    if pcm.shape[0] == 0:
        raise DataError(f"{path}: audio file holds no samples")
    x = resample(pcm.mean(axis=1), rate, sample_rate)
    if n_samples is not None:
        x = fit_length(x, n_samples)
    return x


def trim_silence(signal: np.ndarray, sample_rate: int = 16000, threshold_db: float = -40.0,
                 pad_s: float = 0.02) -> np.ndarray:
    """Cut leading and trailing parts quieter than ``threshold_db`` below the peak (10 ms frames)."""
    frame = max(1, sample_rate // 100)
    n = len(signal) // frame
    if n == 0:
        return signal
    rms = np.sqrt(np.mean(signal[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)) + 1e-12
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    pad = int(pad_s * sample_rate)
    start = max(0, loud[0] * frame - pad)
    stop = min(len(signal), (loud[-1] + 1) * frame + pad)
    return signal[start:stop]


def write_flac(path: Path, signal: np.ndarray, sample_rate: int) -> None:
    """Write float PCM as 16-bit FLAC (``path`` gets a temporary name first, then is renamed into place)."""
    tmp = path.with_name(path.name + ".part")
    sf.write(tmp, np.clip(signal, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    tmp.replace(path)
