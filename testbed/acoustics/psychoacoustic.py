"""Psychoacoustic masking threshold, MPEG-1 psychoacoustic model 1 style, per STFT frame.

What a listener cannot hear under a given sound: the global masking threshold of Qin et al.
2019 ("Imperceptible, robust and targeted adversarial examples for automatic speech
recognition"), after ISO/IEC 11172-3 model 1:

1. PSD per frame (periodic Hann window, no centring), normalised so that the loudest bin of
   the whole clip sits at 96 dB SPL (the 16-bit full-scale convention of model 1);
2. tonal maskers: local maxima at least 7 dB above their neighbours at +-2 bins (+-2..3 bins
   above 5.5 kHz, +-2..6 above 11 kHz), power summed over the peak and its two neighbours;
   non-tonal maskers: the remaining power of each critical band (integer Bark), as a mean
   per bin (thresholds are compared bin by bin), placed at the band's power-weighted centre;
3. maskers below the absolute threshold of hearing (ATH) dropped, and of two maskers within
   0.5 Bark the weaker dropped;
4. each masker spreads over the Bark scale with Qin's two-slope function (27 dB/Bark below;
   ``-27 + 0.37 max(P - 40, 0)`` dB/Bark above), offset by ``-6.025 - 0.275 z`` (tonal) or
   ``-2.025 - 0.175 z`` (non-tonal) dB;
5. the global threshold per bin is the power sum of every masker's threshold and the ATH.

Pure numpy: no torch. :mod:`testbed.attacks.masking` computes the perturbation's PSD in torch
with the same framing and scale (:func:`frame_count`, :func:`pad_for_frames`, :data:`PSD_GAIN`).
Thresholds are relative to the clip's own peak (the model's convention), not to a calibrated
SPL: a quiet clip has the same threshold shape as a loud one, with the ATH floor moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Level, dB SPL, the loudest bin of a clip is normalised to.
REFERENCE_DB = 96.0
#: sqrt(8/3): the Hann window's power loss, as in model 1 and Qin et al.
PSD_GAIN = math.sqrt(8.0 / 3.0)
#: Floor added to the power before the log. Far below Qin et al.'s float32 epsilon (-69 dB re
#: full scale), which would count an all-zero stretch as a -69 dB noise floor and, through the
#: non-tonal maskers, as a masker.
PSD_FLOOR = 1e-20
#: A tonal masker stands this many dB above its neighbours.
TONAL_DB = 7.0
#: Of two maskers closer than this (Bark), the weaker is dropped.
MIN_MASKER_DISTANCE_BARK = 0.5


def bark(freqs_hz: np.ndarray) -> np.ndarray:
    """Critical-band rate (Bark) of frequencies in Hz (Zwicker and Terhardt)."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    return 13.0 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500.0) ** 2)


def absolute_threshold_db(freqs_hz: np.ndarray) -> np.ndarray:
    """Absolute threshold of hearing (Terhardt), dB SPL; ``inf`` outside 20 Hz - 20 kHz."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    out = np.full(f.shape, np.inf)
    ok = (f >= 20.0) & (f <= 20000.0)
    k = f[ok] / 1000.0
    out[ok] = 3.64 * k ** -0.8 - 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k ** 4 - 12.0
    return out


def frame_count(n_samples: int, window: int, hop: int) -> int:
    """Frames of a clip of ``n_samples`` after :func:`pad_for_frames` (at least one)."""
    return 1 + max(0, -(-(n_samples - window) // hop))


def pad_for_frames(n_samples: int, window: int, hop: int) -> int:
    """Zeros appended so that the frames cover every sample of the clip."""
    return window + (frame_count(n_samples, window, hop) - 1) * hop - n_samples


def hann(window: int) -> np.ndarray:
    """Periodic Hann window of ``window`` samples (float64)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)


