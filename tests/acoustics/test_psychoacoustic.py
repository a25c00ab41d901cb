"""The masking threshold (MPEG-1 model 1 style, Qin et al. 2019) on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics.psychoacoustic import (
    MaskingModel,
    absolute_threshold_db,
    bark,
    frame_count,
    masking_margin,
    masking_threshold,
)

FS = 16000


def _tone(freq_hz: float, amp: float = 0.5, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(FS * seconds)) / FS
    return amp * np.sin(2 * np.pi * freq_hz * t)


@pytest.mark.parametrize("freq_hz", [500.0, 1000.0, 3000.0])
def test_threshold_of_a_pure_tone_peaks_at_the_tone_and_falls_on_both_sides(freq_hz):
    m = masking_threshold(_tone(freq_hz))
    f = m.model.freqs_hz
    k0 = int(round(freq_hz / f[1]))
    z = bark(f)
    for frame in m.threshold_db[1:-1]:          # the edge frames see half a window of tone
        finite = np.where(np.isfinite(frame), frame, -np.inf)
        assert abs(int(np.argmax(finite)) - k0) <= 1
        peak = frame[k0]
        # within 3 Bark of the tone the threshold falls monotonically on both sides ...
        below = np.nonzero((z < z[k0]) & (z > z[k0] - 3))[0]
        above = np.nonzero((z > z[k0]) & (z < z[k0] + 3))[0]
        assert np.all(np.diff(frame[below]) >= -1e-9)
        assert np.all(np.diff(frame[above]) <= 1e-9)
        # ... by many dB, and the upper slope is shallower than the lower one (27 dB/Bark)
        lo = frame[np.argmin(np.abs(z - (z[k0] - 1.5)))]
        hi = frame[np.argmin(np.abs(z - (z[k0] + 1.5)))]
        assert peak - lo > 25.0 and peak - hi > 5.0   # upper: ~6 dB/Bark at 96 dB
        assert peak - lo > peak - hi


def test_threshold_is_the_absolute_threshold_of_hearing_in_silence_and_far_from_the_tone():
    m = masking_threshold(np.concatenate([_tone(1000.0, seconds=0.5), np.zeros(FS // 2)]))
    ath = absolute_threshold_db(m.model.freqs_hz)
    ok = np.isfinite(ath)
    np.testing.assert_allclose(m.threshold_db[-1, ok], ath[ok], atol=1e-6)
    # during the tone, 150 Hz is 7 Bark below it (27 dB/Bark): only the ATH is left there
    k = int(round(150 / m.model.freqs_hz[1]))
    assert abs(m.threshold_db[2, k] - ath[k]) < 0.5


def test_psd_is_normalised_to_96_db_at_the_clip_peak_whatever_its_level():
    loud, quiet = masking_threshold(_tone(1000.0, 0.9)), masking_threshold(_tone(1000.0, 0.01))
    assert loud.psd_db.max() == pytest.approx(96.0)
    assert quiet.psd_db.max() == pytest.approx(96.0)
    np.testing.assert_allclose(loud.threshold_db[3, 100:200], quiet.threshold_db[3, 100:200], atol=1e-6)


def test_white_noise_masks_just_below_its_own_level():
    rng = np.random.default_rng(0)
    m = masking_threshold(0.1 * rng.standard_normal(FS))
    diff = np.median(m.threshold_db[:, 50:900] - m.psd_db[:, 50:900])
    assert -8.0 < diff < 0.0


def test_masking_margin_sign_and_frames_above():
    x = _tone(1000.0)
    m = masking_threshold(x)
    # a quiet tone next to the masker is masked; the same tone 60 dB louder is not
    _, k = masking_margin(m, np.zeros_like(x))
    assert not k.any()
    quiet_margin, quiet_above = masking_margin(m, _tone(1100.0, 0.5 * 10 ** (-60 / 20)))
    loud_margin, loud_above = masking_margin(m, _tone(1100.0, 0.5))
    assert quiet_margin < 0 and not quiet_above.any()
    assert loud_margin > 0 and loud_above.all()


def test_frames_cover_the_whole_clip():
    model = MaskingModel(FS, 256, 64)
    assert frame_count(1000, 256, 64) == 1 + -(-(1000 - 256) // 64)
    assert model.frames(np.ones(1000)).shape == (frame_count(1000, 256, 64), 256)
    assert model.frames(np.ones(100)).shape == (1, 256)
    with pytest.raises(ValueError):
        MaskingModel(FS, 256, 0)
