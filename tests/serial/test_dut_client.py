"""DutClient against the reference emulator and against misbehaving DUTs, over real ptys."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from testbed.errors import DeviceError, SerialProtocolError
from testbed.serial import DutClient, DutEmulator


def _client(port, timeout_s: float = 0.5, reconnect_s: float = 2.0) -> DutClient:
    c = DutClient(port.path, timeout_s=timeout_s, reconnect_s=reconnect_s)
    c.connect()
    return c


def test_handshake_and_round_trip(dut_port, classifier, tone):
    emu = DutEmulator(dut_port, classifier)
    with emu.running(), _client(dut_port) as client:
        assert client.info.model == "loudness-3"
        assert client.info.labels == ["yes", "no", "silence"]
        assert client.info.sample_rate == 16000 and client.info.input == "injection"
        loud = client.evaluate(1, tone(0.5))
        quiet = client.evaluate(2, tone(0.035))
        silent = client.evaluate(3, np.zeros(16000, np.float32))
    assert [r.label for r in (loud, quiet, silent)] == ["yes", "no", "silence"]
    for r, tid in zip((loud, quiet, silent), (1, 2, 3)):
        assert r.ok and r.reason is None and r.trial == tid and r.notes == []
        assert len(r.scores) == 3 and abs(sum(r.scores) - 1.0) < 1e-4
        assert r.latency_ms is not None and r.latency_ms >= 0 and r.round_trip_ms >= r.latency_ms
    # the scores are the classifier's own, to int16 precision of the audio
    want = classifier(np.round(tone(0.5) * 32767) / 32767)
    assert np.allclose(loud.scores, want, atol=1e-4)


def test_window_truncates_and_host_resamples_to_dut_rate(dut_port, classifier, tone):
    with DutEmulator(dut_port, classifier).running(), _client(dut_port) as client:
        r1 = client.evaluate(1, tone(0.5, n_samples=32000), window_ms=500)
        r2 = client.evaluate(2, tone(0.5, n_samples=48000, sample_rate=48000), sample_rate=48000)
    assert r1.ok and r2.ok
    assert classifier.calls[0] == 8000  # 500 ms of the 2 s clip reached the model
    assert classifier.calls[1] == 16000  # 1 s at 48 kHz arrived as 1 s at 16 kHz


def test_mic_mode_begin_then_finish(dut_port, classifier, tone):
    heard: list[float] = []

    def listen(window_s: float) -> np.ndarray:  # a DUT microphone hearing a loud command
        heard.append(window_s)
        time.sleep(window_s)
        return tone(0.5, n_samples=int(window_s * 16000))

    with DutEmulator(dut_port, classifier, listen=listen).running(), _client(dut_port) as client:
        assert client.info.input == "mic"
        t0 = time.monotonic()
        pending = client.begin(7, window_ms=300)
        assert pending.failure is None
        acked_after = time.monotonic() - t0
        result = client.finish(pending)
    assert acked_after < 0.25, "arm must be acknowledged before the DUT starts listening"
    assert heard == [0.3]
    assert result.ok and result.label == "yes" and result.trial == 7


class GarblingDut(DutEmulator):
    """Sends noise, a stale answer, an unknown message and a half line before each real answer."""

    def handle(self, msg):
        if msg and msg.get("cmd") == "audio":
            yield b"\x00\xff\xfe##garbage##\n"
            yield b'{"trial": 99, "label": "no", "scores": [0, 1, 0]}\n'
            yield b'{"foo": 1}\n'
            yield b'{"trial": 1, "lab\n'
            yield b'{"log": "adc overrun"}\n'
        yield from super().handle(msg)


def test_garbled_and_out_of_order_lines_are_ignored_and_noted(dut_port, classifier, tone):
    with GarblingDut(dut_port, classifier).running(), _client(dut_port) as client:
        r = client.evaluate(1, tone(0.5))
    assert r.ok and r.label == "yes"
    text = " | ".join(r.notes)
    assert text.count("garbled") == 2
    assert "out-of-order answer for trial 99" in text
    assert "unexpected message" in text
    assert "adc overrun" not in text  # log lines are not trial events


class MuteDut(DutEmulator):
    """Answers hello, then nothing at all (or, with ack=True, acknowledges arm and goes quiet)."""

    def __init__(self, *a, ack: bool = False, **kw):
        super().__init__(*a, **kw)
        self.ack = ack

    def handle(self, msg):
        if msg and msg.get("cmd") == "hello":
            yield from super().handle(msg)
        elif msg and msg.get("cmd") == "arm" and self.ack:
            yield {"armed": msg["trial"]}


@pytest.mark.parametrize("ack", [False, True])
def test_dut_that_never_answers_fails_each_trial_with_reason(dut_port, classifier, tone, ack):
    with MuteDut(dut_port, classifier, ack=ack).running(), _client(dut_port, timeout_s=0.3) as client:
        t0 = time.monotonic()
        results = [client.evaluate(i, tone(0.5, n_samples=1600)) for i in (1, 2)]
        took = time.monotonic() - t0
    for i, r in zip((1, 2), results):
        assert not r.ok and r.trial == i and r.label is None
        assert ("no answer to 'arm'" in r.reason) if not ack else ("no answer from the DUT" in r.reason)
        assert dut_port.path in r.reason
    assert 0.55 < took < 3.0  # it waited for each timeout, and not forever


class DoubleDut(DutEmulator):
    """Answers every trial twice."""

    def handle(self, msg):
        replies = list(super().handle(msg))
        yield from replies
        if msg and msg.get("cmd") == "audio":
            yield from replies


def test_dut_that_answers_twice(dut_port, classifier, tone):
    with DoubleDut(dut_port, classifier).running(), _client(dut_port) as client:
        r1 = client.evaluate(1, tone(0.5))
        r2 = client.evaluate(2, np.zeros(16000, np.float32))
    assert r1.ok and r1.label == "yes"
    assert r2.ok and r2.label == "silence", "the duplicate answer for trial 1 must not become trial 2's"
    assert any("second answer for trial 1" in n for n in r2.notes)


class RefusingDut(DutEmulator):
    def handle(self, msg):
        if msg and msg.get("cmd") == "audio":
            yield {"trial": msg["trial"], "error": "mic buffer overflow"}
        elif msg and msg.get("cmd") == "arm" and msg["trial"] == 2:
            yield {"trial": 2, "label": "maybe", "scores": []}  # answers before ack, wrong label
        else:
            yield from super().handle(msg)


def test_dut_errors_and_invalid_labels_fail_the_trial(dut_port, classifier, tone):
    with RefusingDut(dut_port, classifier).running(), _client(dut_port) as client:
        r1 = client.evaluate(1, tone(0.5))
        r2 = client.evaluate(2, tone(0.5))
    assert not r1.ok and r1.reason == "DUT error: mic buffer overflow"
    assert not r2.ok and "'maybe'" in r2.reason and "not one of the labels" in r2.reason


class UnpluggingDut(DutEmulator):
    """Unplugs itself while trial ``on`` is in flight and comes back after ``back_s``."""

    def __init__(self, *a, on: int, back_s: float, **kw):
        super().__init__(*a, **kw)
        self.on, self.back_s = on, back_s

    def handle(self, msg):
        if msg and msg.get("cmd") == "audio" and msg.get("trial") == self.on:
            self.stream.close()
            threading.Timer(self.back_s, self.stream.reopen).start()
            return
        yield from super().handle(msg)


def test_dut_disconnects_mid_session_and_comes_back(dut_port, classifier, tone):
    emu = UnpluggingDut(dut_port, classifier, on=2, back_s=0.3)
    with emu.running(), _client(dut_port, reconnect_s=3.0) as client:
        results = [client.evaluate(i, tone(0.5)) for i in (1, 2, 3, 4)]
    assert [r.ok for r in results] == [True, False, True, True]
    r2 = results[1]
    assert "disconnected during the trial" in r2.reason and r2.reason.endswith("reconnected")
    assert any("reconnected to the DUT" in n for n in r2.notes)
    assert results[2].label == "yes" and results[3].label == "yes"


def test_dut_gone_longer_than_reconnect_window_then_back(dut_port, classifier, tone):
    emu = UnpluggingDut(dut_port, classifier, on=1, back_s=1.0)
    with emu.running(), _client(dut_port, reconnect_s=0.4) as client:
        r1 = client.evaluate(1, tone(0.5))
        assert not client.connected
        time.sleep(0.9)  # the session goes on; the DUT is back before trial 2
        r2 = client.evaluate(2, tone(0.5))
    assert not r1.ok and "did not come back within 0.4 s" in r1.reason
    assert r2.ok and r2.label == "yes"
    assert any("reconnected" in n for n in r2.notes)


def test_wrong_port_lists_ports_that_exist(tmp_path):
    with pytest.raises(DeviceError) as info:
        DutClient(str(tmp_path / "ttyNOPE"), timeout_s=0.2).connect()
    msg = str(info.value)
    assert "dut.serial.port" in msg and "ttyNOPE" in msg and "does not exist" in msg
    assert "ports that exist:" in msg or "no serial ports were found" in msg


def test_silent_port_is_a_protocol_error(dut_port):
    # a pty with nothing answering: the port opens, nobody says hello
    t0 = time.monotonic()
    with pytest.raises(SerialProtocolError, match="no answer to 'hello'"):
        DutClient(dut_port.path, timeout_s=0.3).connect()
    assert time.monotonic() - t0 < 2.0


@pytest.mark.jack
def test_mic_dut_listens_to_a_real_jack_input(dut_port, classifier, jack_server):
    """`dut emulate --mic`'s listener on a real JACK server (dummy driver: the input hears silence)."""
    from testbed.serial import make_mic_listener

    listen = make_mic_listener("JACK Audio Connection Kit", 16000)
    with DutEmulator(dut_port, classifier, listen=listen).running(), _client(dut_port) as client:
        t0 = time.monotonic()
        result = client.evaluate(1, None, window_ms=400)
        took = time.monotonic() - t0
    assert result.ok and result.label == "silence", result.reason
    assert classifier.calls == [6400]  # 400 ms at 16 kHz from the sound card
    assert took >= 0.39


def test_mic_listener_unknown_device_lists_inputs():
    from testbed.serial import make_mic_listener

    with pytest.raises(DeviceError, match=r"--mic 'no such mic xyz'.*inputs:"):
        make_mic_listener("no such mic xyz", 16000)
