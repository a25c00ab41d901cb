"""How audible a perturbation is at the DUT mic: SNR, level, loudness and masking margin.

Pure numpy/scipy (plus ``pyloudnorm`` for ITU-R BS.1770 loudness). Every function takes the
perturbation *as heard at the mic* (digital attacks: ``x_adv - x``; over the air: the capture
minus the clean capture) and the command as heard at the same mic.

Levels: ``level_dbfs`` is the RMS re digital full scale (amplitude 1.0), so a full-scale sine
reads -3.01 dBFS and a sine whose RMS is -23 dBFS measures -23 LUFS. Where the mic's
sensitivity is known as the dBFS reading of a 94 dB SPL tone (``dbfs_at_94_db_spl``), the level
is also given in dB SPL.
"""

from __future__ import annotations

import math
import numpy as np
from scipy import signal

from testbed.acoustics.psychoacoustic import MaskingModel, masking_margin, masking_threshold

#: Keys of :func:`audibility`'s dict (and of the ``attack eval`` columns it fills).
AUDIBILITY_KEYS = ("snr_db", "level_dbfs", "level_db_spl", "level_dba", "loudness_lufs",
                   "masking_margin_db", "frames_above")
#: pyloudnorm's gating block: shorter signals are looped up to it.
_LOUDNESS_BLOCK_S = 0.4


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` (S,) re full scale, dB; ``-inf`` for silence."""
    x = np.asarray(x, dtype=np.float64)
    ms = float(np.mean(x * x)) if x.size else 0.0
    return 10.0 * math.log10(ms) if ms > 0 else -math.inf


def snr_db(command: np.ndarray, perturbation: np.ndarray) -> float:
    """Command energy over perturbation energy, dB; ``inf`` for an all-zero perturbation."""
    c = np.asarray(command, dtype=np.float64)
    p = np.asarray(perturbation, dtype=np.float64)
    ep, ec = float(np.sum(p * p)), float(np.sum(c * c))
    if ep == 0:
        return math.inf
    return 10.0 * math.log10(ec / ep) if ec > 0 else -math.inf


def a_weighting_sos(sample_rate: int) -> np.ndarray:
    """IEC 61672 A-weighting as second-order sections at ``sample_rate`` Hz (0 dB at 1 kHz)."""
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    w = [2 * math.pi * f for f in (f1, f2, f3, f4)]
    zeros = [0.0] * 4
    poles = [-w[0], -w[0], -w[1], -w[2], -w[3], -w[3]]
    z, p, k = signal.bilinear_zpk(zeros, poles, 1.0, sample_rate)
    sos = signal.zpk2sos(z, p, k)
    _, h = signal.sosfreqz(sos, worN=[1000.0], fs=sample_rate)
    sos[0, :3] /= abs(h[0])
    return sos


def a_weighted_dbfs(x: np.ndarray, sample_rate: int) -> float:
    """A-weighted RMS level of ``x`` (S,) re full scale, dB(A)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.any(x):
        return -math.inf
    return rms_dbfs(signal.sosfilt(a_weighting_sos(sample_rate), x))


def loudness_lufs(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of mono ``x`` (S,), LUFS (ITU-R BS.1770-4, K-weighted, gated).

    Signals shorter than the 400 ms gating block are looped up to it (a keyword clip played
    once is shorter than some blocks). ``-inf`` for silence.
    """
    import pyloudnorm

    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.any(x):
        return -math.inf
    need = int(math.ceil(_LOUDNESS_BLOCK_S * sample_rate)) + 1
    if x.size < need:
        x = np.tile(x, -(-need // x.size))
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x))


def audibility(command: np.ndarray, perturbation: np.ndarray, sample_rate: int, *,
               dbfs_at_94_db_spl: float | None = None, model: MaskingModel | None = None) -> dict:
    """Audibility metrics of one perturbation against one command, both as heard at the mic.

    Parameters
    ----------
    command, perturbation : float (S,), PCM at the DUT mic
    sample_rate : Hz
    dbfs_at_94_db_spl : the mic's reading (dBFS RMS) of a 94 dB SPL tone, or None
    model : masking model (default :func:`default_masking_model` for ``sample_rate``)

    Returns
    -------
    dict with :data:`AUDIBILITY_KEYS`: ``snr_db``, ``level_dbfs`` (RMS), ``level_db_spl`` (None
    without a sensitivity), ``level_dba`` (A-weighted, dB re full scale), ``loudness_lufs``,
    ``masking_margin_db`` (max over frames and bins of the perturbation's PSD minus the
    command's masking threshold; < 0: masked everywhere) and ``frames_above`` (fraction of
    frames with some bin above the threshold).
    """
    c = np.asarray(command, dtype=np.float64).reshape(-1)
    p = np.asarray(perturbation, dtype=np.float64).reshape(-1)
    level = rms_dbfs(p)
    model = model or default_masking_model(sample_rate)
    if np.any(c):
        margin, above = masking_margin(masking_threshold(c, model), p)
        frac = float(np.mean(above)) if above.size else math.nan
    else:
        margin, frac = math.nan, math.nan
    return {
        "snr_db": snr_db(c, p),
        "level_dbfs": level,
        "level_db_spl": None if dbfs_at_94_db_spl is None else level - float(dbfs_at_94_db_spl) + 94.0,
        "level_dba": a_weighted_dbfs(p, sample_rate),
        "loudness_lufs": loudness_lufs(p, sample_rate),
        "masking_margin_db": margin,
        "frames_above": frac,
    }


def default_masking_model(sample_rate: int) -> MaskingModel:
    """Qin et al.'s layout scaled to ``sample_rate``: 128 ms windows (2048 at 16 kHz), hop 1/4."""
    window = 1 << max(3, int(round(math.log2(0.128 * sample_rate))))
    return MaskingModel(sample_rate=int(sample_rate), window=window, hop=window // 4)


def summarise(commands: np.ndarray, perturbations: np.ndarray, sample_rate: int, *,
              dbfs_at_94_db_spl: float | None = None, model: MaskingModel | None = None) -> dict:
    """Mean of :func:`audibility` over clips (n, S), finite values only; ``frames_above`` is the
    mean of the clips' fractions, ``masking_margin_db`` the median over clips."""
    return AudibilityMeter(commands, sample_rate, dbfs_at_94_db_spl=dbfs_at_94_db_spl, model=model)(perturbations)


class AudibilityMeter:
    """:func:`summarise` for many perturbations of the same commands, thresholds computed once.

    Parameters
    ----------
    commands : float (n, S), the commands as heard at the DUT mic
    sample_rate : Hz
    dbfs_at_94_db_spl : the mic's sensitivity (see :func:`audibility`), or None
    model : masking model (default :func:`default_masking_model`)

    Example
    -------
    >>> meter = AudibilityMeter(x, 16000)
    >>> meter(x_adv - x)["frames_above"]
    """

    def __init__(self, commands: np.ndarray, sample_rate: int, *, dbfs_at_94_db_spl: float | None = None,
                 model: MaskingModel | None = None) -> None:
        self.commands = np.asarray(commands, dtype=np.float64)
        self.sample_rate = int(sample_rate)
        self.dbfs_at_94_db_spl = dbfs_at_94_db_spl
        self.model = model or default_masking_model(self.sample_rate)
        self._thresholds: list | None = None

    def thresholds(self) -> list:
        """The commands' :class:`MaskingThreshold` (None for a silent command), computed on first use."""
        if self._thresholds is None:
            self._thresholds = [masking_threshold(c, self.model) if np.any(c) else None for c in self.commands]
        return self._thresholds

    def __call__(self, perturbations: np.ndarray, rows: np.ndarray | None = None) -> dict:
        """Audibility of ``perturbations`` (k, S) against commands ``rows`` (k,) (default: all, in order):
        the means of :data:`AUDIBILITY_KEYS` as :func:`summarise` gives them."""
        return self.reduce(self.per_clip(perturbations, rows))

    def reduce(self, clips: dict[str, list]) -> dict:
        """The summary :meth:`__call__` gives, from :meth:`per_clip`'s values."""
        return _reduce(clips, self.dbfs_at_94_db_spl is not None)

    def per_clip(self, perturbations: np.ndarray, rows: np.ndarray | None = None) -> dict[str, list]:
        """:data:`AUDIBILITY_KEYS` -> one value per perturbation (k,), unreduced; NaN where the
        command is silent (no threshold), None for ``level_db_spl`` without a sensitivity."""
        p = np.asarray(perturbations, dtype=np.float64)
        idx = np.arange(len(self.commands)) if rows is None else np.asarray(rows)
        thr = self.thresholds()
        out = {k: [] for k in AUDIBILITY_KEYS}
        for i, pi in zip(idx, p):
            c = self.commands[i]
            level = rms_dbfs(pi)
            out["snr_db"].append(snr_db(c, pi))
            out["level_dbfs"].append(level)
            out["level_db_spl"].append(None if self.dbfs_at_94_db_spl is None
                                       else level - float(self.dbfs_at_94_db_spl) + 94.0)
            out["level_dba"].append(a_weighted_dbfs(pi, self.sample_rate))
            out["loudness_lufs"].append(loudness_lufs(pi, self.sample_rate))
            if thr[i] is None:
                out["masking_margin_db"].append(math.nan)
                out["frames_above"].append(math.nan)
            else:
                margin, above = masking_margin(thr[i], pi)
                out["masking_margin_db"].append(margin)
                out["frames_above"].append(float(np.mean(above)) if above.size else math.nan)
        return out


def _reduce(values: dict, has_spl: bool) -> dict:
    """Means of the finite values per key (the median for the masking margin)."""
    out: dict = {}
    for key in AUDIBILITY_KEYS:
        if key == "level_db_spl" and not has_spl:
            out[key] = None
            continue
        vals = np.array(values[key], dtype=np.float64)
        fin = vals[np.isfinite(vals)]
        if key == "masking_margin_db":
            out[key] = float(np.median(fin)) if fin.size else math.nan
        else:
            out[key] = float(fin.mean()) if fin.size else (float(vals[0]) if vals.size else math.nan)
    return out
