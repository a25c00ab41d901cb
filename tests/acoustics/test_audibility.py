"""Audibility metrics: levels, loudness (ITU-R BS.1770 via pyloudnorm), A-weighting, masking margin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from testbed.acoustics.audibility import (
    AUDIBILITY_KEYS,
    a_weighted_dbfs,
    audibility,
    loudness_lufs,
    rms_dbfs,
    snr_db,
    summarise,
)

FS = 16000


def _sine(freq_hz: float, rms_db: float, seconds: float = 2.0, fs: int = FS) -> np.ndarray:
    t = np.arange(int(fs * seconds)) / fs
    return 10 ** (rms_db / 20) * math.sqrt(2) * np.sin(2 * np.pi * freq_hz * t)


def test_a_minus_23_lufs_reference_tone_measures_minus_23_lufs():
    tone = _sine(1000.0, -23.0)
    assert rms_dbfs(tone) == pytest.approx(-23.0, abs=0.01)
    assert loudness_lufs(tone, FS) == pytest.approx(-23.0, abs=0.5)
    assert loudness_lufs(_sine(1000.0, -33.0), FS) == pytest.approx(-33.0, abs=0.5)


def test_short_clip_is_looped_to_the_gating_block():
    assert loudness_lufs(_sine(1000.0, -23.0, seconds=0.2), FS) == pytest.approx(-23.0, abs=0.5)
    assert loudness_lufs(np.zeros(FS), FS) == -math.inf


def test_a_weighting_is_0_db_at_1_khz_and_minus_19_db_at_100_hz():
    assert a_weighted_dbfs(_sine(1000.0, -20.0), FS) == pytest.approx(-20.0, abs=0.1)
    assert a_weighted_dbfs(_sine(100.0, -20.0), FS) == pytest.approx(-20.0 - 19.1, abs=0.3)


def test_snr_and_spl_follow_the_levels():
    cmd, pert = _sine(500.0, -20.0), _sine(3000.0, -50.0)
    assert snr_db(cmd, pert) == pytest.approx(30.0, abs=0.05)
    assert snr_db(cmd, np.zeros_like(cmd)) == math.inf
    a = audibility(cmd, pert, FS, dbfs_at_94_db_spl=-30.0)
    assert set(a) == set(AUDIBILITY_KEYS)
    assert a["level_dbfs"] == pytest.approx(-50.0, abs=0.01)
    assert a["level_db_spl"] == pytest.approx(-50.0 + 30.0 + 94.0, abs=0.01)
    assert audibility(cmd, pert, FS)["level_db_spl"] is None


def test_masking_margin_separates_a_masked_from_an_audible_perturbation():
    cmd = _sine(1000.0, -10.0)
    masked = audibility(cmd, _sine(1100.0, -75.0), FS)
    audible = audibility(cmd, _sine(4000.0, -30.0), FS)
    assert masked["masking_margin_db"] < 0 and masked["frames_above"] == 0.0
    assert audible["masking_margin_db"] > 0 and audible["frames_above"] == 1.0
    s = summarise(np.stack([cmd, cmd]), np.stack([_sine(1100.0, -75.0), _sine(4000.0, -30.0)]), FS)
    assert s["frames_above"] == pytest.approx(0.5)
    assert s["snr_db"] == pytest.approx((65.0 + 20.0) / 2, abs=0.1)
