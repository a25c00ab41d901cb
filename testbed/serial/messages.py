"""Reading one DUT line strictly: JSON with finite numbers only, every field of its protocol type.

Python's :mod:`json` accepts ``NaN``, ``Infinity`` and ``1e400`` (read as ``inf``), and any
JSON value in any field; a DUT line goes through :func:`read_dut_line` instead, so what the
host keeps is exactly what docs/serial-protocol.md allows::

    read_dut_line(b'{"trial":3,"label":"yes","scores":[0.9,0.1]}')  -> the dict
    read_dut_line(b'noise')                                          -> None (garbled)
    read_dut_line(b'{"trial":[1],"label":"yes"}')                    -> DutLineError, one line
    read_dut_line(b'{"trial":3,"label":"yes","scores":[NaN]}')       -> DutLineError, .trial == 3
"""

from __future__ import annotations

import json
import math

from testbed.errors import SerialProtocolError

#: Longest string kept in a trial id, a label or a model name, characters.
MAX_NAME_CHARS = 200
#: Most scores (and hello labels) a line may carry.
MAX_SCORES = 4096
#: Longest integer literal read, digits (a longer one cannot be a trial id or a score).
MAX_INT_DIGITS = 30


class DutLineError(SerialProtocolError):
    """A DUT line that is JSON but breaks the protocol (a wrong type, a non-finite number).

    Attributes
    ----------
    trial : int, str or None
        The trial the line claimed to answer, when that much of it was readable; a client
        fails that trial at once instead of waiting for an answer that will not come.
    """

    def __init__(self, message: str, trial: int | str | None = None) -> None:
        super().__init__(message)
        self.trial = trial


class _Refused(ValueError):
    """Raised from inside the JSON parser for a number the protocol does not allow."""


def _no_constant(name: str) -> float:
    raise _Refused(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _Refused(f"number {text[:24]} is out of range (not finite)")
    return v


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"integer of {len(text)} digits")
    return int(text)


def _kind(v: object) -> str:
    """What a JSON value is, for messages ('a list', 'null', ...)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "a list" if isinstance(v, list) else "an object"


def is_trial_id(v: object) -> bool:
    """True for what a trial id may be: an integer (not a boolean) or a short printable string."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, str) and 0 < len(v) <= MAX_NAME_CHARS and v.isprintable()


def is_number(v: object) -> bool:
    """True for a finite JSON number (booleans are not numbers here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_name(v: object) -> bool:
    """True for a non-empty printable (one-line) string of at most ``MAX_NAME_CHARS``."""
    return isinstance(v, str) and 0 < len(v) <= MAX_NAME_CHARS and v.isprintable()


def one_line(text: str, n: int = MAX_NAME_CHARS) -> str:
    """``text`` with control characters (newlines ...) replaced by spaces, cut to ``n`` characters."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= n else flat[:n] + "..."


def _claimed_trial(text: str) -> int | str | None:
    """The trial id a line names, read leniently (non-finite numbers as null), or None."""
    try:
        msg = json.loads(text, parse_constant=lambda _s: None,
                         parse_float=lambda _s: None, parse_int=lambda s: None if len(s) > MAX_INT_DIGITS else int(s))
    except (ValueError, RecursionError):
        return None
    trial = msg.get("trial") if isinstance(msg, dict) else None
    return trial if is_trial_id(trial) else None


def check_dut_message(msg: dict) -> dict:
    """Raise :class:`DutLineError` unless every known field of ``msg`` has its protocol type.

    Unknown fields are left alone (a newer firmware may add some); ``hello`` bodies are checked
    in full by :meth:`testbed.serial.protocol.DutInfo.from_hello`.
    """
    for key in ("trial", "armed"):
        if key in msg and not is_trial_id(msg[key]):
            raise DutLineError(f"'{key}' is {_kind(msg[key])}, not an integer or a short string")
    trial = msg.get("trial")
    if "label" in msg and not is_name(msg["label"]):
        raise DutLineError(f"'label' is {_kind(msg['label'])}, not a one-line string", trial)
    if "scores" in msg:
        scores = msg["scores"]
        if not isinstance(scores, list) or len(scores) > MAX_SCORES:
            raise DutLineError(f"'scores' is {_kind(scores)}, not a list of at most {MAX_SCORES} numbers", trial)
        for i, s in enumerate(scores):
            if not is_number(s):
                raise DutLineError(f"'scores'[{i}] is {_kind(s)}, not a finite number", trial)
    lat = msg.get("latency_ms")
    if lat is not None and not (is_number(lat) and lat >= 0):
        raise DutLineError(f"'latency_ms' is {_kind(lat)}, not a finite number >= 0", trial)
    for key in ("error", "log"):
        if key in msg and not isinstance(msg[key], str):
            raise DutLineError(f"'{key}' is {_kind(msg[key])}, not a string", trial)
    if "hello" in msg and not isinstance(msg["hello"], dict):
        raise DutLineError(f"'hello' is {_kind(msg['hello'])}, not an object")
    return msg


def loads_strict(text: str) -> object:
    """``json.loads`` that refuses NaN, Infinity, out-of-range floats and over-long integers.

    Raises
    ------
    DutLineError
        A number the protocol does not allow (``.trial`` is the trial the line named, if any).
    ValueError
        Not JSON (a :class:`json.JSONDecodeError`), or nested too deep to read.
    """
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_short_int)
    except _Refused as exc:
        raise DutLineError(str(exc), _claimed_trial(text)) from None
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def read_dut_line(line: bytes) -> dict | None:
    """One DUT line as a checked message.

    Returns
    -------
    dict or None
        The message; None when the line is not a JSON object at all (noise, a truncated or
        boot line), which a client notes as garbled.

    Raises
    ------
    DutLineError
        A JSON object with a field of the wrong type or a non-finite number; one line.
    """
    try:
        text = line.decode("utf-8")
        msg = loads_strict(text)
    except DutLineError:
        raise
    except (UnicodeDecodeError, ValueError):
        return None
    return check_dut_message(msg) if isinstance(msg, dict) else None
