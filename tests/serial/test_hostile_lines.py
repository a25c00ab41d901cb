"""Issue #22, reproduction 5: valid but odd JSON from a device is refused in one line, never a
TypeError, never stored; a device that stops answering (or reading) fails the trial in bounded time."""

from __future__ import annotations

import time

import pytest

from testbed.errors import SerialProtocolError
from testbed.serial import DutClient, DutEmulator, DutInfo, GrblEmulator, Positioner
from testbed.serial.messages import DutLineError, read_dut_line

DEADLINE_S = 15.0


@pytest.mark.parametrize(("line", "field", "trial"), [
    (b'{"trial":[1],"label":"yes"}', "'trial' is a list", None),
    (b'{"trial":true,"label":"yes"}', "'trial' is a boolean", None),
    (b'{"trial":1.0,"label":"yes"}', "'trial' is a number", None),
    (b'{"armed":{"x":1}}', "'armed' is an object", None),
    (b'{"trial":3,"label":["yes"]}', "'label' is a list", 3),
    (b'{"trial":3,"label":"yes","scores":"high"}', "'scores' is a string", 3),
    (b'{"trial":3,"label":"yes","scores":[0.5,null]}', "'scores'[1] is null", 3),
    (b'{"trial":3,"label":"yes","scores":[true,false]}', "'scores'[0] is a boolean", 3),
    (b'{"trial":3,"label":"yes","scores":[NaN,0.1]}', "non-finite number NaN", 3),
    (b'{"trial":"t-3","label":"yes","scores":[0.1,Infinity]}', "non-finite number Infinity", "t-3"),
    (b'{"trial":3,"label":"yes","scores":[1e400]}', "not finite", 3),
    (b'{"trial":3,"label":"yes","latency_ms":-Infinity}', "non-finite number -Infinity", 3),
    (b'{"trial":3,"label":"yes","latency_ms":"4 ms"}', "'latency_ms' is a string", 3),
    (b'{"trial":3,"error":{"code":5}}', "'error' is an object", 3),
    (b'{"trial":3,"label":"yes","scores":[' + b"9" * 40 + b']}', "digits", 3),
    (b'{"hello":[1,2]}', "'hello' is a list", None),
    (b'{"log":12}', "'log' is a number", None),
])
def test_odd_json_is_one_line_protocol_error_naming_the_field(line, field, trial):
    with pytest.raises(SerialProtocolError) as err:
        read_dut_line(line)
    msg = str(err.value)
    assert isinstance(err.value, DutLineError) and field in msg and "\n" not in msg
    assert err.value.trial == trial


def test_noise_is_garbled_not_an_error_and_good_lines_pass():
    for noise in (b"\xff\xfe", b'{"trial": 1, "lab', b"[1, 2]", b"[" * 100000, b"42"):
        assert read_dut_line(noise) is None
    ok = read_dut_line(b'{"trial":3,"label":"yes","scores":[0.9,0.1],"latency_ms":4.2,"extra":[1]}')
    assert ok["scores"] == [0.9, 0.1] and ok["latency_ms"] == 4.2


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "m", "labels": ["a"], "protocol": None}, "'hello.protocol'"),
    ({"model": "m", "labels": ["a"], "protocol": "1"}, "'hello.protocol'"),
    ({"model": "m", "labels": ["a"], "sample_rate": True}, "'hello.sample_rate'"),
    ({"model": "m", "labels": ["a"], "firmware": 7}, "'hello.firmware'"),
    ({"model": "m", "labels": ["a"], "input": None}, "'hello.input'"),
    ({"model": "m\nx", "labels": ["a"]}, "'hello.model'"),
    ({"model": "m", "labels": ["a", "a"]}, "'hello.labels'"),
])
def test_hello_fields_are_type_checked(body, field):
    with pytest.raises(ValueError, match=field):
        DutInfo.from_hello(body, "/dev/x")


class OddHelloDut(DutEmulator):
    def hello(self):
        h = super().hello()
        h["hello"]["protocol"] = None
        return h


def test_hello_with_null_protocol_is_one_line_protocol_error(dut_port, classifier):
    with OddHelloDut(dut_port, classifier).running():
        with pytest.raises(SerialProtocolError) as err:
            DutClient(dut_port.path, timeout_s=0.5).connect()
    msg = str(err.value)
    assert "\n" not in msg and "'hello.protocol'" in msg and "dut.serial.port" in msg


class OddAnswerDut(DutEmulator):
    """Before each real answer, a line with a list for a trial id (the issue's TypeError)."""

    def handle(self, msg):
        if msg and msg.get("cmd") == "audio":
            yield b'{"trial":[1],"label":"yes"}\n'
        yield from super().handle(msg)


