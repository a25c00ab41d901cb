"""Crafting, replay and a simulated session through a real scheduler and two worker processes.

The module shares one scheduler and two workers (started and stopped by pid); the last test
kills one of the workers, so it stays last.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from testbed.scale import DaskExecutor, PerturbationCache, craft_plan
from testbed.session import Runner, create_session, open_runner_parts, replay_session
from tests.session.conftest import quick_plan, tone_utterances

RIG = Path(__file__).resolve().parents[2] / "rigs" / "office-sim.toml"

PGD_PLAN = """
name = "craft"
seed = 3
[utterances]
labels = ["yes", "no", "up"]
per_label = 6
[[attacks]]
kind = "pgd"
eps = [0.005, 0.01]
steps = 2
source_model = "lm-fp32"
[sweep]
delay_ms = [0]
mics = ["cheap"]
[evaluate]
models = ["lm-fp32"]
"""


def _session(tmp: Path, zoo: Path, sid: str, delays=(0,), per_label: int = 1):
    return create_session(quick_plan(tmp, name=sid, delays=delays, per_label=per_label), RIG, root=tmp / "s",
                          models_root=zoo, session_id=sid, utterances=tone_utterances(["yes", "no"], per_label))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_zoo):
    """A finished 8-trial sim session, recorded in-process."""
    tmp = tmp_path_factory.mktemp("rec")
    store = _session(tmp, tiny_zoo, "rec")
    r, p, m, c = open_runner_parts(store)
    Runner(store, r, p, m, calibration=c).run()
    store.close()
    return store.path


def _eval_rows(folder: Path, source: str) -> list[tuple]:
    with sqlite3.connect(folder / "session.sqlite") as db:
        return db.execute("SELECT trial_id, mic, model, model_hash, prediction, score_top, scores FROM evaluations "
                          "WHERE eval_source = ? ORDER BY eval_id", (source,)).fetchall()


def test_replay_through_the_cluster_equals_the_in_process_replay(recorded, tmp_path, tiny_zoo, client,
                                                                 monkeypatch):
    import shutil

    import testbed.session.replay as replay
    from testbed.scale.worker import load_counts

    monkeypatch.setattr(replay, "REPLAY_BATCH", 4)      # 16 captures -> 4 chunks x 2 models = 8 tasks
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(recorded, here)
    shutil.copytree(recorded, there)
    models = ["lm-int8", "lm-lowrank"]
    a = replay_session(here, models, models_root=tiny_zoo)
    ex = DaskExecutor(client)
    seen = []
    b = replay_session(there, models, models_root=tiny_zoo, executor=ex, progress=lambda d, n: seen.append((d, n)))
    assert a.as_dict() == b.as_dict() and b.evaluations == 16 * 2
    assert ex.tasks_done == 8 and seen[-1] == (8, 8)
    rows_a, rows_b = _eval_rows(here, "replay"), _eval_rows(there, "replay")
    assert rows_a == rows_b                                 # same rows, same order, same scores
    assert len({r[:3] for r in rows_b}) == 32               # every (trial, mic, model) exactly once
    # each worker loaded each model at most once although it ran several tasks with it
    counts = client.run(load_counts)
    assert len(counts) == 2
    assert all(set(c.values()) <= {1} for c in counts.values())
    hashes = {json.loads((tiny_zoo / m / "card.json").read_text())["weights_sha256"] for m in models}
    assert hashes <= set().union(*[set(c) for c in counts.values()])


def _cached_arrays(cache: PerturbationCache) -> dict[str, np.ndarray]:
    return {p.stem: sf.read(p, dtype="float32")[0] for p in sorted(cache.folder.glob("*/*.wav"))}


def test_craft_on_the_cluster_is_bit_identical_and_never_crafts_twice(tmp_path, tiny_zoo, client):
    plan = tmp_path / "craft.toml"
    plan.write_text(PGD_PLAN)
    utts = tone_utterances(["yes", "no", "up"], 6)        # 18 utterances -> 2 batches per bound
    local, remote = PerturbationCache(tmp_path / "local"), PerturbationCache(tmp_path / "remote")
    a = craft_plan(plan, RIG, models_root=tiny_zoo, cache=local, utterances=utts)
    ex = DaskExecutor(client)
    b = craft_plan(plan, RIG, models_root=tiny_zoo, cache=remote, executor=ex, utterances=utts)
    assert (a.needed, a.crafted, a.cached) == (36, 36, 0)
    assert (b.needed, b.crafted, b.cached) == (36, 36, 0) and ex.tasks_done == 4
    arr_a, arr_b = _cached_arrays(local), _cached_arrays(remote)
    assert len(arr_a) == 36 and arr_a.keys() == arr_b.keys()
    assert all(np.array_equal(arr_a[k], arr_b[k]) for k in arr_a)    # bit-identical
    assert all(np.abs(v).max() <= 0.01 + 1e-7 and np.abs(v).max() > 0 for v in arr_a.values())
    # a second run finds everything and submits nothing
    ex2 = DaskExecutor(client)
    c = craft_plan(plan, RIG, models_root=tiny_zoo, cache=remote, executor=ex2, utterances=utts)
    assert (c.crafted, c.cached) == (0, 36) and ex2.tasks_done == 0


def test_attack_craft_cli_then_session_run_reuses_the_cache(cli, tmp_path, tiny_zoo, dask_procs, monkeypatch):
    """'attack craft --cluster ADDRESS' fills the cache; a later 'session run' copies instead of crafting."""
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(tmp_path / "cache"))
    plan = quick_plan(tmp_path, name="ahead")
    args = ["attack", "craft", plan, "--rig", RIG, "--models-dir", tiny_zoo, "--json"]
    r = cli([*args, "--cluster", dask_procs.address])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert (first["needed"], first["crafted"], first["cached"]) == (2, 2, 0)
    assert first["cluster"] == dask_procs.address
    cache = PerturbationCache(tmp_path / "cache")
    files = sorted(cache.folder.glob("*/*.wav"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    r = cli([*args, "--cluster", "none"])
    assert r.exit_code == 0, r.output
    assert (json.loads(r.stdout)["crafted"], json.loads(r.stdout)["cached"]) == (0, 2)
    r = cli(["session", "run", plan, "--rig", RIG, "--models-dir", tiny_zoo, "--sessions-dir", tmp_path / "s",
             "--id", "ahead", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["done"] == 8
    assert {p: p.stat().st_mtime_ns for p in files} == stamps       # nothing crafted or rewritten
    perts = sorted((tmp_path / "s" / "ahead" / "perturbations").glob("*.wav"))
    cached = {hashlib.sha256(sf.read(p, dtype="float32")[0].tobytes()).hexdigest() for p in files}
    assert len(perts) == 2
    assert {hashlib.sha256(sf.read(p, dtype="float32")[0].tobytes()).hexdigest() for p in perts} == cached


def _flac_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("audio/*/*.flac"))}


def test_session_survives_a_killed_worker_with_every_trial_once(tmp_path, tiny_zoo, client, dask_procs):
    """Kill one worker (SIGKILL, by pid) after the first committed trial: the run still finishes,
    every trial is committed exactly once, and the captures equal an in-process run bit for bit."""
    delays = (0, 100, 250)            # 2 utterances x (none, fgsm) x 3 delays x 2 placements = 24 trials
    ref = _session(tmp_path, tiny_zoo, "inproc", delays)
    r, p, m, c = open_runner_parts(ref)
    Runner(ref, r, p, m, calibration=c).run()
    ref.close()

    store = _session(tmp_path, tiny_zoo, "dist", delays)
    r, p, m, c = open_runner_parts(store)
    victim = dask_procs.workers[1]
    killed_at = []

    def on_event(ev) -> None:
        if ev.kind == "trial" and not killed_at:
            killed_at.append(ev.done)
            os.kill(victim.pid, signal.SIGKILL)

    ex = DaskExecutor(client, trials_per_task=1)
    res = Runner(store, r, p, m, calibration=c, executor=ex, on_event=on_event).run()
    assert res.reason == "finished"
    assert killed_at == [1] and victim.wait(timeout=10) == -signal.SIGKILL
    assert len(client.nthreads()) == 1                               # the run finished on one worker
    st = store.status()
    assert (st["done"], st["total"], st["failed"], st["corrupted"]) == (24, 24, 0, [])
    with sqlite3.connect(store.path / "session.sqlite") as db:
        trials = [t for (t,) in db.execute("SELECT trial_id FROM trials")]
        evals = Counter(db.execute("SELECT trial_id, mic, model FROM evaluations").fetchall())
    assert sorted(trials) == list(range(24))
    assert len(evals) == 24 * 2 * 3 and set(evals.values()) == {1}
    # 2 mic captures per trial + what the user (24) and adversary (12 fgsm trials) speakers played
    assert _flac_hashes(store.path) == _flac_hashes(ref.path) and len(_flac_hashes(store.path)) == 24 * 2 + 24 + 12
    assert _eval_rows(store.path, "live") and sorted(_eval_rows(store.path, "live")) == sorted(
        _eval_rows(ref.path, "live"))
    store.close()
