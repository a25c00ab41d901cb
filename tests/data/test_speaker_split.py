"""Speaker-disjoint synthetic splits: no TTS voice (or speaker) says words of two splits."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from testbed.data import CorpusConfig, build_corpus, load_dataset, read_index
from testbed.data.corpus import plan_clips, resolve_engines, voice_splits
from testbed.data.splits import SHARED_SPEAKERS, assign_voice_splits, index_splits, speaker_of

FAKE_VOICES = {
    "espeak": [f"{acc}+{var}" for acc in ("en-us", "en", "en-029") for var in ("m1", "m2", "f1", "f2", "croak",
                                                                                  "klatt", "max")],
    "flite": ["kal", "kal16", "awb", "rms", "slt"],
    "festival": ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"],
}


def test_speakers_group_accents_and_shared_recordings():
    assert speaker_of("espeak", "en-us+m1") == speaker_of("espeak", "en-gb-scotland+m1") == "espeak:m1"
    assert speaker_of("flite", "kal") == speaker_of("festival", "kal_diphone") == "kal"
    assert speaker_of("flite", "slt") == speaker_of("festival", "cmu_us_slt_arctic_hts") == "slt"
    assert speaker_of("flite", "awb") == "flite:awb"
    assert all(v in FAKE_VOICES[e] for e, v in SHARED_SPEAKERS)


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_every_speaker_in_one_split_and_every_engine_in_every_split(seed):
    a = assign_voice_splits(FAKE_VOICES, seed)
    assert set(a) == {(e, v) for e, vs in FAKE_VOICES.items() for v in vs}
    by_speaker = defaultdict(set)
    for (e, v), part in a.items():
        by_speaker[speaker_of(e, v)].add(part)
    assert all(len(parts) == 1 for parts in by_speaker.values())
    for e in FAKE_VOICES:
        assert {part for (x, _), part in a.items() if x == e} == {0, 1, 2}, e
    # espeak: 7 timbres -> 1 each in val and test, 5 in train
    n_esp = [len({speaker_of("espeak", v) for (x, v), p in a.items() if x == "espeak" and p == k}) for k in range(3)]
    assert n_esp == [5, 1, 1]
    assert assign_voice_splits(FAKE_VOICES, seed) == a                       # seeded
    shuffled = {e: list(reversed(vs)) for e, vs in FAKE_VOICES.items()}
    assert assign_voice_splits(shuffled, seed) == a                          # order of voices irrelevant


def test_an_engine_with_two_speakers_keeps_both_for_training():
    a = assign_voice_splits({"flite": ["awb", "rms"]}, 0)
    assert set(a.values()) == {0}


def test_plan_is_stratified_and_voice_disjoint():
    cfg = CorpusConfig(per_class=30, seed=5)
    engines = resolve_engines(cfg)
    rows = plan_clips(cfg, engines)
    splits_of_voice = defaultdict(set)
    for r in rows:
        if r["engine"] != "none":
            splits_of_voice[(r["engine"], r["voice"])].add(r["split"])
            assert r["speaker"] == speaker_of(r["engine"], r["voice"])
            assert voice_splits(cfg, engines)[(r["engine"], r["voice"])] == ("train", "val", "test").index(r["split"])
    assert splits_of_voice and all(len(s) == 1 for s in splits_of_voice.values())
    for label in {r["label"] for r in rows}:
        parts = [r["split"] for r in rows if r["label"] == label]
        assert (parts.count("train"), parts.count("val"), parts.count("test")) == (24, 3, 3), label
    # the fallback voice of a failed engine comes from the clip's own split
    a = voice_splits(cfg, engines)
    for r in rows:
        if r["engine"] not in ("none",):
            assert ("train", "val", "test")[a[("espeak", r["fallback"])]] == r["split"]


def test_built_corpus_records_speaker_and_split_and_the_dataset_obeys_it(tmp_path):
    cfg = CorpusConfig(per_class=10, seed=2)
    folder = build_corpus(cfg, tmp_path, workers=1)
    rows = read_index(folder)
    assert all(r["split"] in ("train", "val", "test") for r in rows)
    voice_split = defaultdict(set)
    speaker_split = defaultdict(set)
    for r in rows:
        if r["engine"] != "none":
            voice_split[(r["engine"], r["voice"])].add(r["split"])
            speaker_split[r["speaker"]].add(r["split"])
    assert all(len(s) == 1 for s in voice_split.values())
    assert all(len(s) == 1 for s in speaker_split.values())
    ds = load_dataset("synthetic", config=cfg, cache_dir=tmp_path)
    seen = [{(m["engine"], m["voice"]) for m in s.meta if m["engine"] != "none"} for s in (ds.train, ds.val, ds.test)]
    assert seen[1] and seen[2]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    for split, name in ((ds.train, "train"), (ds.val, "val"), (ds.test, "test")):
        assert {m["split"] for m in split.meta} == {name}
        assert np.bincount(split.y, minlength=12).tolist() == [{"train": 8, "val": 1, "test": 1}[name]] * 12


def test_index_splits_rejects_unknown_names():
    tr, va, te = index_splits(["train", "test", "val", "train"])
    assert tr.tolist() == [0, 3] and va.tolist() == [2] and te.tolist() == [1]
    with pytest.raises(ValueError, match="holdout"):
        index_splits(["train", "holdout"])