@dataclass(frozen=True)
class MaskingModel:
    """STFT layout of the model.

    Parameters
    ----------
    sample_rate : Hz
    window : samples per frame (Qin et al.: 2048 at 16 kHz)
    hop : samples between frames (Qin et al.: 512)
    """

    sample_rate: int = 16000
    window: int = 2048
    hop: int = 512

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.window < 8 or not 0 < self.hop <= self.window:
            raise ValueError(f"masking model: need sample_rate > 0, window >= 8 and 0 < hop <= window, "
                             f"got {self.sample_rate}, {self.window}, {self.hop}")

    @property
    def freqs_hz(self) -> np.ndarray:
        """Bin centre frequencies (window // 2 + 1,), Hz."""
        return np.arange(self.window // 2 + 1) * (self.sample_rate / self.window)

    def frames(self, x: np.ndarray) -> np.ndarray:
        """Windowed frames (..., n_frames, window) of signals (..., S), zero-padded at the end."""
        x = np.asarray(x, dtype=np.float64)
        pad = pad_for_frames(x.shape[-1], self.window, self.hop)
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
        view = np.lib.stride_tricks.sliding_window_view(x, self.window, axis=-1)[..., ::self.hop, :]
        return view * hann(self.window)

    def raw_psd_db(self, x: np.ndarray) -> np.ndarray:
        """Un-normalised PSD (..., n_frames, n_bins), dB re full scale."""
        spec = np.fft.rfft(self.frames(x), axis=-1)
        power = np.abs(PSD_GAIN * spec / self.window) ** 2
        return 10.0 * np.log10(power + PSD_FLOOR)


@dataclass(frozen=True)
class MaskingThreshold:
    """The global masking threshold of one clip.

    Attributes
    ----------
    threshold_db : float64 (n_frames, n_bins), dB SPL (clip peak bin = 96 dB)
    psd_db : float64 (n_frames, n_bins), the clip's normalised PSD, dB SPL
    psd_max_db : float, the clip's un-normalised peak (dB re full scale); a perturbation's
        PSD is normalised with it (``REFERENCE_DB - psd_max_db + raw``) to compare with the threshold
    model : MaskingModel
    """

    threshold_db: np.ndarray
    psd_db: np.ndarray
    psd_max_db: float
    model: MaskingModel

    def perturbation_psd_db(self, delta: np.ndarray) -> np.ndarray:
        """PSD (n_frames', n_bins) of perturbation ``delta`` (S,) on this clip's scale, dB SPL."""
        return REFERENCE_DB - self.psd_max_db + self.model.raw_psd_db(delta)


def _tonal_offsets(freqs_hz: np.ndarray, n_bins: int) -> list[tuple[int, np.ndarray]]:
    """(offset, bins where it applies) pairs of model 1's neighbourhood rule."""
    out = []
    for d in range(2, 7):
        lo_hz = 0.0 if d == 2 else (5500.0 if d == 3 else 11000.0)
        out.append((d, np.nonzero(freqs_hz >= lo_hz)[0]))
    return [(d, k[(k >= d) & (k < n_bins - d)]) for d, k in out if k.size]


def _maskers(psd: np.ndarray, z: np.ndarray, ath: np.ndarray, offsets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masker (power dB, bin, is_tonal) of one frame's PSD (n_bins,), after the ATH and
    distance filters."""
    n = psd.shape[0]
    k = np.arange(1, n - 1)
    local = k[(psd[k] > psd[k - 1]) & (psd[k] >= psd[k + 1])]
    tonal = np.zeros(n, dtype=bool)
    tonal[local] = True
    for d, bins in offsets:
        cond = np.ones(n, dtype=bool)
        cond[bins] = (psd[bins] - psd[bins - d] >= TONAL_DB) & (psd[bins] - psd[bins + d] >= TONAL_DB)
        tonal &= cond
    tonal[:2] = False
    tonal[n - 2:] = False
    lin = 10.0 ** (psd / 10.0)
    t_bins = np.nonzero(tonal)[0]
    t_pow = lin[t_bins - 1] + lin[t_bins] + lin[t_bins + 1]
    # non-tonal: what is left of each critical band once the tonal peaks' neighbourhoods are removed
    used = np.zeros(n, dtype=bool)
    for b in t_bins:
        used[max(0, b - 6):b + 7] = True
    rest = np.where(used, 0.0, lin)
    band = np.floor(z).astype(int)
    n_pow = np.bincount(band, weights=rest)
    n_centre = np.bincount(band, weights=rest * np.arange(n))
    n_free = np.bincount(band, weights=(~used).astype(float))
    keep = n_pow > 0
    nt_bins = np.rint(n_centre[keep] / n_pow[keep]).astype(int)
    # per-bin level (the band's mean), since thresholds are compared bin by bin: the band's sum
    # would put a noise masker 10 log10(bins per band) dB (~20 dB at 2048 points) too high
    nt_pow = n_pow[keep] / n_free[keep]
    power = 10.0 * np.log10(np.concatenate([t_pow, nt_pow]))
    bins = np.concatenate([t_bins, nt_bins])
    is_tonal = np.concatenate([np.ones(t_bins.size, bool), np.zeros(nt_bins.size, bool)])
    ok = power >= ath[bins]
    power, bins, is_tonal = power[ok], bins[ok], is_tonal[ok]
    order = np.argsort(bins, kind="stable")
    power, bins, is_tonal = power[order], bins[order], is_tonal[order]
    alive = np.ones(bins.size, dtype=bool)
    prev = -1
    for i in range(bins.size):
        if prev >= 0 and z[bins[i]] - z[bins[prev]] < MIN_MASKER_DISTANCE_BARK:
            if power[i] > power[prev]:
                alive[prev] = False
                prev = i
            else:
                alive[i] = False
        else:
            prev = i
    return power[alive], bins[alive], is_tonal[alive]


def _global_threshold(power: np.ndarray, bins: np.ndarray, is_tonal: np.ndarray, z: np.ndarray,
                      ath: np.ndarray) -> np.ndarray:
    """Global threshold (n_bins,), dB: power sum of the maskers' individual thresholds and the ATH."""
    zj = z[bins][:, None]
    dz = z[None, :] - zj
    upper = (-27.0 + 0.37 * np.maximum(power - 40.0, 0.0))[:, None]
    spread = np.where(dz <= 0, 27.0 * dz, upper * dz)
    offset = np.where(is_tonal, -6.025 - 0.275 * z[bins], -2.025 - 0.175 * z[bins])[:, None]
    individual = power[:, None] + offset + spread
    total = np.sum(10.0 ** (individual / 10.0), axis=0) + 10.0 ** (ath / 10.0)
    return 10.0 * np.log10(total)


def masking_threshold(x: np.ndarray, model: MaskingModel | None = None) -> MaskingThreshold:
    """Global masking threshold of clip ``x`` (S,) per frame and bin.

    Parameters
    ----------
    x : float (S,), PCM in [-1, 1]: the command as heard at the DUT mic
    model : MaskingModel (default: 16 kHz, 2048-sample window, hop 512)

    Returns
    -------
    MaskingThreshold with ``threshold_db`` (n_frames, window // 2 + 1), dB SPL
    """
    model = model or MaskingModel()
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    raw = model.raw_psd_db(x)
    peak = float(raw.max())
    psd = REFERENCE_DB - peak + raw
    f = model.freqs_hz
    z = bark(f)
    ath = absolute_threshold_db(f)
    offsets = _tonal_offsets(f, f.size)
    thr = np.empty_like(psd)
    for i in range(psd.shape[0]):
        thr[i] = _global_threshold(*_maskers(psd[i], z, ath, offsets), z, ath)
    return MaskingThreshold(thr, psd, peak, model)


def masking_margin(threshold: MaskingThreshold, delta: np.ndarray) -> tuple[float, np.ndarray]:
    """How far perturbation ``delta`` (S,) pokes above ``threshold``.

    Returns
    -------
    margin_db : float, max over frames and bins of the perturbation's PSD minus the threshold
        (negative: under the threshold everywhere)
    above : bool (n_frames,), frames where some bin of the perturbation is above the threshold
    """
    p = threshold.perturbation_psd_db(np.asarray(delta, dtype=np.float64).reshape(-1))
    t = threshold.threshold_db
    n = min(p.shape[0], t.shape[0])
    diff = p[:n] - t[:n]
    per_frame = diff.max(axis=1)
    return float(per_frame.max()), per_frame > 0.0
