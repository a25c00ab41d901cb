"""Audio encoding of the store: 24-bit FLAC captures, exact float32 WAVs, verified reads."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import soundfile as sf


def flac_bytes(signal: np.ndarray, sample_rate: int) -> bytes:
    """``signal`` float32 (n_samples,) as 24-bit FLAC bytes (clipped to [-1, 1]).

    Raises ValueError for NaN or inf samples (the encoder would fail on them or store garbage);
    the writer turns such a trial into a failed one before it gets here."""
    x = np.asarray(signal, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{int(x.size - np.count_nonzero(np.isfinite(x)))} non-finite sample(s): not encoded")
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def wav_float_bytes(signal: np.ndarray, sample_rate: int) -> bytes:
    """``signal`` float32 (n_samples,) as an exact float32 WAV."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(signal, dtype=np.float32), sample_rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of ``data`` (what the store records for every audio file)."""
    return hashlib.sha256(data).hexdigest()


def read_float(path: Path) -> np.ndarray:
    """A stored float32 WAV or FLAC as float32 (n_samples,) (errors from soundfile pass through)."""
    sig, _ = sf.read(path, dtype="float32")
    return sig


def read_float_or_none(path: Path) -> np.ndarray | None:
    """Like :func:`read_float`, but ``None`` when the file is missing or damaged."""
    if not path.is_file():
        return None
    try:
        return read_float(path)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None


def cached_signal(path: Path, sha256: str | None) -> np.ndarray | None:
    """A cached float32 WAV (n_samples,), or ``None`` when it is missing, unreadable, empty, holds
    non-finite samples, or (when ``sha256`` is known) is not the bytes that were written."""
    if sha256 is not None:
        _, problem = file_problem(path, sha256)
        if problem:
            return None
    sig = read_float_or_none(path)
    if sig is None or sig.size == 0 or not np.isfinite(sig).all():
        return None
    return sig


def file_problem(path: Path, sha256: str) -> tuple[bytes | None, str | None]:
    """``(bytes, None)`` when ``path`` holds what was recorded, else ``(None, problem)``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if sha256_hex(data) != sha256:
        return None, "content changed since it was recorded (sha256 mismatch)"
    return data, None


def read_verified(path: Path, sha256: str) -> tuple[np.ndarray | None, str | None]:
    """A recorded capture, first channel float32 (n_samples,), checked against its sha256.

    Returns ``(signal, None)``, or ``(None, problem)`` when it is missing, altered or unreadable.
    """
    data, problem = file_problem(path, sha256)
    if data is None:
        return None, problem
    try:
        sig, _ = sf.read(io.BytesIO(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as exc:
        return None, f"not a readable FLAC: {exc}"
    return (sig if sig.ndim == 1 else sig[:, 0]), None
