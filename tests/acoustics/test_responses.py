"""Loudspeaker models and mic tiers: shapes that really differ, CSV responses, errors."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics import MIC_TIER_MODELS, mic_facts, mic_response_db, speaker_response_db
from testbed.errors import RigError
from testbed.rig import MIC_TIERS, SPEAKER_MODELS, load_rig

F = np.array([50.0, 100.0, 200.0, 1000.0, 3200.0, 6000.0, 7500.0])


def test_every_schema_tier_and_speaker_has_a_model():
    for t in MIC_TIERS:
        assert mic_response_db(t, F).shape == F.shape
    for s in SPEAKER_MODELS:
        assert speaker_response_db(s, F).shape == F.shape


def test_tiers_differ_where_the_issue_says():
    db = {t: dict(zip(F, mic_response_db(t, F))) for t in MIC_TIERS}
    assert all(v == 0 for v in db["reference"].values())
    assert db["electret-cheap"][100.0] < -12 and db["electret-cheap"][3200.0] > 4
    assert db["electret-cheap"][7500.0] < -15
    assert db["smartphone"][50.0] < -20 and db["smartphone"][7500.0] < -5
    assert abs(db["smartphone"][1000.0]) < 1
    assert abs(db["mems"][1000.0]) < 1 and db["mems"][6000.0] > 1
    cheap, ref = MIC_TIER_MODELS["electret-cheap"], MIC_TIER_MODELS["reference"]
    assert cheap.bits < ref.bits and cheap.self_noise_dba > ref.self_noise_dba + 20


def test_speaker_models():
    flat = speaker_response_db("flat", F)
    book = speaker_response_db("small-bookshelf", F)
    phone = speaker_response_db("phone-speaker", F)
    assert np.all(flat == 0)
    assert book[0] < -3 and abs(book[3]) < 1.5          # 80 Hz high-pass, mild ripple
    assert phone[1] < -20 and phone[-1] < -3             # 300 Hz - 7 kHz


def test_csv_response_interpolates_in_log_frequency_relative_to_the_rig(tmp_path, office_rig_path):
    (tmp_path / "m.csv").write_text("hz,db\n100,-10\n1000,0\n10000,10\n")
    text = office_rig_path.read_text().replace('tier = "smartphone"', 'tier = "m.csv"')
    (tmp_path / "rig.toml").write_text(text)
    rig = load_rig(tmp_path / "rig.toml")
    got = mic_response_db("m.csv", np.array([50.0, 100.0, np.sqrt(1e5), 1000.0, 3162.3, 20000.0]), rig)
    assert got == pytest.approx([-10, -10, -5, 0, 5, 10], abs=0.01)
    assert mic_facts(rig.mics["phone"]).bits == 16


def test_overrides_win_over_tier_defaults(office_rig_path, tmp_path):
    text = office_rig_path.read_text().replace('clock_ppm = 40', 'clock_ppm = 40\nbits = 8\nsensitivity_dbfs_per_pa = -10')
    (tmp_path / "rig.toml").write_text(text)
    f = mic_facts(load_rig(tmp_path / "rig.toml").mics["cheap"])
    assert (f.bits, f.sensitivity_dbfs_per_pa, f.clock_ppm) == (8, -10, 40)
    assert f.self_noise_dba == MIC_TIER_MODELS["electret-cheap"].self_noise_dba


def test_unknown_models_raise_rig_errors(tmp_path):
    with pytest.raises(RigError, match="unknown mic tier 'gold'"):
        mic_response_db("gold", F)
    with pytest.raises(RigError, match="unknown speaker model"):
        speaker_response_db("horn", F)
    with pytest.raises(RigError, match="nope.csv"):
        mic_response_db(str(tmp_path / "nope.csv"), F)
