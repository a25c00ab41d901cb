"""The A-weighting filter against IEC 61672-1's table, and levels in dB SPL."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics.weighting import a_weight, a_weighting_db, levels, rms_dbfs, spl_db

#: IEC 61672-1:2013 Table 3, A-weighting, dB (nominal frequencies).
IEC_A = {31.5: -39.4, 63: -26.2, 100: -19.1, 125: -16.1, 250: -8.6, 500: -3.2, 1000: 0.0,
         2000: 1.2, 4000: 1.0, 6300: -0.1, 8000: -1.1, 10000: -2.5}


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_a_weighting_matches_the_iec_table(sample_rate):
    freqs = np.array([f for f in IEC_A if f <= 0.25 * sample_rate])
    got = a_weighting_db(freqs, sample_rate)
    want = np.array([IEC_A[f] for f in freqs])
    assert len(freqs) >= 9
    assert np.max(np.abs(got - want)) < 0.5, dict(zip(freqs, np.round(got - want, 2)))
    assert a_weighting_db(np.array([1000.0]), sample_rate)[0] == pytest.approx(0.0, abs=1e-6)


def test_a_weighted_sines_read_their_table_value_and_spl_follows_the_calibration():
    sr = 48000
    t = np.arange(sr) / sr
    for f, want in ((100, -19.1), (1000, 0.0), (8000, -1.1)):
        x = 0.1 * np.sin(2 * np.pi * f * t)
        db, dba = rms_dbfs(x), rms_dbfs(a_weight(x, sr)[sr // 4:])
        assert dba - db == pytest.approx(want, abs=0.5), f
    # a mic reading -30 dBFS at 94 dB SPL hears a -40 dBFS RMS tone as 84 dB SPL
    assert spl_db(-40.0, -30.0) == pytest.approx(84.0)
    x = 0.1 * np.sin(2 * np.pi * 1000 * t)
    assert levels(x, sr)[0] == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=1e-3)
