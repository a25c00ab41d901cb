"""Speech engines: every installed engine speaks; a missing one names its package."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.data import ENGINES, trim_silence, CorpusConfig, EngineUnavailable, SynthRequest, get_synthesizer, synthesize
from testbed.data.corpus import render_speech, resolve_engines
from testbed.data.synth import FliteSynthesizer
from testbed.data.synth.festival import FestivalSynthesizer
from testbed.errors import DataError


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_each_engine_says_a_word_as_a_non_silent_one_second_clip(engine):
    synth = get_synthesizer(engine)
    synth.require()  # the engines are system deps (scripts/system-deps.sh): missing -> this fails
    voices = synth.voices()
    assert voices, f"{engine} has no installed voice"
    pcm = synth.synth(SynthRequest("stop", voices[-1], rate=1.1, pitch=0.9), sample_rate=16000)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert 0.15 * 16000 < len(pcm) < 2.0 * 16000
    assert np.sqrt(np.mean(pcm ** 2)) > 0.01 and np.max(np.abs(pcm)) <= 1.0
    cfg = CorpusConfig.quick()
    clip, facts = render_speech(pcm, cfg, cfg.build_transforms(), np.random.default_rng(0))
    assert clip.shape == (16000,) and clip.dtype == np.float32
    assert np.sqrt(np.mean(clip ** 2)) > 1e-3
    assert "onset_s" in facts


def test_engine_options_change_the_speech():
    synth = get_synthesizer("espeak")
    slow = trim_silence(synth.synth(SynthRequest("left", "en-us+m3", rate=0.8)))
    fast = trim_silence(synth.synth(SynthRequest("left", "en-us+m3", rate=1.25)))
    again = synth.synth(SynthRequest("left", "en-us+m3", rate=1.25))
    assert len(slow) > 1.2 * len(fast)
    # espeak-ng jitters a few samples from run to run (not bit-exact); the duration is stable
    assert abs(len(trim_silence(again)) - len(fast)) < 0.02 * len(fast)


def test_festival_batches_return_one_clip_per_request_in_order():
    synth = FestivalSynthesizer(batch_size=2)
    reqs = [SynthRequest(w, "kal_diphone") for w in ("go", "seven eight nine ten", "up")]
    out = synth.synth_many(reqs)
    assert all(x is not None for x in out)
    assert len(out[1]) > 1.5 * max(len(out[0]), len(out[2]))


def test_missing_engine_error_names_the_apt_package():
    synth = FliteSynthesizer(binary="flite-not-installed-here")
    assert not synth.available()
    with pytest.raises(EngineUnavailable, match="install the 'flite' package"):
        synth.require()


def test_missing_engine_is_skipped_from_the_corpus_with_a_warning(monkeypatch):
    monkeypatch.setitem(ENGINES, "flite", lambda: FliteSynthesizer(binary="flite-not-installed-here"))
    with pytest.warns(UserWarning, match=r"flite \(install flite\)"):
        engines = resolve_engines(CorpusConfig.quick())
    assert "flite" not in engines and "espeak" in engines
    with pytest.raises(EngineUnavailable, match="flite"):
        resolve_engines(CorpusConfig.quick(engines={"flite": 1.0}))


def test_synthesize_rejects_unknown_engine_voice_and_unsafe_text():
    with pytest.raises(DataError, match="unknown speech engine 'sam'"):
        synthesize("yes", engine="sam")
    with pytest.raises(DataError, match="voice 'nobody'"):
        synthesize("yes", engine="flite", voice="nobody")
    with pytest.raises(DataError, match="letters"):
        synthesize('yes"; (system "rm")', engine="festival")


def test_synthesize_picks_a_voice_from_the_seed():
    a = synthesize("go", engine="flite", seed=1)
    b = synthesize("go", engine="flite", seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and abs(np.max(np.abs(a)) - 0.5) < 1e-3
