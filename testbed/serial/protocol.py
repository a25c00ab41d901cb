"""The DUT serial protocol: newline-delimited JSON (see docs/serial-protocol.md).

Host -> DUT::

    {"cmd":"hello"}
    {"cmd":"arm","trial":ID,"window_ms":N}
    {"cmd":"audio","trial":ID,"sample_rate":16000,"pcm_b64":"..."}   (int16 LE, mono)

DUT -> host::

    {"hello":{"model":"lm-int8","labels":[...],"sample_rate":16000,"protocol":1}}
    {"armed":ID}
    {"trial":ID,"label":"yes","scores":[...],"latency_ms":4.2}
    {"trial":ID,"error":"why"}        (or {"error":"why"} for a line it could not read)
    {"log":"free text"}               (ignored by the host)
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from testbed.errors import SerialProtocolError
from testbed.serial.messages import MAX_SCORES, is_name, loads_strict, one_line

PROTOCOL_VERSION = 1

TrialId = int | str


def encode(msg: dict) -> bytes:
    """One message as one line of compact JSON, ``\\n`` terminated."""
    return (json.dumps(msg, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def decode(line: bytes) -> dict | None:
    """A line as a JSON object, or ``None`` if it is not one (garbled, truncated, noise, NaN or
    Infinity, nested too deep). Fields are not checked: the host reads DUT lines with
    :func:`testbed.serial.messages.read_dut_line`."""
    try:
        msg = loads_strict(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, SerialProtocolError):
        return None
    return msg if isinstance(msg, dict) else None


def pcm_to_b64(pcm: np.ndarray) -> str:
    """Float PCM in [-1, 1], shape (n_samples,), as base64 of int16 little-endian."""
    x = np.clip(np.asarray(pcm, dtype=np.float64).reshape(-1), -1.0, 1.0)
    return base64.b64encode(np.round(x * 32767.0).astype("<i2").tobytes()).decode("ascii")


def b64_to_pcm(text: str) -> np.ndarray:
    """Inverse of :func:`pcm_to_b64`: float32 PCM, shape (n_samples,).

    Raises
    ------
    ValueError
        If ``text`` is not base64 of a whole number of int16 samples.
    """
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % 2:
        raise ValueError("odd number of bytes in pcm_b64")
    return (np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32767.0)


def hello_msg() -> dict:
    return {"cmd": "hello"}


def arm_msg(trial: TrialId, window_ms: float) -> dict:
    return {"cmd": "arm", "trial": trial, "window_ms": round(float(window_ms), 3)}


def audio_msg(trial: TrialId, pcm: np.ndarray, sample_rate: int) -> dict:
    return {"cmd": "audio", "trial": trial, "sample_rate": int(sample_rate), "pcm_b64": pcm_to_b64(pcm)}


@dataclass(frozen=True)
class DutInfo:
    """What a DUT said about itself in its ``hello`` answer.

    Attributes
    ----------
    model : str
        Name of the model it runs (a zoo name for the reference emulator).
    labels : list of str
        Its output labels, in score order.
    sample_rate : int or None
        The rate (Hz) it wants injected audio at; None if it did not say.
    protocol : int
        Protocol version it speaks (1 if it did not say).
    firmware : str
        Free text (firmware name and version); "" if it did not say.
    input : str
        Where it hears trials: "mic" (its own microphone), "injection" (``audio``
        messages), or "" if it did not say.
    port : str
        The serial port the host reached it on.
    """

    model: str
    labels: list[str]
    sample_rate: int | None = None
    protocol: int = PROTOCOL_VERSION
    firmware: str = ""
    input: str = ""
    port: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_hello(cls, body: object, port: str) -> "DutInfo":
        """Parse the body of ``{"hello": {...}}``; ValueError (one line) naming the field that is
        missing or of the wrong type."""
        if not isinstance(body, dict):
            raise ValueError("'hello' is not an object")
        model, labels = body.get("model"), body.get("labels")
        if not is_name(model):
            raise ValueError("'hello.model' is missing or not a one-line string")
        if (not isinstance(labels, list) or not labels or len(labels) > MAX_SCORES
                or not all(is_name(x) for x in labels)):
            raise ValueError("'hello.labels' is missing or not a list of one-line strings")
        if len(set(labels)) != len(labels):
            raise ValueError("'hello.labels' names a label twice")
        sr = body.get("sample_rate")
        if sr is not None and (not isinstance(sr, int) or isinstance(sr, bool) or not 0 < sr <= 10_000_000):
            raise ValueError("'hello.sample_rate' is not a positive integer")
        protocol = body.get("protocol", PROTOCOL_VERSION)
        if not isinstance(protocol, int) or isinstance(protocol, bool) or not 1 <= protocol <= 1_000_000:
            raise ValueError("'hello.protocol' is not a positive integer")
        text: dict[str, str] = {}
        for key in ("firmware", "input"):
            v = body.get(key, "")
            if not isinstance(v, str):
                raise ValueError(f"'hello.{key}' is not a string")
            text[key] = one_line(v)
        return cls(model=model, labels=list(labels), sample_rate=sr, protocol=protocol,
                   firmware=text["firmware"], input=text["input"], port=port)


@dataclass
class TrialResult:
    """What became of one trial on the DUT.

    Attributes
    ----------
    trial : int or str
        The trial id the host armed.
    ok : bool
        True when the DUT answered with a valid prediction for this trial.
    label : str or None
        Its prediction (None when ``ok`` is False).
    scores : list of float
        Its per-label scores, in :attr:`DutInfo.labels` order (may be empty).
    latency_ms : float or None
        Inference time the DUT reported, milliseconds.
    round_trip_ms : float or None
        Host-measured time from arming (or from sending the audio) to the answer, ms.
    reason : str or None
        Why the trial failed (timeout, disconnect, DUT error ...); None when ``ok``.
    notes : list of str
        Things that happened on the line meanwhile (garbled lines, stale or duplicate
        answers ignored, reconnects), for the session log.
    """

    trial: TrialId
    ok: bool
    label: str | None = None
    scores: list[float] = field(default_factory=list)
    latency_ms: float | None = None
    round_trip_ms: float | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def failed(cls, trial: TrialId, reason: str, notes: list[str] | None = None) -> "TrialResult":
        return cls(trial=trial, ok=False, reason=reason, notes=list(notes or []))


@dataclass
class PendingTrial:
    """An armed trial waiting for its answer; made by :meth:`~testbed.serial.DutClient.begin`.

    Attributes
    ----------
    trial : int or str
        Trial id.
    window_ms : float
        How long the DUT listens after arming, milliseconds.
    armed_at : float
        ``time.monotonic()`` when the acknowledgement arrived (or arming failed).
    failure : str or None
        Why arming failed; :meth:`~testbed.serial.DutClient.finish` then returns a failed result at once.
    notes : list of str
        What happened on the line so far.
    """

    trial: TrialId
    window_ms: float
    armed_at: float
    failure: str | None = None
    notes: list[str] = field(default_factory=list)
