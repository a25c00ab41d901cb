"""The reference DUT firmware, emulated: runs a model and answers the DUT protocol.

It hears the trial either through a real microphone (a sounddevice input, after
``arm``, for ``window_ms``) or through ``{"cmd":"audio"}`` injection, runs the model on
the loudest model-length window and answers ``{"trial","label","scores","latency_ms"}``.
``testbed dut emulate`` serves it on a serial port or a new pty; the tests serve it on
a pty in a thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from testbed.errors import DeviceError
from testbed.serial.classifier import Classifier
from testbed.serial.lines import LineBuffer
from testbed.serial.ports import io_errors
from testbed.serial.protocol import PROTOCOL_VERSION, b64_to_pcm, decode, encode

log = logging.getLogger("testbed.serial.emulator")

FIRMWARE = "testbed-dut-emulator 1"


class ByteStream(Protocol):
    """The device end of a serial link (a :class:`~testbed.serial.pty.PtyPort`, :class:`SerialStream`)."""

    def read(self, timeout_s: float = 0.1) -> bytes: ...
    def write(self, data: bytes) -> None: ...


class SerialStream:
    """A pyserial port as a :class:`ByteStream` (the emulator on a real UART or USB gadget)."""

    def __init__(self, ser) -> None:
        self.ser = ser

    @property
    def path(self) -> str:
        return str(self.ser.port)

    def read(self, timeout_s: float = 0.1) -> bytes:
        try:
            data = self.ser.read(1)  # waits at most the port's own poll timeout (set at open)
            if data and self.ser.in_waiting:
                data += self.ser.read(self.ser.in_waiting)
            return data
        except io_errors() as exc:
            raise DeviceError(f"--port {self.ser.port}: serial port failed: {exc}") from None

    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
            self.ser.flush()
        except io_errors() as exc:
            raise DeviceError(f"--port {self.ser.port}: serial port failed: {exc}") from None


def make_mic_listener(device: str | int, sample_rate: int) -> Callable[[float], np.ndarray]:
    """A function recording ``window_s`` seconds of mono float32 from sounddevice input ``device``.

    Raises
    ------
    DeviceError
        No such input device (the message lists the inputs that exist).
    """
    import sounddevice as sd

    try:
        sd.check_input_settings(device=device, channels=1, samplerate=sample_rate, dtype="float32")
    except (ValueError, sd.PortAudioError) as exc:
        inputs = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        raise DeviceError(f"--mic {device!r}: {exc} (inputs: {', '.join(inputs) or 'none'})") from None

    def listen(window_s: float) -> np.ndarray:
        rec = sd.rec(int(round(window_s * sample_rate)), samplerate=sample_rate, channels=1,
                     dtype="float32", device=device)
        sd.wait()
        return rec[:, 0]

    return listen


class DutEmulator:
    """Answers the DUT protocol on ``stream`` with ``classifier``.

    Parameters
    ----------
    stream : ByteStream
        The device end of the link.
    classifier : Classifier
        The model.
    listen : callable or None
        ``listen(window_s) -> float32 (n,)`` records the DUT microphone; None means the
        audio arrives by injection.
    """

    def __init__(self, stream: ByteStream, classifier: Classifier, *,
                 listen: Callable[[float], np.ndarray] | None = None) -> None:
        self.stream = stream
        self.classifier = classifier
        self.listen = listen
        self._armed: dict[object, float] = {}  # trial -> window_ms
        self.trials_answered = 0

    def hello(self) -> dict:
        c = self.classifier
        return {"hello": {"model": c.name, "labels": list(c.labels), "sample_rate": int(c.sample_rate),
                          "protocol": PROTOCOL_VERSION, "firmware": FIRMWARE,
                          "input": "mic" if self.listen else "injection"}}

    def _answer(self, trial: object, pcm: np.ndarray) -> dict:
        t0 = time.perf_counter()
        scores = np.asarray(self.classifier(pcm), dtype=np.float64)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        self.trials_answered += 1
        return {"trial": trial, "label": self.classifier.labels[int(np.argmax(scores))],
                "scores": [round(float(s), 6) for s in scores], "latency_ms": round(latency_ms, 3)}

    def handle(self, msg: dict | None) -> Iterator[dict]:
        """The answers to one host message, in order (a generator: the first is sent at once)."""
        if msg is None:
            yield {"error": "malformed line (expected one JSON object)"}
            return
        cmd = msg.get("cmd")
        if cmd == "hello":
            yield self.hello()
        elif cmd == "arm":
            trial, window_ms = msg.get("trial"), msg.get("window_ms")
            if trial is None or not isinstance(window_ms, (int, float)) or window_ms <= 0:
                yield {"trial": trial, "error": "arm needs 'trial' and a positive 'window_ms'"}
                return
            self._armed = {trial: float(window_ms)}  # arming a new trial drops an older one
            yield {"armed": trial}
            if self.listen is not None:
                pcm = self.listen(float(window_ms) / 1000.0)
                self._armed.pop(trial, None)
                yield self._answer(trial, pcm)
        elif cmd == "audio":
            trial = msg.get("trial")
            if self.listen is not None:
                yield {"trial": trial, "error": "audio injection is off: this DUT listens to its microphone"}
            elif trial not in self._armed:
                yield {"trial": trial, "error": f"trial {trial!r} is not armed"}
            elif msg.get("sample_rate") != self.classifier.sample_rate:
                self._armed.pop(trial, None)
                yield {"trial": trial, "error": f"sample_rate {msg.get('sample_rate')!r} is not "
                                                f"{self.classifier.sample_rate}"}
            else:
                window_ms = self._armed.pop(trial)
                try:
                    pcm = b64_to_pcm(str(msg.get("pcm_b64", "")))
                except ValueError as exc:
                    yield {"trial": trial, "error": f"bad pcm_b64: {exc}"}
                    return
                pcm = pcm[: int(round(window_ms / 1000.0 * self.classifier.sample_rate))]
                yield self._answer(trial, pcm)
        else:
            yield {"error": f"unknown cmd {cmd!r}"}

    def serve(self, stop: threading.Event | None = None,
              on_message: Callable[[dict], None] | None = None) -> None:
        """Answer until ``stop`` is set (checked every 0.1 s).

        Parameters
        ----------
        stop : threading.Event or None
            Set it to return; None serves until the stream fails.
        on_message : callable or None
            Called with every message sent (the CLI prints one line per trial).
        """
        buf = LineBuffer()
        while stop is None or not stop.is_set():
            data = self.stream.read(0.1)
            for line in buf.feed(data):
                msg = decode(line)
                if msg is None:
                    log.info("host sent a garbled line: %r", line[:60])
                for reply in self.handle(msg):
                    if isinstance(reply, bytes):  # raw bytes: a fault-injecting subclass's garbage
                        self.stream.write(reply)
                        continue
                    self.stream.write(encode(reply))
                    if on_message is not None:
                        on_message(reply)

    @contextlib.contextmanager
    def running(self) -> Iterator["DutEmulator"]:
        """Serve in a daemon thread for the duration of a ``with`` block."""
        stop = threading.Event()
        thread = threading.Thread(target=self.serve, args=(stop,), daemon=True, name="dut-emulator")
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)
