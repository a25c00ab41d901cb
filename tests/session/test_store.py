"""The crash-safe store: atomic commits, recovery of half-written trials, full disks, corruption."""

from __future__ import annotations

import errno
import os
import sqlite3

import numpy as np
import pytest
import soundfile as sf

from testbed.errors import SessionError
from testbed.session.store import SessionStore
from tests.session.conftest import SR, make_record, tree_hashes


def test_commit_writes_flac_and_rows_that_read_back(hand_store):
    rng = np.random.default_rng(0)
    rec = make_record(2, rng)
    hand_store.commit_trial(rec, SR)
    assert hand_store.done_ids() == {2}
    assert [t.trial_id for t in hand_store.pending()] == [0, 1, 3]
    caps = hand_store.captures()
    assert [c["mic"] for c in caps] == ["cheap", "ref"]
    for c in caps:
        sig, sr = sf.read(hand_store.path / c["path"], dtype="float32")
        assert sr == SR
        want = next(x.signal for x in rec.captures if x.mic == c["mic"])
        np.testing.assert_allclose(sig, want, atol=2 ** -22)   # 24-bit FLAC
    assert (hand_store.path / "audio/000002/user.played.flac").is_file()
    with sqlite3.connect(hand_store.path / "session.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM evaluations WHERE trial_id = 2").fetchone()[0] == 2


def test_same_trial_cannot_be_committed_twice(hand_store):
    rng = np.random.default_rng(1)
    hand_store.commit_trial(make_record(0, rng), SR)
    before = tree_hashes(hand_store.path)
    with pytest.raises(SessionError, match="trial 0 is already committed"):
        hand_store.commit_trial(make_record(0, rng), SR)
    assert tree_hashes(hand_store.path) == before
    assert hand_store.verify_captures() == []


def test_recover_discards_half_written_trials(hand_store):
    rng = np.random.default_rng(2)
    hand_store.commit_trial(make_record(0, rng), SR)
    committed = tree_hashes(hand_store.path)
    # a crash between rename and transaction leaves a complete-looking folder with no row
    ghost = hand_store.path / "audio" / "000001"
    ghost.mkdir()
    (ghost / "ref.flac").write_bytes(b"half")
    # a crash while writing leaves a temp folder and temp files
    (hand_store.path / "audio" / ".tmp-000003-999").mkdir()
    (hand_store.path / "perturbations" / ".tmp-x.wav-999").write_bytes(b"x")
    with hand_store.locked():
        removed = hand_store.recover()
    assert "audio/000001" in removed and "audio/.tmp-000003-999" in removed
    assert not ghost.exists()
    assert sorted(p.name for p in (hand_store.path / "audio").iterdir()) == ["000000"]
    assert tree_hashes(hand_store.path) == committed
    assert hand_store.done_ids() == {0}


@pytest.mark.parametrize("err,words", [(errno.ENOSPC, "the disk is full"),
                                        (errno.EROFS, "the file system is read-only")])
def test_full_disk_or_read_only_fails_the_trial_and_keeps_what_was_committed(hand_store, monkeypatch, err, words):
    # We run as root in CI, where chmod cannot make a folder read-only, so the OS error is injected
    # at the store's fsync (the point a full disk reports it on most file systems).
    rng = np.random.default_rng(3)
    hand_store.commit_trial(make_record(0, rng), SR)
    committed = tree_hashes(hand_store.path)
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr("testbed.session.store.os.fsync", failing_fsync)
    with pytest.raises(SessionError) as ei:
        hand_store.commit_trial(make_record(1, rng), SR)
    monkeypatch.setattr("testbed.session.store.os.fsync", real_fsync)
    msg = str(ei.value)
    assert words in msg and "trial 1" in msg and "session resume hand" in msg and "\n" not in msg
    assert hand_store.done_ids() == {0}
    assert sorted(p.name for p in (hand_store.path / "audio").iterdir()) == ["000000"]
    assert tree_hashes(hand_store.path) == committed
    st = hand_store.status()
    assert st["done"] == 1 and words in st["last_error"]
    # once the disk has room again the same trial commits normally
    hand_store.commit_trial(make_record(1, rng), SR)
    assert hand_store.done_ids() == {0, 1}


def test_status_reports_a_corrupted_flac(hand_store):
    rng = np.random.default_rng(4)
    for i in range(3):
        hand_store.commit_trial(make_record(i, rng), SR)
    assert hand_store.status()["corrupted"] == []
    victim = hand_store.path / "audio" / "000001" / "cheap.flac"
    data = bytearray(victim.read_bytes())
    data[200:260] = b"\x00" * 60
    victim.write_bytes(bytes(data))
    st = hand_store.status()
    assert st["done"] == 3 and st["total"] == 4
    assert [(c["trial_id"], c["mic"]) for c in st["corrupted"]] == [(1, "cheap")]
    assert "cheap.flac" in st["last_error"]


def test_lock_refuses_a_second_writer(hand_store):
    other = SessionStore(hand_store.path)
    with hand_store.locked():
        with pytest.raises(SessionError, match="in use by another"):
            other.lock()
    other.lock()   # free again once released
    other.close()


def test_create_refuses_an_existing_session(hand_store):
    with pytest.raises(SessionError, match="already exists"):
        SessionStore.create(hand_store.path, meta={}, files={}, attacks=[], utterances=[], planned=[],
                            sample_rate=SR)