def test_list_trial_id_is_refused_and_the_real_answer_counts(dut_port, classifier, tone):
    with OddAnswerDut(dut_port, classifier).running(), DutClient(dut_port.path, timeout_s=0.5) as client:
        client.connect()
        r = client.evaluate(1, tone(0.5))
    assert r.ok and r.label == "yes"
    assert any("refused a DUT line" in n and "'trial' is a list" in n for n in r.notes)


class NanScoresDut(DutEmulator):
    """Answers with the right label but a NaN or an Infinity among its scores."""

    def handle(self, msg):
        if msg and msg.get("cmd") == "audio":
            for reply in super().handle(msg):
                text = _encode(reply)
                bad = b"NaN" if msg["trial"] == 1 else b"-Infinity"
                yield text.replace(b'"scores":[', b'"scores":[' + bad + b",", 1)
            return
        yield from super().handle(msg)


def _encode(reply: dict) -> bytes:
    from testbed.serial.protocol import encode

    return encode(reply)


def test_non_finite_scores_fail_the_trial_at_once_and_are_not_stored(dut_port, classifier, tone):
    with NanScoresDut(dut_port, classifier).running(), DutClient(dut_port.path, timeout_s=3.0) as client:
        client.connect()
        t0 = time.monotonic()
        results = [client.evaluate(i, tone(0.5)) for i in (1, 2)]
        took = time.monotonic() - t0
    for r, word in zip(results, ("NaN", "-Infinity")):
        assert not r.ok and r.label is None and r.scores == []
        assert "refused" in r.reason and word in r.reason and "\n" not in r.reason
    assert took < 3.0, "a refused answer for this trial fails it now, not at the timeout"


class StuckDut(DutEmulator):
    """Answers trial 1, then acknowledges trial 2's arm and stops reading the line for good."""

    stuck = False

    def serve(self, stop=None, on_message=None):
        real_read = self.stream.read

        def read(timeout_s: float = 0.1) -> bytes:
            if self.stuck:
                time.sleep(timeout_s)
                return b""
            return real_read(timeout_s)

        self.stream = _Proxy(self.stream, read)
        super().serve(stop, on_message)

    def handle(self, msg):
        yield from super().handle(msg)
        if msg and msg.get("cmd") == "arm" and msg.get("trial") == 2:
            self.stuck = True


class _Proxy:
    def __init__(self, port, read):
        self._port, self.read = port, read

    def write(self, data: bytes) -> None:
        self._port.write(data)


def test_dut_that_stops_reading_fails_trials_in_bounded_time(dut_port, classifier, tone):
    """A 10 s clip (about 430 kB of base64) cannot be written to a DUT that no longer reads:
    the write times out, the trial fails with one line naming the port, the next one too."""
    with StuckDut(dut_port, classifier).running(), \
            DutClient(dut_port.path, timeout_s=0.5, reconnect_s=0.5) as client:
        client.connect()
        assert client.evaluate(1, tone(0.5)).ok
        t0 = time.monotonic()
        r2 = client.evaluate(2, tone(0.5, n_samples=160000))
        r3 = client.evaluate(3, tone(0.5))
        took = time.monotonic() - t0
    for r in (r2, r3):
        assert not r.ok and dut_port.path in r.reason and "\n" not in r.reason
    assert took < DEADLINE_S


class HostileGrbl(GrblEmulator):
    """A GRBL whose position reports turn to NaN after the first one."""

    def status_line(self, now=None):
        line = super().status_line(now)
        self.reports = getattr(self, "reports", 0) + 1
        return line if self.reports == 1 else "<Idle|MPos:nan,inf,0.000|FS:0,0>"


def test_non_finite_positioner_report_is_refused_not_taken_as_reached(grbl_port):
    with HostileGrbl(grbl_port).running():
        pos = Positioner(grbl_port.path, room_size_m=(6.0, 5.0, 3.0), timeout_s=3.0)
        pos.connect()
        with pos, pytest.raises(SerialProtocolError) as err:
            pos.move_to(1.0, 1.0)
    msg = str(err.value)
    assert "\n" not in msg and "unreadable MPos" in msg and "positioner.port" in msg


class HungGrbl(GrblEmulator):
    """Takes the move, then hangs: no ok, no status report, ever."""

    hung = False

    def _send(self, text):
        if not self.hung:
            super()._send(text)

    def _gcode(self, up, now):
        if "G0" in up:
            self.hung = True
        super()._gcode(up, now)


def test_positioner_that_stops_answering_is_a_one_line_device_error_in_bounded_time(grbl_port):
    from testbed.errors import DeviceError

    with HungGrbl(grbl_port).running():
        pos = Positioner(grbl_port.path, room_size_m=(6.0, 5.0, 3.0), timeout_s=0.5)
        pos.connect()
        t0 = time.monotonic()
        with pos, pytest.raises(DeviceError) as err:
            pos.move_to(1.0, 1.0)
    msg = str(err.value)
    assert "\n" not in msg and "did not answer" in msg and grbl_port.path in msg
    assert time.monotonic() - t0 < DEADLINE_S
