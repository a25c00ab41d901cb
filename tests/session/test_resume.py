"""kill -9 safety: a runner subprocess killed at random points, then resumed, loses and duplicates nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from testbed.session import create_session, load_evaluations
from testbed.session.store import open_reader
from tests.session.conftest import quick_plan, tone_utterances

N_KILLS = 10


def _done(db_path) -> int:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return -1


def _sleep(seconds: float, db_path, max_done: int, proc) -> None:
    """Sleep up to `seconds`, waking early once `max_done` trials are committed or the runner exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _done(db_path) < max_done and proc.poll() is None:
        time.sleep(0.005)


def _resume(sid, sessions, zoo) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "testbed.cli.app", "session", "resume", sid, "--quiet",
         "--sessions-dir", str(sessions), "--models-dir", str(zoo)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_keeps_every_trial_exactly_once(tmp_path, office_rig_path, tiny_zoo):
    sessions = tmp_path / "sessions"
    store = create_session(quick_plan(tmp_path, per_label=4, delays=(0, 100, 250)), office_rig_path,
                           root=sessions, models_root=tiny_zoo, utterances=tone_utterances(["yes", "no"], 4))
    sid, db_path = store.session_id, store.path / "session.sqlite"
    total = len(store.planned())
    store.close()
    assert total == 96   # enough that ten kills always land before the end, even on an idle machine
    rng = np.random.default_rng(1234)
    kills = 0
    history = []
    while kills < N_KILLS:
        before = _done(db_path)
        proc = _resume(sid, sessions, tiny_zoo)
        t0 = time.monotonic()
        if kills % 4 == 0:
            # anywhere: imports, crafting, recovery, playing, committing (but at most a few trials in:
            # once the perturbations are cached a fast machine runs dozens of trials a second)
            _sleep(rng.uniform(0.3, 4.0), db_path, before + 4, proc)
        else:
            # just after a commit, somewhere inside the next trial (or its commit)
            while _done(db_path) <= before and proc.poll() is None and time.monotonic() - t0 < 180:
                time.sleep(0.01)
            _sleep(rng.uniform(0.0, 0.3), db_path, before + 3, proc)
        if proc.poll() is not None:
            out = proc.stdout.read().decode()
            assert proc.returncode == 0, out
            break   # it finished before we could kill it: the session is complete
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        kills += 1
        history.append(_done(db_path))
    assert kills == N_KILLS, f"the session finished after only {kills} kills: {history}"
    assert history == sorted(history)   # progress never went backwards

    from testbed.session import SessionStore

    with SessionStore(sessions / sid, readonly=True) as s:
        assert s.status(verify=False)["state"] == ("killed" if history[-1] < total else "complete")
    proc = _resume(sid, sessions, tiny_zoo)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()

    with sqlite3.connect(db_path) as db:
        trials = [r[0] for r in db.execute("SELECT trial_id FROM trials ORDER BY trial_id")]
        caps = db.execute("SELECT trial_id, mic, path, sha256 FROM captures").fetchall()
        evals = Counter(db.execute("SELECT trial_id, mic, model FROM evaluations").fetchall())
        recovered = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'recovered'").fetchone()[0]
    assert trials == list(range(total))                          # every trial, exactly once
    assert len(caps) == total * 2
    assert len(evals) == total * 2 * 3 and set(evals.values()) == {1}   # no duplicated evaluation
    folder = sessions / sid
    assert sorted(p.name for p in (folder / "audio").iterdir()) == [f"{i:06d}" for i in range(total)]
    for tid, mic, rel, sha in caps:
        data = (folder / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha
        sig, sr = sf.read(folder / rel)
        assert sr == 16000 and len(sig) > 16000 and np.isfinite(sig).all()
    assert not list(folder.rglob(".tmp-*"))
    df = load_evaluations(folder)
    assert len(df) == total * 6 and df["trial_id"].nunique() == total
    print(f"done after each kill: {history}; half-written trials discarded on {recovered} resumes")


def _wait_done(db_path, at_least: int, proc, timeout: float = 180) -> None:
    t0 = time.monotonic()
    while _done(db_path) < at_least and proc.poll() is None and time.monotonic() - t0 < timeout:
        time.sleep(0.05)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(tmp_path, office_rig_path, tiny_zoo, presses):
    sessions = tmp_path / "sessions"
    store = create_session(quick_plan(tmp_path), office_rig_path, root=sessions, models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    sid, db_path = store.session_id, store.path / "session.sqlite"
    store.close()
    folder = sessions / sid
    # one press: finish the trial; two: discard it. The second press goes the moment the runner
    # says it heard the first; on an idle machine the trial can still end first (then the run
    # stops as after one press), so a two-press run is tried again, at most three times.
    for attempt in range(3):
        before = _done(db_path)
        proc = _resume(sid, sessions, tiny_zoo)
        _wait_done(db_path, before + 1, proc)
        assert proc.poll() is None, proc.stdout.read().decode()
        os.set_blocking(proc.stdout.fileno(), False)
        early = b""
        proc.send_signal(signal.SIGINT)
        if presses == 2:
            t0 = time.monotonic()
            while b"Ctrl-C again" not in early and time.monotonic() - t0 < 30:
                early += proc.stdout.read() or b""
                time.sleep(0.001)
            proc.send_signal(signal.SIGINT)
        os.set_blocking(proc.stdout.fileno(), True)
        out, _ = proc.communicate(timeout=120)
        out = (early + out).decode()
        assert proc.returncode == 130, out
        assert f"testbed session resume {sid}" in out
        assert "Traceback" not in out
        done = _done(db_path)
        assert 1 <= done < 8
        with sqlite3.connect(db_path) as db:
            last = db.execute("SELECT kind FROM events ORDER BY event_id DESC LIMIT 1").fetchone()[0]
        if presses == 1 or last == "interrupted":
            break
    assert last == ("stopped" if presses == 1 else "interrupted")
    # what is on disk is exactly what was committed (a discarded trial leaves at most temp files
    # that the next run clears)
    committed = {f"{i:06d}" for i in range(8) if (folder / "audio" / f"{i:06d}").is_dir()}
    assert len(committed) >= done
    proc = _resume(sid, sessions, tiny_zoo)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()
    assert _done(db_path) == 8
    assert sorted(p.name for p in (folder / "audio").iterdir()) == [f"{i:06d}" for i in range(8)]


def _rebuilt_zoo(tiny_zoo, tmp_path, name: str = "lm-int8"):
    """A copy of the tiny zoo where ``name`` was rebuilt: same name, other weights."""
    import shutil

    import torch

    from testbed.models import Zoo, build_model
    from tests.session.conftest import KWS, SR

    root = tmp_path / "rebuilt-zoo"
    shutil.copytree(tiny_zoo, root)
    shutil.rmtree(root / name)
    torch.manual_seed(99)
    Zoo(root).save(name, build_model("lm", KWS), {"arch": "lm", "variant": name.split("-")[1], "labels": KWS,
                                                   "sample_rate": SR, "clip_samples": SR})
    return root


def test_resume_refuses_a_zoo_whose_weights_changed_unless_allowed_and_recorded(tmp_path, office_rig_path,
                                                                                 tiny_zoo, cli):
    from testbed.models import Zoo
    from testbed.session import SessionStore

    sessions = tmp_path / "sessions"
    store = create_session(quick_plan(tmp_path), office_rig_path, root=sessions, models_root=tiny_zoo,
                           session_id="s", utterances=tone_utterances(["yes", "no"]))
    store.close()
    zoo2 = _rebuilt_zoo(tiny_zoo, tmp_path)
    old, new = Zoo(tiny_zoo).model_hash("lm-int8"), Zoo(zoo2).model_hash("lm-int8")
    assert old != new
    args = ["session", "resume", "s", "--sessions-dir", sessions, "--models-dir", zoo2, "--quiet", "--json"]
    r = cli(args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "'lm-int8'" in lines[0] and old[:12] in lines[0] and new[:12] in lines[0]
    assert "--allow-new-models" in lines[0] and "Traceback" not in r.output
    assert _done(sessions / "s" / "session.sqlite") == 0          # nothing ran
    r = cli(args + ["--allow-new-models"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["done"] == 8
    with SessionStore(sessions / "s", readonly=True) as s:
        ev = [e for e in s.events() if e["kind"] == "models-changed"]
        assert len(ev) == 1 and "lm-int8" in ev[0]["message"] and new[:12] in ev[0]["message"]
        assert s.meta()["allowed_model_hashes"] == {"lm-int8": [new]}
    df = load_evaluations(sessions / "s")
    assert set(df.loc[df.model == "lm-int8", "model_hash"]) == {new}
    # once accepted, the same rebuilt zoo resumes without the flag; the original still does too
    for zoo in (zoo2, tiny_zoo):
        r = cli(["session", "resume", "s", "--sessions-dir", sessions, "--models-dir", zoo, "--quiet"])
        assert r.exit_code == 0, r.output
    # a model missing from the zoo is refused the same way
    import shutil

    shutil.rmtree(zoo2 / "lm-lowrank")
    r = cli(["session", "resume", "s", "--sessions-dir", sessions, "--models-dir", zoo2, "--quiet"])
    assert r.exit_code == 2 and "'lm-lowrank'" in r.output and "no such model" in r.output


def _perturbations(folder):
    return sorted((folder / "perturbations").glob("*.wav"))


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_an_unusable_cached_perturbation_is_crafted_again_on_resume(tmp_path, office_rig_path, tiny_zoo, how):
    from testbed.session import Runner, SessionStore, open_runner_parts

    sessions = tmp_path / "sessions"
    store = create_session(quick_plan(tmp_path), office_rig_path, root=sessions, models_root=tiny_zoo,
                           session_id="s", utterances=tone_utterances(["yes", "no"]))
    rig, plan, models, cal = open_runner_parts(store)
    # stop after the first committed trial: every perturbation is crafted by then
    Runner(store, rig, plan, models, calibration=cal, should_stop=lambda: bool(store.done_ids())).run()
    folder = store.path
    store.close()
    paths = _perturbations(folder)
    assert len(paths) == 2 and _done(folder / "session.sqlite") < 8
    victim = paths[0]
    original, _ = sf.read(victim, dtype="float32")
    data = victim.read_bytes()
    victim.write_bytes(b"\x00garbage" * 100 if how == "garbage" else data[: len(data) // 2])
    with SessionStore(folder) as store:
        rig, plan, models, cal = open_runner_parts(store)
        result = Runner(store, rig, plan, models, calibration=cal).run()
        assert result.reason == "finished" and len(store.done_ids()) == 8
        ev = [e["message"] for e in store.events() if e["kind"] == "recovered"]
        assert any(victim.name in m and "crafted again" in m for m in ev), ev
        failed = [e for e in store.events() if e["kind"] == "error"]
        assert failed == []
        again = store.read_cached(f"perturbations/{victim.name}")
    assert again is not None and again.shape == original.shape
    assert np.allclose(again, original, atol=1e-6)        # the same perturbation, crafted again


def test_a_perturbation_damaged_mid_run_is_discarded_so_resume_crafts_it(tmp_path, office_rig_path, tiny_zoo):
    from testbed.session import Runner, SessionStore, open_runner_parts

    sessions = tmp_path / "sessions"
    store = create_session(quick_plan(tmp_path), office_rig_path, root=sessions, models_root=tiny_zoo,
                           session_id="s", utterances=tone_utterances(["yes", "no"]))
    rig, plan, models, cal = open_runner_parts(store)
    Runner(store, rig, plan, models, calibration=cal, should_stop=lambda: bool(store.done_ids())).run()
    victim = _perturbations(store.path)[0]
    rel = f"perturbations/{victim.name}"
    victim.write_bytes(b"RIFF" + bytes(40))
    with open_reader(store.path) as r:
        assert r.read_cached(rel) is None and victim.exists()        # a reader never deletes
    with store.locked():
        assert store.read_cached(rel) is None
    assert not victim.exists()
    assert any("crafted again on resume" in e["message"] for e in store.events())
    store.close()
    with SessionStore(sessions / "s") as store:
        rig, plan, models, cal = open_runner_parts(store)
        assert Runner(store, rig, plan, models, calibration=cal).run().reason == "finished"
        assert store.read_cached(rel) is not None and len(store.done_ids()) == 8
