"""The synthetic corpus: build, cache, metadata, splits."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from testbed.data import KWS_LABELS, CorpusConfig, build_corpus, load_dataset, read_index
from testbed.data.corpus import corpus_hash, plan_clips, resolve_engines
from testbed.errors import DataError


@pytest.fixture(scope="module")
def tiny_config() -> CorpusConfig:
    return CorpusConfig(per_class=6, seed=3)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, tiny_config):
    cache = tmp_path_factory.mktemp("cache")
    calls = []
    folder = build_corpus(tiny_config, cache, workers=1, progress=lambda d, t: calls.append((d, t)))
    return cache, folder, calls


def test_corpus_is_flac_plus_index_recording_engine_and_voice(tiny_corpus):
    _, folder, calls = tiny_corpus
    rows = read_index(folder)
    assert len(rows) == 6 * len(KWS_LABELS)
    assert calls[-1] == (len(rows), len(rows))
    for r in rows:
        assert (folder / r["file"]).is_file() and r["file"].endswith(".flac")
        if r["label"] == "silence":
            assert r["engine"] == "none"
        else:
            assert r["engine"] in {"espeak", "flite", "festival"} and r["voice"] and r["text"]
            assert "onset_s" in r["transforms"]
    engines = {r["engine"] for r in rows}
    assert {"espeak", "flite", "festival"} <= engines
    unknown_texts = {r["text"].strip(".!?").lower() for r in rows if r["label"] == "unknown"}
    assert not unknown_texts & set(KWS_LABELS)


def test_cached_corpus_is_reused_and_a_changed_config_gets_its_own(tiny_corpus, tiny_config):
    cache, folder, _ = tiny_corpus
    stamp = (folder / "index.csv").stat().st_mtime_ns
    again = build_corpus(tiny_config, cache, progress=lambda d, t: pytest.fail("rebuilt a cached corpus"))
    assert again == folder and (folder / "index.csv").stat().st_mtime_ns == stamp
    engines = resolve_engines(tiny_config)
    assert corpus_hash(tiny_config.without("noise"), engines) != corpus_hash(tiny_config, engines)
    assert corpus_hash(CorpusConfig(per_class=6, seed=4), engines) != corpus_hash(tiny_config, engines)


def test_dataset_split_is_stratified_seeded_and_shaped(tiny_corpus, tiny_config):
    cache, _, _ = tiny_corpus
    ds = load_dataset("synthetic", config=tiny_config, cache_dir=cache)
    assert ds.labels == list(KWS_LABELS) and ds.sample_rate == 16000 and ds.clip_samples == 16000
    assert ds.train.x.shape == (4 * 12, 16000) and ds.train.x.dtype == np.float32
    assert ds.val.y.dtype == np.int64
    for split, n in ((ds.train, 4), (ds.val, 1), (ds.test, 1)):
        assert np.bincount(split.y, minlength=12).tolist() == [n] * 12
    assert np.max(np.abs(ds.train.x)) <= 1.0
    ids = [m["id"] for s in (ds.train, ds.val, ds.test) for m in s.meta]
    assert len(set(ids)) == len(ids) == 72
    again = load_dataset("synthetic", config=tiny_config, cache_dir=cache)
    assert again.split_hash == ds.split_hash
    np.testing.assert_array_equal(again.test.x, ds.test.x)
    silence = ds.train.x[ds.train.y == KWS_LABELS.index("silence")]
    speech = ds.train.x[ds.train.y == KWS_LABELS.index("yes")]
    assert np.mean(silence ** 2) < np.mean(speech ** 2)


def test_plan_mixes_engines_by_share_and_is_seeded():
    cfg = CorpusConfig(per_class=20, engines={"espeak": 0.5, "flite": 0.5})
    engines = resolve_engines(cfg)
    rows = plan_clips(cfg, engines)
    yes = [r for r in rows if r["label"] == "yes"]
    assert sum(r["engine"] == "espeak" for r in yes) == 10
    assert len({r["voice"] for r in yes if r["engine"] == "espeak"}) == 10
    assert plan_clips(cfg, engines) == rows


def test_config_rejects_unknown_engines_and_transforms():
    with pytest.raises(ValidationError, match="unknown engine"):
        CorpusConfig(engines={"sam": 1.0})
    with pytest.raises(ValidationError, match="unknown transform"):
        CorpusConfig(transforms=("speed", "wobble"))
    cfg = CorpusConfig().without("reverb", "noise")
    assert "reverb" not in cfg.transforms and "speed" in cfg.transforms


def test_unknown_clips_favour_the_focus_words_by_the_configured_share():
    from testbed.data.labels import SPEECH_COMMANDS_AUX_WORDS, UNKNOWN_WORDS

    def unknown_words(focus: float) -> list[str]:
        cfg = CorpusConfig(per_class=80, unknown_focus=focus, engines={"espeak": 1.0})
        rows = plan_clips(cfg, resolve_engines(cfg))
        return [r["text"].rstrip(".!?").lower() for r in rows if r["label"] == "unknown"]

    plain, focused = unknown_words(0.0), unknown_words(0.5)
    assert len(plain) == len(focused) == 80
    assert set(plain) == set(UNKNOWN_WORDS)          # 80 clips cycle once through the 80 words
    # half the clips cycle twice through the 20 focus words, the other half through (part of) all 80
    n_aux = sum(w in SPEECH_COMMANDS_AUX_WORDS for w in focused)
    assert 40 <= n_aux <= 60 and n_aux > sum(w in SPEECH_COMMANDS_AUX_WORDS for w in plain)
    assert all(focused.count(w) >= 2 for w in SPEECH_COMMANDS_AUX_WORDS)
    assert all(w not in ("yes", "no", "go", "stop") for w in focused)
    assert unknown_words(0.5) == focused             # seeded


def test_transform_overrides_lie_over_the_tuned_defaults():
    from testbed.data.corpus import DEFAULT_TRANSFORM_PARAMS

    tr = CorpusConfig().build_transforms()
    assert tr["noise"].p == DEFAULT_TRANSFORM_PARAMS["noise"]["p"]
    assert tr["noise"].snr_db == tuple(DEFAULT_TRANSFORM_PARAMS["noise"]["snr_db"])
    assert tr["speed"].factor == tuple(DEFAULT_TRANSFORM_PARAMS["speed"]["factor"])
    over = CorpusConfig(transform_params={"noise": {"p": 1.0}}).build_transforms()
    assert over["noise"].p == 1.0                                   # the override
    assert over["noise"].snr_db == tr["noise"].snr_db               # the rest of the default kept
    assert over["speed"] == tr["speed"]                             # other transforms untouched
    with pytest.raises(DataError, match="transform_params.noise"):
        CorpusConfig(transform_params={"noise": {"wobble": 1}}).build_transforms()
