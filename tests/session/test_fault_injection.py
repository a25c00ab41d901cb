"""Fault injection (issue #22): the writer is SIGKILLed at every step of a trial commit (files
written, fsynced, renamed, transaction begun, rows inserted, committed); resume then ends with
every trial exactly once and every file recorded before the kill byte-identical."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from testbed.session.store import SessionStore
from testbed.session.store.commit import STEPS
from tests.session.conftest import REPO, quick_plan, tone_utterances

#: A child process: commit the pending trials of a hand-made session (tests.session.conftest's
#: records, seeded per trial), SIGKILLing itself at STEP of the N-th commit when asked.
WRITER = """
import os, signal, sys
import numpy as np
from testbed.session.store import SessionStore, commit
from tests.session.conftest import SR, make_record

folder, step, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = []

def hook(name):
    if name == "written":
        seen.append(1)
    if name == step and len(seen) == nth:
        os.kill(os.getpid(), signal.SIGKILL)

commit.STEP_HOOK = hook if step != "none" else None
with SessionStore(folder) as store, store.locked():
    store.recover()
    for spec in store.pending():
        store.commit_trial(make_record(spec.trial_id, np.random.default_rng(spec.trial_id)), SR)
"""

#: The same around the real runner: ``testbed session resume`` with the hook set.
RUNNER = """
import os, signal, sys
from testbed.session.store import commit

step, nth = sys.argv[1], int(sys.argv[2])
seen = []

def hook(name):
    if name == "written":
        seen.append(1)
    if name == step and len(seen) == nth:
        os.kill(os.getpid(), signal.SIGKILL)

commit.STEP_HOOK = hook
from testbed.cli.app import app
app(sys.argv[3:])
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _recorded_files(folder: Path) -> dict[str, str]:
    """rel path -> sha256 of every file a committed row names (captures and played), as on disk."""
    with sqlite3.connect(f"file:{folder / 'session.sqlite'}?mode=ro", uri=True) as db:
        rels = [r[0] for r in db.execute("SELECT path FROM captures UNION ALL SELECT path FROM played")]
    return {rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest() for rel in rels}


def _check_complete(folder: Path, total: int, n_mics: int, n_models: int, before: dict[str, str]) -> None:
    with sqlite3.connect(f"file:{folder / 'session.sqlite'}?mode=ro", uri=True) as db:
        trials = [r[0] for r in db.execute("SELECT trial_id FROM trials ORDER BY trial_id")]
        caps = db.execute("SELECT trial_id, mic, path, sha256 FROM captures").fetchall()
        played = db.execute("SELECT path, sha256 FROM played").fetchall()
        evals = Counter(db.execute("SELECT trial_id, mic, model, eval_source FROM evaluations").fetchall())
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert trials == list(range(total))                                  # every trial, exactly once
    assert len(caps) == total * n_mics and len({(t, m) for t, m, _, _ in caps}) == total * n_mics
    assert len(evals) == total * n_mics * n_models and set(evals.values()) == {1}
    for rel, sha in [(p, s) for _, _, p, s in caps] + played:            # every file is what its row says
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == sha, rel
    after = _recorded_files(folder)
    assert {k: after[k] for k in before} == before                       # recorded before: byte-identical
    assert sorted(p.name for p in (folder / "audio").iterdir()) == [f"{i:06d}" for i in range(total)]
    assert not list(folder.rglob(".tmp-*"))


@pytest.mark.parametrize("nth", [1, 3])
@pytest.mark.parametrize("step", STEPS)
def test_a_writer_killed_at_any_commit_step_resumes_with_every_trial_once(hand_store, step, nth):
    folder = hand_store.path
    hand_store.close()
    run = [sys.executable, "-c", WRITER, str(folder)]
    proc = subprocess.run(run + [step, str(nth)], env=_env(), capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    before = _recorded_files(folder)
    committed = len({p.split("/")[1] for p in before})
    # the kill lands in trial nth - 1: it is committed only when the kill came after COMMIT
    assert committed == nth - 1 + (step == "committed")
    with SessionStore(folder, readonly=True) as r:
        assert r.status(verify=True)["corrupted"] == []
        assert r.status(verify=False)["state"] != "running"
    proc = subprocess.run(run + ["none", "0"], env=_env(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    _check_complete(folder, total=4, n_mics=2, n_models=1, before=before)
    with SessionStore(folder, readonly=True) as r:
        recovered = " ".join(e["message"] for e in r.events() if e["kind"] == "recovered")
    if step in ("renamed", "begun", "inserted"):   # a renamed folder without its row was discarded
        assert f"audio/{nth - 1:06d}" in recovered


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_the_runner_killed_at_any_commit_step_resumes_with_every_trial_once(tmp_path, office_rig_path,
                                                                            tiny_zoo, step):
    from testbed.session import create_session

    sessions = tmp_path / "sessions"
    store = create_session(quick_plan(tmp_path), office_rig_path, root=sessions, models_root=tiny_zoo,
                           session_id="s", utterances=tone_utterances(["yes", "no"]))
    folder = store.path
    store.close()
    cli = ["session", "resume", "s", "--quiet", "--sessions-dir", str(sessions), "--models-dir", str(tiny_zoo)]
    proc = subprocess.run([sys.executable, "-c", RUNNER, step, "3", *cli], env=_env(), capture_output=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    before = _recorded_files(folder)
    assert len({p.split("/")[1] for p in before}) == 2 + (step == "committed")
    proc = subprocess.run([sys.executable, "-m", "testbed.cli.app", *cli], env=_env(), capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    _check_complete(folder, total=8, n_mics=2, n_models=3, before=before)
