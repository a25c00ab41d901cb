"""The run's event stream: one typed record, start first, stop last, one trial event per committed trial."""

from __future__ import annotations

import dataclasses

import pytest

from testbed.audio.sim import SimBackend
from testbed.errors import DeviceError
from testbed.session import RunEvent, Runner, create_session, load_evaluations, open_runner_parts
from tests.session.conftest import quick_plan, tone_utterances


def _run(store, **kw):
    rig, plan, models, cal = open_runner_parts(store)
    return Runner(store, rig, plan, models, calibration=cal, **kw).run()


def test_a_simulated_run_emits_one_record_type_start_first_stop_last(tmp_path, office_rig_path, tiny_zoo):
    store = create_session(quick_plan(tmp_path, delays=(0, 100)), office_rig_path, root=tmp_path / "s",
                           models_root=tiny_zoo, utterances=tone_utterances(["yes", "no"]))
    events: list[RunEvent] = []
    res = _run(store, on_event=events.append)
    assert res.reason == "finished"
    assert all(type(e) is RunEvent for e in events)
    assert events[0].kind == "start" and (events[0].done, events[0].total) == (0, 16)
    assert events[-1].kind == "stop" and events[-1].reason == "finished"
    assert [e.kind for e in events[1:-1]] == ["craft"] * (len(events) - 18) + ["trial"] * 16
    trials = [e for e in events if e.kind == "trial"]
    assert sorted(e.trial_id for e in trials) == sorted(store.done_ids()) == list(range(16))
    assert [e.done for e in trials] == list(range(1, 17)) and {e.total for e in trials} == {16}
    crafts = [e for e in events if e.kind == "craft"]
    assert crafts[0].done == 0 and crafts[-1].done == crafts[-1].total == 2
    # each trial event says what a monitor shows, and agrees with what was committed
    df = load_evaluations(store.path)
    dut = df[df.is_dut_mic & (df.eval_source == "live")]
    for e in trials:
        rows = dut[dut.trial_id == e.trial_id]
        assert e.attack in {"none", "fgsm-0.01-untargeted-lm-fp32"} and e.placement in {"P1", "P2"}
        assert e.eps == (0.0 if e.attack == "none" else 0.01) and e.delay_ms in (0.0, 100.0)
        assert e.predictions == dict(zip(rows.model, rows.prediction))
        assert e.correct == {m: p == e.label for m, p in e.predictions.items()}
        assert e.at > 0 and not e.failed
    last = trials[-1]
    for m in ("lm-fp32", "lm-int8"):
        wrong = int((dut[dut.model == m].prediction != dut[dut.model == m].label).sum())
        assert last.errors[m] == (wrong, 16) and last.error_rate(m) == wrong / 16
    assert last.as_dict()["errors"]["lm-fp32"] == [last.errors["lm-fp32"][0], 16]
    with pytest.raises(dataclasses.FrozenInstanceError):
        last.done = 0
    store.close()


def test_a_stopped_run_ends_with_a_stop_event_saying_why(tmp_path, office_rig_path, tiny_zoo):
    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes"]))
    events: list[RunEvent] = []
    res = _run(store, on_event=events.append, should_stop=lambda: sum(e.kind == "trial" for e in events) >= 2)
    assert res.reason == "stopped"
    assert events[0].kind == "start" and events[-1].kind == "stop" and events[-1].reason == "stopped"
    assert sum(e.kind == "trial" for e in events) == len(store.done_ids()) == 2
    # nothing pending: still start then stop
    events.clear()
    _run(store, on_event=events.append)
    events.clear()
    _run(store, on_event=events.append)
    assert [e.kind for e in events] == ["start", "stop"] and events[-1].message == "nothing left to run"
    store.close()


class _DeadCard(SimBackend):
    """A sound card that fails every call after the first ``good`` ones."""

    def __init__(self, rig, good: int):
        super().__init__(rig, seed=1)
        self.good = good
        self.calls = 0

    def run_trial(self, plays, record_s, placement=None):
        self.calls += 1
        if self.calls > self.good:
            raise DeviceError("sim card: gone")
        return super().run_trial(plays, record_s, placement)


def test_a_dying_device_gives_retry_then_failure_then_stop(tmp_path, office_rig_path, tiny_zoo):
    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes"]))
    rig, plan, models, cal = open_runner_parts(store)
    events: list[RunEvent] = []
    with pytest.raises(DeviceError, match="after 3 attempts"):
        Runner(store, rig, plan, models, backend=_DeadCard(rig, good=1), on_event=events.append).run()
    kinds = [e.kind for e in events if e.kind != "craft"]
    assert kinds == ["start", "trial", "retry", "retry", "failure", "stop"]
    retries = [e for e in events if e.kind == "retry"]
    assert [e.attempt for e in retries] == [1, 2] and {e.trial_id for e in retries} == {1}
    assert "gone" in events[-2].message and events[-1].reason == "error"
    assert store.done_ids() == {0}
    store.close()
