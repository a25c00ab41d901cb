"""Suspenders pause a simulated session when the room, the DUT, the positioner or the audio goes
wrong, and resume it by themselves (or when asked): every trial is committed exactly once."""

from __future__ import annotations

import threading

import pytest
import tomli_w

from testbed.audio.sim import SimBackend
from testbed.errors import PlanError, SessionError
from testbed.rig import parse_rig, read_toml
from testbed.session import Runner, create_session, open_runner_parts
from testbed.session.plan import load_plan
from testbed.session.store import open_reader
from testbed.session.suspenders import request_resume
from tests.session.conftest import tone_utterances

PLAN = """
name = "sus"
seed = 1
[utterances]
labels = ["yes", "no"]
[[attacks]]
kind = "none"
[sweep]
placements = ["P1", "P2"]
mics = ["ref", "cheap"]
[evaluate]
models = ["lm-fp32"]
[timing]
preroll_s = 0.1
tail_s = 0.1
retries = {retries}
[suspenders]
{suspenders}
"""


class FakeTime:
    """A monotonic clock that only moves when the pause loop sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def _session(tmp_path, rig_path, tiny_zoo, suspenders: str, retries: int = 2):
    plan = tmp_path / "sus.toml"
    plan.write_text(PLAN.format(suspenders=suspenders, retries=retries))
    return create_session(plan, rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                          utterances=tone_utterances(["yes", "no"]))


def _exactly_once(store, events) -> None:
    """Every planned trial committed once, and reported once."""
    st = store.status()
    assert (st["done"], st["total"]) == (4, 4)
    assert sorted(store.done_ids()) == [0, 1, 2, 3]
    trials = [e.trial_id for e in events if e.kind == "trial"]
    assert sorted(trials) == [0, 1, 2, 3]


def _pause_resume(events, store, *, after: int) -> tuple[str, str]:
    """The one pause and the one resume, both after ``after`` committed trials; their messages."""
    kinds = [e.kind for e in events if e.kind in ("trial", "pause", "resume")]
    assert kinds.count("pause") == 1 and kinds.count("resume") == 1, kinds
    assert kinds.index("pause") == after and kinds.index("resume") == after + 1, kinds
    logged = [e["kind"] for e in store.events() if e["kind"] in ("paused", "resumed")]
    assert logged == ["paused", "resumed"]
    pause = next(e for e in events if e.kind == "pause")
    resume = next(e for e in events if e.kind == "resume")
    assert pause.trial_id == resume.trial_id and pause.trial_id not in [
        e.trial_id for e in events[:events.index(pause)] if e.kind == "trial"]
    return pause.message, resume.message


def test_loud_room_pauses_the_session_and_it_resumes_when_quiet(tmp_path, office_rig_path, tiny_zoo):
    store = _session(tmp_path, office_rig_path, tiny_zoo,
                     "ambient_max_dba = 60\npoll_s = 0.5\nclear_s = 1.0")
    rig, plan, models, cal = open_runner_parts(store)
    backend = SimBackend(rig, seed=1)
    fake = FakeTime()
    events = []

    def on_event(e):
        events.append(e)
        if e.kind == "trial" and e.done == 2:
            backend.inject(90.0, 4)       # a door slam: the next 4 captures (probes) are loud

    res = Runner(store, rig, plan, models, backend=backend, on_event=on_event,
                 suspend_clock=(fake.clock, fake.sleep)).run()
    assert res.reason == "finished"
    _exactly_once(store, events)
    why, back = _pause_resume(events, store, after=2)
    assert "ambient" in why and "mic ref" in why and "above 60" in why
    lvl = float(why.split("ambient ")[1].split(" dB")[0])
    assert 85 < lvl < 95                              # the injected 90 dB SPL, read through the calibration
    assert back.startswith("resumed") and fake.t >= 1000.0 + 4 * 0.5 + 1.0
    # nothing recorded in the loud room: every committed trial's pre-roll was quiet
    with open_reader(store.path) as r:
        amb = [f["levels"]["ref"]["ambient_dba_spl"] for _, mic, _, f in r.capture_timing() if mic == "ref"]
    assert len(amb) == 4 and max(amb) < 60
    store.close()


def test_manual_resume_waits_for_the_operator(tmp_path, office_rig_path, tiny_zoo):
    store = _session(tmp_path, office_rig_path, tiny_zoo,
                     'ambient_max_dba = 60\npoll_s = 0.05\nclear_s = 0.0\nresume = "manual"')
    rig, plan, models, cal = open_runner_parts(store)
    backend = SimBackend(rig, seed=1)
    events, asked = [], []

    def ask():
        asked.append(len([e for e in events if e.kind == "pause"]))
        request_resume(store.path)

    def on_event(e):
        events.append(e)
        if e.kind == "trial" and e.done == 1:
            backend.inject(90.0, 1)       # loud for one probe only: clear at once, but manual
        if e.kind == "pause":
            threading.Timer(0.8, ask).start()

    res = Runner(store, rig, plan, models, backend=backend, on_event=on_event).run()
    assert res.reason == "finished"
    _exactly_once(store, events)
    _, back = _pause_resume(events, store, after=1)
    assert "operator" in back and asked == [1]
    pause = next(e for e in events if e.kind == "pause")
    resume = next(e for e in events if e.kind == "resume")
    assert resume.at - pause.at >= 0.7          # it waited for the request, though the room was quiet
    assert not (store.path / "resume.request").exists()
    store.close()


def test_clipping_reference_mic_pauses(tmp_path, office_rig_path, tiny_zoo):
    store = _session(tmp_path, office_rig_path, tiny_zoo, "clipping = true\npoll_s = 1\nclear_s = 2")
    rig, plan, models, cal = open_runner_parts(store)
    backend = SimBackend(rig, seed=1)
    fake, events = FakeTime(), []

    def on_event(e):
        events.append(e)
        if e.kind == "trial" and e.done == 3:
            backend.inject(140.0, 3, mics=["ref"])

    Runner(store, rig, plan, models, backend=backend, on_event=on_event, suspend_clock=(fake.clock, fake.sleep)).run()
    _exactly_once(store, events)
    why, _ = _pause_resume(events, store, after=3)
    assert why.startswith("reference mic clipped: ref (")
    assert store.status()["failed"] == 0
    with open_reader(store.path) as r:
        assert all(c["clipped"] == 0 for c in r.captures())
    store.close()


class _XrunSim(SimBackend):
    """The simulator, reporting one xrun on calls ``bad`` (1-based; probes count)."""

    def __init__(self, rig, bad: range):
        super().__init__(rig, seed=1)
        self.bad, self.calls = bad, 0

    def run_trial(self, plays, record_s, placement=None):
        cap = super().run_trial(plays, record_s, placement)
        self.calls += 1
        cap.facts.xruns = int(self.calls in self.bad)
        return cap


def test_xruns_above_the_rate_pause_and_the_trial_is_redone(tmp_path, office_rig_path, tiny_zoo):
    store = _session(tmp_path, office_rig_path, tiny_zoo, "xruns_per_min = 1\npoll_s = 10\nclear_s = 20",
                     retries=0)
    rig, plan, models, cal = open_runner_parts(store)
    backend = _XrunSim(rig, range(3, 7))     # probe 2, trial 2, and the first two polls have an xrun
    fake, events = FakeTime(), []
    Runner(store, rig, plan, models, backend=backend, on_event=events.append,
           suspend_clock=(fake.clock, fake.sleep)).run()
    _exactly_once(store, events)
    why, _ = _pause_resume(events, store, after=1)
    assert why == "2 xruns in the last minute (limit 1)"
    assert store.status()["failed"] == 0             # the trial with an xrun was played again, not stored
    assert fake.t - 1000.0 >= 60.0                   # the xruns had to leave the one-minute window
    store.close()


def _serial_dut_rig(tmp_path, office_rig_path, port: str):
    data = read_toml(office_rig_path)
    data["dut"] = {**data["dut"], "transport": "serial", "serial": {"port": port, "timeout_s": 0.5}}
    path = tmp_path / "serial-dut.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


@pytest.mark.parametrize("fault", ["silent", "unplugged"])
def test_dut_fault_pauses_the_session_until_it_answers_again(tmp_path, office_rig_path, tiny_zoo, fault):
    from testbed.serial import DutEmulator, PtyPort, load_zoo_classifier

    class FlakyDut(DutEmulator):
        muted = False

        def handle(self, msg):
            return iter(()) if self.muted else super().handle(msg)

    with PtyPort(tmp_path / "ttyDUT") as pty:
        rig_path = _serial_dut_rig(tmp_path, office_rig_path, pty.path)
        store = _session(tmp_path, rig_path, tiny_zoo, "dut = true\npoll_s = 0.1\nclear_s = 0.3")
        rig, plan, models, cal = open_runner_parts(store)
        emulator = FlakyDut(pty, load_zoo_classifier("lm-int8", tiny_zoo))
        events = []

        def fix():
            if fault == "silent":
                emulator.muted = False
            else:
                pty.reopen()                   # plugged back in (a fresh tty behind the same link)

        def on_event(e):
            events.append(e)
            if e.kind == "trial" and e.done == 1:
                if fault == "silent":
                    emulator.muted = True      # the firmware hangs
                else:
                    pty.close()                # the USB cable is pulled
            if e.kind == "pause":
                threading.Timer(1.5, fix).start()

        with emulator.running():
            res = Runner(store, rig, plan, models, backend=SimBackend(rig, seed=1), on_event=on_event).run()
    assert res.reason == "finished"
    _exactly_once(store, events)
    why, _ = _pause_resume(events, store, after=1)
    assert why.startswith("DUT not answering" if fault == "silent" else "DUT disconnected")
    assert emulator.trials_answered == 4                 # each trial heard by the DUT once
    store.close()


@pytest.mark.parametrize("fault", ["alarm", "slipped"])
def test_positioner_fault_pauses_the_session_until_cleared(tmp_path, office_rig_path, tiny_zoo, fault):
    from testbed.serial import GrblEmulator, PtyPort

    with PtyPort(tmp_path / "ttyGRBL") as port:
        data = read_toml(office_rig_path)
        data["backend"] = "sounddevice"      # physical: the runner opens and homes the positioner
        data["positioner"] = {"port": str(tmp_path / "ttyGRBL"), "speaker": "adversary", "timeout_s": 5.0}
        rig_path = tmp_path / "gantry.toml"
        rig_path.write_bytes(tomli_w.dumps(data).encode())
        store = _session(tmp_path, rig_path, tiny_zoo, "positioner = true\npoll_s = 0.1\nclear_s = 0.3")
        rig, plan, models, cal = open_runner_parts(store)
        emu = GrblEmulator(port, speed_mm_s=50000.0)
        events = []

        def fix():
            if fault == "alarm":
                emu.state = "Idle"         # the operator clears it at the controller
            else:
                emu.pos[0] -= 50.0         # and puts the carriage back

        def on_event(e):
            events.append(e)
            if e.kind == "trial" and e.done == 3:
                if fault == "alarm":
                    emu.state = "Alarm"    # a limit switch tripped
                else:
                    emu.pos[0] += 50.0     # the belt slipped 50 mm
            if e.kind == "pause":
                threading.Timer(1.0, fix).start()

        with emu.running():
            res = Runner(store, rig, plan, models, backend=SimBackend(parse_rig(data, rig_path), seed=1),
                         on_event=on_event, prompt_move=lambda req: "ok").run()
    assert res.reason == "finished"
    _exactly_once(store, events)
    why, _ = _pause_resume(events, store, after=3)
    if fault == "alarm":
        assert "Alarm" in why and why.startswith("positioner")
    else:
        assert why.startswith("positioner lost its position") and "50 mm from" in why
    store.close()


def test_plan_keys_override_the_rigs_and_bad_options_are_one_line_errors(tmp_path, office_rig_path, tiny_zoo):
    data = read_toml(office_rig_path)
    data["suspenders"] = {"ambient_max_dba": 70, "clear_s": 30}
    rig = parse_rig(data, office_rig_path)
    plan_path = tmp_path / "p.toml"
    plan_path.write_text(PLAN.format(suspenders="ambient_max_dba = 55\nresume = 'manual'", retries=1))
    opts = load_plan(plan_path).suspender_options(rig)
    assert (opts.ambient_max_dba, opts.clear_s, opts.resume) == (55, 30, "manual")
    plan_path.write_text(PLAN.format(suspenders="ambient_max = 55", retries=1))
    with pytest.raises(PlanError, match="suspenders.ambient_max"):
        load_plan(plan_path)
    # the DUT condition on a rig whose DUT is not on a serial port cannot be checked
    store = _session(tmp_path, office_rig_path, tiny_zoo, "dut = true")
    rig, plan, models, cal = open_runner_parts(store)
    with pytest.raises(SessionError, match="suspenders.dut"):
        Runner(store, rig, plan, models).run()
    store.close()


def test_session_resume_cli_resumes_a_running_paused_session(tmp_path, office_rig_path, tiny_zoo, cli):
    import time

    store = _session(tmp_path, office_rig_path, tiny_zoo,
                     'ambient_max_dba = 60\npoll_s = 0.05\nclear_s = 0.0\nresume = "manual"')
    rig, plan, models, cal = open_runner_parts(store)
    backend = SimBackend(rig, seed=1)
    events, paused = [], threading.Event()

    def on_event(e):
        events.append(e)
        if e.kind == "trial" and e.done == 2:
            backend.inject(90.0, 1)
        if e.kind == "pause":
            paused.set()

    result = {}
    worker = threading.Thread(target=lambda: result.setdefault(
        "res", Runner(store, rig, plan, models, backend=backend, on_event=on_event).run()))
    worker.start()
    assert paused.wait(120), "the session never paused"
    time.sleep(0.3)
    assert not any(e.kind == "resume" for e in events)   # quiet again, but it waits for the operator
    res = cli(["session", "resume", store.path.name, "--sessions-dir", store.path.parent])
    assert res.exit_code == 0, res.output
    assert "asked the running session" in res.output
    worker.join(120)
    assert result["res"].reason == "finished"
    _exactly_once(store, events)
    _, back = _pause_resume(events, store, after=2)
    assert "operator" in back
    store.close()
