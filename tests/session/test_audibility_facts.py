"""Each attacked trial stores how audible its perturbation was (issue 24): at the speaker and at each mic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from testbed.acoustics.audibility import default_masking_model, snr_db
from testbed.acoustics.psychoacoustic import masking_margin, masking_threshold
from testbed.session import Runner, create_session, open_runner_parts
from testbed.session.audibility import AT_SPEAKER, _window, at_mic, mic_audibility, speaker_audibility
from tests.session.conftest import quick_plan, tone_utterances

SR = 16000


@pytest.fixture(scope="module")
def fgsm_session(tmp_path_factory, tiny_zoo):
    from testbed.workspace import assets_dir

    tmp = tmp_path_factory.mktemp("aud")
    rig_path = assets_dir() / "rigs" / "office-sim.toml"
    store = create_session(quick_plan(tmp, "aud", delays=(0, 100)), rig_path, root=tmp / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, p, models, cal = open_runner_parts(store)
    runner = Runner(store, rig, p, models, calibration=cal)
    assert runner.run().reason == "finished"
    yield store, rig, runner
    store.close()


def _rows(store):
    return store.db.execute(
        "SELECT t.trial_id, a.kind, pl.delay_ms, pl.placement, t.facts FROM trials t JOIN planned pl USING(trial_id) "
        "JOIN attacks a ON a.attack_id = pl.attack_id ORDER BY t.trial_id").fetchall()


def _played(store, trial_id):
    out = {}
    for spk, path, off in store.db.execute("SELECT speaker, path, offset_samples FROM played WHERE trial_id = ?",
                                           (trial_id,)):
        out[spk] = (sf.read(store.path / path, dtype="float32")[0], off)
    return out


def test_attacked_trials_store_audibility_and_clean_ones_do_not(fgsm_session):
    store, rig, _ = fgsm_session
    rows = _rows(store)
    assert {k for _, k, *_ in rows} == {"none", "fgsm"}
    for tid, kind, delay_ms, placement, facts in rows:
        f = json.loads(facts)
        if kind == "none":
            assert "audibility" not in f
            continue
        aud = f["audibility"]
        assert aud["speaker"]["reference"] == AT_SPEAKER
        assert set(aud["mics"]) == {"ref", "cheap"}
        for mic, e in aud["mics"].items():
            assert e["reference"] == at_mic(mic) and e.get("basis") is None   # the simulator's own channels
            assert 0.0 <= e["frames_above"] <= 1.0 and e["median_margin_db"] <= e["masking_margin_db"]
            assert e["snr_db"] is not None


def test_the_speaker_entry_matches_a_direct_computation_from_the_stored_signals(fgsm_session):
    store, rig, _ = fgsm_session
    tid, _, delay_ms, _, facts = next(r for r in _rows(store) if r[1] == "fgsm" and r[2] == 100)
    stored = json.loads(facts)["audibility"]["speaker"]
    played = _played(store, tid)
    (clean, u_off), (delta, a_off) = played[rig.user_speaker], played[rig.adversary_speaker]
    rel = int(round(a_off - u_off))
    assert rel == 1600                                                  # 100 ms after the command
    pert = np.zeros(len(clean))
    pert[rel:] = delta[:len(clean) - rel]
    margin, above = masking_margin(masking_threshold(clean, default_masking_model(SR)), pert)
    assert stored["snr_db"] == pytest.approx(snr_db(clean, pert), abs=0.02)
    assert stored["masking_margin_db"] == pytest.approx(margin, abs=0.02)
    assert stored["frames_above"] == pytest.approx(float(np.mean(above)), abs=1e-4)
    assert 0.0 < stored["frames_above"] <= 1.0          # fgsm at eps 0.01 against a tone is heard somewhere


def test_the_mic_entry_is_the_speakers_through_the_simulators_channels(fgsm_session):
    store, rig, runner = fgsm_session
    tid, _, delay_ms, placement, facts = next(r for r in _rows(store) if r[1] == "fgsm" and r[2] == 0)
    stored = json.loads(facts)["audibility"]["mics"]["cheap"]
    played = _played(store, tid)
    (clean, u_off), (delta, a_off) = played[rig.user_speaker], played[rig.adversary_speaker]
    from testbed.audio.sim import SimBackend

    ch = SimBackend(rig).channels(placement)["cheap"]
    hu, ha = ch.h[rig.user_speaker], ch.h[rig.adversary_speaker]
    start = int(round(ch.direct_delay_samples[rig.user_speaker]))
    cmd = _window(np.convolve(clean.astype(np.float64), hu), start, len(clean))
    pert = _window(np.convolve(delta.astype(np.float64), ha), start - int(round(a_off - u_off)), len(clean))
    margin, above = masking_margin(masking_threshold(cmd, default_masking_model(SR)), pert)
    assert stored["snr_db"] == pytest.approx(snr_db(cmd, pert), abs=0.02)
    assert stored["masking_margin_db"] == pytest.approx(margin, abs=0.05)
    assert stored["frames_above"] == pytest.approx(float(np.mean(above)), abs=1e-4)
    # the room changes what is heard: the mic's figures are not the speaker's
    assert stored["snr_db"] != json.loads(facts)["audibility"]["speaker"]["snr_db"]


def test_entries_are_cached_per_perturbation_and_a_shift_moves_the_perturbation_out():
    rng = np.random.default_rng(0)
    clean = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    delta = (0.01 * rng.standard_normal(SR)).astype(np.float32)
    a = speaker_audibility(clean, delta, 0, SR)
    assert a == speaker_audibility(clean, delta.copy(), 0, SR)           # same bytes: same entry
    gone = speaker_audibility(clean, delta, SR, SR)                      # starts after the command ends
    assert gone["snr_db"] is None and gone["frames_above"] == 0.0       # nothing overlaps: inf SNR, no frame above
    half = speaker_audibility(clean, delta, SR // 2, SR)
    assert half["snr_db"] == pytest.approx(a["snr_db"] + 10 * np.log10(2), abs=0.2)
    h = np.zeros(64)
    h[10] = 1.0                                                          # a pure 10-sample delay: the mic hears the speaker
    m = mic_audibility(clean, delta, 0, SR, "x", h, h, 10.0)
    assert m["snr_db"] == pytest.approx(a["snr_db"], abs=1e-6)
    assert m["frames_above"] == pytest.approx(a["frames_above"])
