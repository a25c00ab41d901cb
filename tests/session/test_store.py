"""The crash-safe store: atomic commits, recovery of half-written trials, full disks, corruption."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from testbed.errors import SessionError
from testbed.session.store import (
    SessionStore,
    known_sessions,
    list_session_dirs,
    load_evaluations,
    open_reader,
    resolve_session,
)
from tests.session.conftest import REPO, SR, make_record, tree_hashes


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


# -- readers never take the writer's lock (issue #22 item 7) ------------------------------------

_POLLER = """
import sys
from pathlib import Path
from testbed.session.store import SessionStore, list_session_dirs
root, rounds, states = Path(sys.argv[1]), int(sys.argv[2]), set()
print("ready", flush=True)
for _ in range(rounds):   # what 'session list' / 'status' and a live monitor do, as fast as they can
    for d in list_session_dirs(root):
        with SessionStore(d, readonly=True) as r:
            states.add(r.status(verify=False)["state"])
            for _ in range(20):
                states.add(str(r.is_running()))
print(",".join(sorted(states)), flush=True)
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                            text=True, cwd=REPO, env=env)


def test_polling_status_and_list_never_refuses_a_writer_lock(hand_store):
    # Before the fix a status poll tried the writer's own lock for a moment: with a poller in another
    # process, about 1 writer lock attempt in 1,600 was refused as "in use by another testbed process".
    poller = _python(_POLLER, str(hand_store.path.parent), "300")
    assert poller.stdout.readline().strip() == "ready"
    writer = SessionStore(hand_store.path)
    attempts = refused = 0
    try:
        while poller.poll() is None:
            attempts += 1
            try:
                writer.lock()
            except SessionError:
                refused += 1
                continue
            writer.unlock()
    finally:
        writer.close()
    states = poller.stdout.read().strip()
    assert poller.returncode == 0
    assert attempts > 400 and refused == 0
    assert {"created", "running", "True", "False"} >= set(states.split(",")) >= {"True", "False"}


