"""Datasets from disk: folder-per-class, Speech Commands layout, ambient scenes; unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from testbed.data import KWS_LABELS, command_utterances, load_dataset, read_audio
from testbed.errors import DataError


def tone(path: Path, seconds: float, rate: int = 16000, hz: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), rate)
    return path


def test_read_audio_resamples_and_pads_or_cuts(tmp_path):
    x = read_audio(tone(tmp_path / "a.wav", 0.5, rate=44100), 16000, 16000)
    assert x.shape == (16000,) and x.dtype == np.float32
    assert np.all(x[8100:] == 0) and np.max(np.abs(x[:7900])) > 0.25
    long = np.zeros(48000)
    long[30000:32000] = 0.5
    sf.write(tmp_path / "b.wav", long, 16000)
    y = read_audio(tmp_path / "b.wav", 16000, 16000)
    assert np.sum(np.abs(y) > 0.4) == 2000  # the loud part was kept


def test_read_audio_names_the_unreadable_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....not audio")
    with pytest.raises(DataError, match="broken.wav"):
        read_audio(bad)


def make_kws_folder(root: Path) -> Path:
    for lab, hz in (("yes", 300), ("no", 500), ("stop", 700)):
        for i in range(5):
            tone(root / lab / f"{i}.wav", 0.8, rate=8000 if i % 2 else 16000, hz=hz)
    for i in range(5):
        tone(root / "unknown" / f"u{i}.wav", 1.3, rate=22050, hz=900)
    return root


def test_folder_maps_unknown_onto_the_model_label_and_resamples(tmp_path):
    ds = load_dataset(f"folder:{make_kws_folder(tmp_path / 'd')}")
    assert ds.labels == list(KWS_LABELS)
    every = ds.all()
    assert every.x.shape == (20, 16000)
    got = {KWS_LABELS[y] for y in every.y}
    assert got == {"yes", "no", "stop", "unknown"}
    unk = [m for m, y in zip(every.meta, every.y) if y == KWS_LABELS.index("unknown")]
    assert len(unk) == 5 and all(m["folder"] == "unknown" for m in unk)


def test_folder_aliases_and_non_kws_folders(tmp_path):
    root = tmp_path / "d"
    tone(root / "_unknown_" / "a.wav", 1.0)
    tone(root / "yes" / "a.wav", 1.0)
    ds = load_dataset(f"folder:{root}")
    assert set(ds.all().y.tolist()) == {KWS_LABELS.index("unknown"), KWS_LABELS.index("yes")}
    other = tmp_path / "scenes"
    tone(other / "kitchen" / "a.wav", 1.0)
    tone(other / "bus" / "a.wav", 1.0)
    assert load_dataset(f"folder:{other}").labels == ["bus", "kitchen"]


def test_unreadable_files_are_skipped_with_one_warning_listing_them(tmp_path):
    root = make_kws_folder(tmp_path / "d")
    (root / "yes" / "bad1.wav").write_bytes(b"garbage")
    (root / "no" / "bad2.flac").write_bytes(b"")
    with pytest.warns(UserWarning) as rec:
        ds = load_dataset(f"folder:{root}")
    msgs = [str(w.message) for w in rec if "unreadable" in str(w.message)]
    assert len(msgs) == 2 or (len(msgs) == 1 and "bad1.wav" in msgs[0] and "bad2.flac" in msgs[0])
    assert any("bad1.wav" in m for m in msgs) and any("bad2.flac" in m for m in msgs)
    assert len(ds.all().y) == 20


def test_empty_class_is_an_error_naming_it(tmp_path):
    root = make_kws_folder(tmp_path / "d")
    (root / "left").mkdir()
    with pytest.raises(DataError, match="left"):
        load_dataset(f"folder:{root}")


def test_bad_specs_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset spec"):
        load_dataset("librispeech:/x")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


def make_speech_commands(root: Path, with_lists: bool) -> Path:
    words = list(KWS_LABELS[:10]) + ["bed", "cat"]
    for k, w in enumerate(words):
        for i in range(10):
            tone(root / w / f"s{i:02d}_nohash_0.wav", 1.0, hz=200 + 40 * k)
    tone(root / "_background_noise_" / "white.wav", 5.0, hz=60)
    if with_lists:
        (root / "testing_list.txt").write_text("".join(f"{w}/s00_nohash_0.wav\n" for w in words))
        (root / "validation_list.txt").write_text("".join(f"{w}/s01_nohash_0.wav\n" for w in words))
    return root


@pytest.mark.parametrize("with_lists", [True, False])
def test_speech_commands_layout_gives_the_12_class_task(tmp_path, with_lists):
    root = make_speech_commands(tmp_path / "sc", with_lists)
    ds = load_dataset(f"speech-commands:{root}", seed=1)
    assert ds.labels == list(KWS_LABELS)
    every = ds.all()
    counts = np.bincount(every.y, minlength=12)
    assert counts[:10].tolist() == [10] * 10
    assert counts[10] == 10 and counts[11] == 10  # unknown sampled and silence cut to the keyword count
    if with_lists:
        test_ids = {m["id"] for m in ds.test.meta if m["label"] != "silence"}
        assert "yes/s00_nohash_0.wav" in test_ids and "yes/s01_nohash_0.wav" not in test_ids
        assert all(m["id"].endswith("s01_nohash_0.wav") for m in ds.val.meta if m["label"] in KWS_LABELS[:10])


def test_ambient_cuts_recordings_into_3s_chunks_split_by_recording(tmp_path):
    for name, hz in (("bus1", 300), ("bus2", 310), ("bus3", 320), ("park1", 800), ("park2", 810), ("park3", 820)):
        tone(tmp_path / "amb" / f"{name}.wav", 7.0, hz=hz)
    ds = load_dataset(f"ambient:{tmp_path / 'amb'}")
    assert ds.labels == ["bus", "park"] and ds.clip_samples == 48000
    assert ds.all().x.shape == (12, 48000)
    where = {}
    for name in ("train", "val", "test"):
        for m in getattr(ds, name).meta:
            where.setdefault(m["source"], set()).add(name)
    assert all(len(s) == 1 for s in where.values())


def test_command_utterances_from_a_folder_and_synthetic(tmp_path):
    root = make_kws_folder(tmp_path / "d")
    utts = command_utterances(f"folder:{root}", ["yes", "unknown"], 2, seed=0)
    assert [u.label for u in utts] == ["yes", "yes", "unknown", "unknown"]
    assert all(u.signal.shape == (16000,) for u in utts)
    with pytest.raises(DataError, match="left"):
        command_utterances(f"folder:{root}", ["left"], 1, seed=0)
    syn = command_utterances("synthetic", ["go", "silence"], 2, seed=4)
    assert [u.label for u in syn] == ["go", "go", "silence", "silence"]
    assert syn[0].meta["engine"] in {"espeak", "flite", "festival"}
    assert np.max(np.abs(syn[0].signal)) > 0.1 and np.max(np.abs(syn[2].signal)) == 0.0
    again = command_utterances("synthetic", ["go"], 2, seed=4)
    assert [u.meta["voice"] for u in again] == [u.meta["voice"] for u in syn[:2]]
