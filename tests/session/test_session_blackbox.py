"""A label-only black-box attack against the serial DUT emulator over a pty, in the loop of a session on
the simulated rig: every query is a played, captured and stored trial (issue 24, item 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testbed.rig import read_toml
from testbed.session import Runner, create_session, open_runner_parts
from tests.session.conftest import tone_utterances

PLAN = """
name = "bbloop"
seed = 1
[utterances]
labels = ["yes"]
per_label = 1
[[attacks]]
kind = "nes"
over_the_air = true
eps = [0.02]
source_model = "lm-fp32"
params = {{ oracle = "dut", label_only = true, iterations = 5, population = 4, max_queries = {budget}, random_start = true }}
[sweep]
delay_ms = [0, 100]
mics = ["ref", "cheap"]
[evaluate]
models = ["lm-fp32"]
[timing]
preroll_s = 0.05
tail_s = 0.05
"""

QUERIES = 8        # max_queries 10 // population 4 = 2 iterations of 4 queries
FINAL = 2          # the final perturbation at each planned delay


def _serial_rig(tmp_path, office_rig_path, device: str):
    import tomli_w

    data = read_toml(office_rig_path)
    data["dut"] = {**data["dut"], "transport": "serial", "serial": {"port": device, "timeout_s": 10.0}}
    path = tmp_path / "serial-dut.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def _session(tmp_path, rig_path, zoo, name: str):
    plan = tmp_path / f"{name}.toml"
    plan.write_text(PLAN.format(budget=10))
    return create_session(plan, rig_path, root=tmp_path / name, models_root=zoo,
                          utterances=tone_utterances(["yes"]))


def _run(store, **kw):
    rig, plan, models, cal = open_runner_parts(store)
    return Runner(store, rig, plan, models, calibration=cal, **kw).run()


def _rows(store, sql: str, *args):
    return store.db.execute(sql, args).fetchall()


@pytest.fixture
def serial_dut(tmp_path, office_rig_path, tiny_zoo):
    from testbed.serial import DutEmulator, PtyPort, load_zoo_classifier

    with PtyPort() as pty:
        emulator = DutEmulator(pty, load_zoo_classifier("lm-int8", tiny_zoo))
        with emulator.running():
            yield emulator, _serial_rig(tmp_path, office_rig_path, pty.device)


def test_every_query_is_a_stored_trial_and_resume_replays_the_history(tmp_path, tiny_zoo, serial_dut):
    emulator, rig_path = serial_dut
    store = _session(tmp_path, rig_path, tiny_zoo, "whole")
    planned = store.planned()
    queries = [t for t in planned if t.attack_id.endswith("-queries")]
    assert len(planned) == QUERIES + FINAL and len(queries) == QUERIES
    assert sorted(t.repetition for t in queries) == list(range(QUERIES))
    res = _run(store)
    assert res.reason == "finished"
    assert emulator.trials_answered == QUERIES + FINAL            # one DUT query per trial, no more
    n_query_rows = _rows(store, "SELECT COUNT(*) FROM trials JOIN planned USING(trial_id) "
                                "WHERE planned.attack_id LIKE '%-queries'")[0][0]
    assert n_query_rows == QUERIES
    assert _rows(store, "SELECT COUNT(*) FROM trials")[0][0] == QUERIES + FINAL
    serial = _rows(store, "SELECT trial_id, prediction FROM evaluations WHERE eval_source = 'serial' AND mic = 'cheap'")
    assert len(serial) == QUERIES + FINAL and all(p is not None for _, p in serial)
    # each query played its own candidate on the adversary speaker, inside the eps ball
    played = _rows(store, "SELECT p.trial_id, p.sha256, t.facts FROM played p JOIN trials t USING(trial_id) "
                          "WHERE p.speaker = 'adversary'")
    query_ids = {t.trial_id for t in queries}
    q = [(tid, sha, json.loads(f)) for tid, sha, f in played if tid in query_ids]
    assert len(q) == QUERIES and len({sha for _, sha, _ in q}) == QUERIES
    assert sorted(f["blackbox_query"]["index"] for _, _, f in q) == list(range(QUERIES))
    aid = next(t.attack_id for t in planned if t not in queries)
    final = store.read_cached(f"perturbations/yes-0__{aid}.wav")
    assert final is not None and float(np.abs(final).max()) <= 0.02 + 1e-6
    store.close()

    # the same session stopped after 3 trials and resumed: the committed queries are answered from
    # the store, the DUT is asked only the rest, and the attack ends where the whole run did
    before = emulator.trials_answered
    part = _session(tmp_path, rig_path, tiny_zoo, "resumed")
    done = []
    res = _run(part, on_event=lambda e: done.append(e) if e.kind == "trial" else None,
               should_stop=lambda: len(done) >= 3)
    assert res.reason == "stopped" and len(part.done_ids()) == 3
    assert _run(part).reason == "finished"
    assert emulator.trials_answered - before == QUERIES + FINAL
    assert any("answered from the store" in e["message"] and "3 answered" in e["message"] for e in part.events())
    again = part.read_cached(f"perturbations/yes-0__{aid}.wav")
    np.testing.assert_array_equal(again, final)
    part.close()


@pytest.mark.parametrize("params", [{}, {"max_queries": 10, "population": 4}, {"iterations": 3, "eot_samples": 2},
                                    {"max_queries": 100, "population": 6, "eot_samples": 3, "iterations": 50}])
def test_planned_queries_match_what_the_attack_spends(params):
    import torch

    from testbed.attacks import OTANES
    from testbed.session.trials import planned_queries

    atk = OTANES(torch.nn.Linear(4, 2), 0.01, oracle="dut", **params)
    assert planned_queries(params) == atk.queries_per_example