def test_a_reader_sees_a_writer_in_another_process_and_its_death(hand_store):
    holder = _python("import sys\nfrom testbed.session.store import SessionStore\n"
                     "s = SessionStore(sys.argv[1]); s.lock(); print('locked', flush=True); sys.stdin.read()",
                     str(hand_store.path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with SessionStore(hand_store.path, readonly=True) as reader:
            assert reader.is_running() and reader.status(verify=False)["state"] == "running"
            with pytest.raises(SessionError, match="in use by another"):
                hand_store.lock()
            holder.kill()   # kill -9: the OS drops the lock, nothing is left to clean up
            holder.wait()
            deadline = time.monotonic() + 30
            while reader.is_running() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not reader.is_running() and reader.status(verify=False)["state"] == "created"
        hand_store.lock()   # and a new writer takes over
        assert hand_store.is_running()
    finally:
        holder.kill()
        hand_store.unlock()


def test_readers_open_the_database_read_only_and_write_nothing(hand_store):
    hand_store.commit_trial(make_record(0, np.random.default_rng(5)), SR)
    hand_store.close()
    before = sorted(p.name for p in hand_store.path.iterdir())
    assert ".lock" not in before and ".running" not in before
    with open_reader(hand_store.path) as reader:
        assert reader.status()["done"] == 1 and not reader.is_running()
        assert reader.read_capture(reader.captures()[0])[1] is None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.db.execute("DELETE FROM trials")
    after = sorted(p.name for p in hand_store.path.iterdir() if not p.name.startswith("session.sqlite"))
    assert after == [n for n in before if not n.startswith("session.sqlite")]
    assert load_evaluations(hand_store.path)["trial_id"].tolist() == [0, 0]


def test_one_session_lookup_for_the_store_and_analysis(hand_store, tmp_path):
    from testbed.analysis import known_sessions as analysis_known
    from testbed.analysis import resolve_session as analysis_resolve
    from testbed.errors import AnalysisError

    root = hand_store.path.parent
    assert resolve_session("hand", root) == analysis_resolve("hand", root) == hand_store.path
    assert resolve_session(hand_store.path) == hand_store.path
    assert known_sessions(root) == analysis_known(root) == ["hand"]
    with pytest.raises(SessionError, match=r"no session 'nope'.*have: hand"):
        resolve_session("nope", root)
    with pytest.raises(AnalysisError, match=r"no session 'nope'.*have: hand"):
        analysis_resolve("nope", root)
    assert list_session_dirs(tmp_path / "absent") == []


def test_importing_the_store_or_analysis_loads_no_runner_audio_or_torch():
    probe = _python("import sys, testbed.session.store, testbed.analysis\n"
                    "print(sorted(m for m in ('torch', 'testbed.audio', 'testbed.session.runner', "
                    "'testbed.session.deps', 'testbed.models') if m in sys.modules))")
    out, _ = probe.communicate(timeout=300)
    assert probe.returncode == 0 and out.strip() == "[]"


def test_status_list_and_is_running_take_no_lock_a_writer_could_trip_on(hand_store, monkeypatch):
    # Deterministic half of the test above: spy on every flock a reader makes.
    import fcntl

    hand_store.lock()
    hand_store.unlock()   # both lock files exist now, as after any run
    calls: list[tuple[str, int]] = []
    real = fcntl.flock

    def spy(fh, op):
        calls.append((os.path.basename(fh.name), op))
        return real(fh, op)

    monkeypatch.setattr(fcntl, "flock", spy)
    for d in list_session_dirs(hand_store.path.parent):
        with SessionStore(d, readonly=True) as r:
            r.status()
            r.is_running()
    with open_reader("hand", hand_store.path.parent) as r:
        r.status(verify=False)
    assert calls, "the reader asked whether a writer runs"
    assert all(name == ".running" for name, _ in calls)          # never the writers' .lock
    assert not any(op & fcntl.LOCK_EX for _, op in calls)         # and never exclusively


def test_a_writer_waits_out_a_slow_reader_probe_instead_of_being_refused(hand_store):
    import fcntl
    import threading

    hand_store.lock()
    hand_store.unlock()
    probe = open(hand_store.path / ".running", "rb")
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)   # a reader caught mid-probe
    release = threading.Timer(0.2, lambda: fcntl.flock(probe, fcntl.LOCK_UN))
    release.start()
    try:
        hand_store.lock()   # must not raise "in use by another testbed process"
        assert hand_store.is_running()
    finally:
        release.join()
        probe.close()
        hand_store.unlock()


@pytest.mark.parametrize("mic, words", [
    ("../../../../escaped", "cannot be a file name"), ("/abs", "cannot be a file name"),
    (".hidden", "cannot be a file name"), ("user.played", "would both write user.played.flac"),
])
def test_a_mic_name_that_is_not_a_safe_file_name_is_refused_and_writes_nothing(hand_store, tmp_path, mic, words):
    rng = np.random.default_rng(0)
    rec = make_record(0, rng)
    rec.captures[0].mic = mic
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(SessionError, match="trial 0") as err:
        hand_store.commit_trial(rec, SR)
    assert words in str(err.value) and mic in str(err.value) and "\n" not in str(err.value)
    after = sorted(str(p) for p in tmp_path.rglob("*"))
    assert [p for p in after if p not in before and not p.endswith(("-wal", "-shm"))] == []
    assert not hand_store.is_committed(0)


def test_a_capture_with_nan_or_inf_never_reaches_the_disk(hand_store):
    """Issue #22: the trial is kept as a failed trial naming the mic (tests/session/test_hostile_inputs.py
    checks the reason); what is on disk reads back finite and no temp folder stays."""
    rng = np.random.default_rng(0)
    for tid, bad in ((1, np.nan), (2, np.inf)):
        rec = make_record(tid, rng)
        rec.captures[1].signal[100] = bad
        hand_store.commit_trial(rec, SR)
        assert hand_store.is_committed(tid) and rec.failed and "mic cheap" in rec.error
    assert not list((hand_store.path / "audio").glob(".tmp-*"))
    for cap in hand_store.captures():
        sig, problem = hand_store.read_capture(cap)
        assert problem is None and np.isfinite(sig).all()


def test_cached_files_stay_inside_the_session_and_are_finite(hand_store, tmp_path):
    with pytest.raises(SessionError, match="leaves the session folder"):
        hand_store.write_cached("../../outside.wav", np.zeros(10, np.float32), SR)
    with pytest.raises(SessionError, match="NaN or infinite"):
        hand_store.write_cached("perturbations/x.wav", np.full(10, np.inf, np.float32), SR)
    assert not (tmp_path / "outside.wav").exists() and not (hand_store.path / "perturbations" / "x.wav").exists()


def test_utterance_ids_with_the_same_safe_name_get_distinct_files(tmp_path):
    from testbed.session.trials import AttackConfig, TrialSpec

    a = np.full(100, 0.1, np.float32)
    b = np.full(100, 0.2, np.float32)
    utts = [("a/b", "yes", a, {}), ("a_b", "yes", b, {}), ("..", "no", a, {})]
    planned = [TrialSpec(0, "a/b", "yes", "none", 0.0, None, 0)]
    store = SessionStore.create(tmp_path / "s", meta={}, files={}, utterances=utts, planned=planned, sample_rate=SR,
                                attacks=[AttackConfig("none", "none", 0.0, "untargeted", None, False, {})])
    with store:
        assert np.array_equal(store.read_utterance("a/b"), a) and np.array_equal(store.read_utterance("a_b"), b)
        paths = [p for _, p in store.utterances().values()]
        assert len(set(paths)) == 3 and all(p.parent == store.path / "utterances" for p in paths)


@pytest.mark.parametrize("sid", ["..", ".hidden"])
def test_create_refuses_an_id_that_leaves_or_hides_in_the_sessions_folder(tmp_path, sid):
    with pytest.raises(SessionError, match="--id"):
        SessionStore.create(tmp_path / "sessions" / sid, meta={}, files={}, attacks=[], utterances=[], planned=[],
                            sample_rate=SR)
