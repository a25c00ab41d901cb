"""`testbed session inject`: an operator plays a disturbance into a running simulated session and
watches its suspenders pause it and resume it, every trial committed exactly once."""

from __future__ import annotations

import math

import pytest

from testbed.audio.sim import SimBackend
from testbed.errors import SessionError
from testbed.session import Runner, open_runner_parts
from testbed.session.disturbance import INJECT_REQUEST, request_injection, take_injection
from testbed.session.store import open_reader
from tests.session.test_suspenders import FakeTime, _exactly_once, _session


@pytest.mark.parametrize("level, captures, kind", [
    (math.nan, 3, "noise"), (0.0, 3, "noise"), (200.0, 3, "noise"), (80.0, 0, "noise"), (80.0, 3, "thunder"),
])
def test_a_request_it_could_not_play_is_refused(tmp_path, level, captures, kind):
    with pytest.raises(SessionError) as err:
        request_injection(tmp_path, level, captures, kind)
    assert "\n" not in str(err.value)
    assert not (tmp_path / INJECT_REQUEST).exists()


def test_a_request_is_played_once_and_logged(tmp_path):
    class Backend:
        name = "sim"
        calls: list = []

        def inject(self, level, n, *, kind, freq_hz):
            self.calls.append((level, n, kind, freq_hz))

    log = []
    request_injection(tmp_path, 90.0, 4)
    msg = take_injection(tmp_path, Backend(), lambda kind, m: log.append((kind, m)))
    assert Backend.calls == [(90.0, 4, "noise", 1000.0)] and "90 dB SPL" in msg
    assert log == [("injected", msg)] and not (tmp_path / INJECT_REQUEST).exists()
    assert take_injection(tmp_path, Backend(), lambda kind, m: log.append((kind, m))) is None   # nothing asked
    (tmp_path / INJECT_REQUEST).write_text("{not json")
    assert "unreadable" in take_injection(tmp_path, Backend(), lambda kind, m: log.append((kind, m)))
    assert log[-1][0] == "error" and not (tmp_path / INJECT_REQUEST).exists() and len(Backend.calls) == 1
    request_injection(tmp_path, 90.0, 4)
    assert "plays no test sound" in take_injection(tmp_path, object(), lambda kind, m: log.append((kind, m)))


def test_an_injected_loud_room_pauses_the_session_and_it_resumes(tmp_path, office_rig_path, tiny_zoo):
    store = _session(tmp_path, office_rig_path, tiny_zoo, "ambient_max_dba = 60\npoll_s = 0.5\nclear_s = 1.0")
    rig, plan, models, cal = open_runner_parts(store)
    backend = SimBackend(rig, seed=1)
    fake = FakeTime()
    events = []

    def on_event(e):
        events.append(e)
        if e.kind == "trial" and e.done == 2:
            request_injection(store.path, 90.0, 4)      # what `testbed session inject ID` writes

    res = Runner(store, rig, plan, models, backend=backend, on_event=on_event,
                 suspend_clock=(fake.clock, fake.sleep)).run()
    assert res.reason == "finished"
    _exactly_once(store, events)
    kinds = [e.kind for e in events if e.kind in ("trial", "pause", "resume")]
    assert kinds == ["trial", "trial", "pause", "resume", "trial", "trial"], kinds
    logged = [e["kind"] for e in store.events() if e["kind"] in ("injected", "paused", "resumed")]
    assert logged == ["injected", "paused", "resumed"]
    pause = next(e for e in events if e.kind == "pause")
    assert "ambient" in pause.message and "above 60" in pause.message
    with open_reader(store.path) as r:                  # nothing was recorded in the loud room
        amb = [f["levels"]["ref"]["ambient_dba_spl"] for _, mic, _, f in r.capture_timing() if mic == "ref"]
    assert len(amb) == 4 and max(amb) < 60
    store.close()


def test_inject_on_a_session_that_is_not_running_is_one_line(tmp_path, office_rig_path, tiny_zoo, cli):
    store = _session(tmp_path, office_rig_path, tiny_zoo, "ambient_max_dba = 60")
    store.close()
    res = cli(["session", "inject", store.path.name, "--sessions-dir", store.path.parent, "--noise-dbspl", "90"])
    assert res.exit_code == 2 and "not running" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (store.path / INJECT_REQUEST).exists()
