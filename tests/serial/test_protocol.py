"""The wire format: PCM encoding, line splitting, hello parsing, window choice."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.serial import DutInfo, b64_to_pcm, loudest_window, pcm_to_b64
from testbed.serial.lines import LineBuffer
from testbed.serial.protocol import decode, encode


def test_pcm_round_trip_is_int16_exact_and_clips():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.2, 1.2, 4000).astype(np.float32)
    y = b64_to_pcm(pcm_to_b64(x))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - np.clip(x, -1, 1))) <= 0.5 / 32767 + 1e-7
    assert y.max() <= 1.0 and y.min() >= -1.0


def test_b64_rejects_odd_bytes_and_non_base64():
    assert b64_to_pcm("AAE=").shape == (1,)  # 2 bytes: one sample
    with pytest.raises(ValueError):
        b64_to_pcm("AA==")  # 1 byte: half a sample
    with pytest.raises(ValueError):
        b64_to_pcm("not base64 !")


def test_decode_accepts_objects_only():
    assert decode(encode({"trial": 3, "label": "yes"})) == {"trial": 3, "label": "yes"}
    assert decode(b'{"trial": 3, "lab') is None
    assert decode(b"\xff\xfe garbage") is None
    assert decode(b"[1, 2]") is None


def test_line_buffer_splits_crlf_and_partial_lines():
    buf = LineBuffer()
    assert buf.feed(b'{"a":1}\r\n{"b"') == [b'{"a":1}']
    assert buf.feed(b':2}\n\n') == [b'{"b":2}', b""]


def test_line_buffer_drops_overlong_line_and_recovers():
    buf = LineBuffer(max_line_bytes=10)
    assert buf.feed(b"x" * 25) == []
    assert buf.feed(b"yyy\nok\n") == [b"ok"]
    assert buf.dropped == 1


def test_dutinfo_from_hello_validates():
    info = DutInfo.from_hello({"model": "m", "labels": ["a", "b"], "sample_rate": 16000}, "/dev/x")
    assert info.labels == ["a", "b"] and info.sample_rate == 16000 and info.port == "/dev/x"
    for bad in ({"labels": ["a"]}, {"model": "m", "labels": []}, {"model": "m", "labels": [1]},
                {"model": "m", "labels": ["a"], "sample_rate": -5}, "nope"):
        with pytest.raises(ValueError):
            DutInfo.from_hello(bad, "/dev/x")


def test_loudest_window_finds_the_burst_and_pads_short_input():
    x = np.zeros(40000, dtype=np.float32)
    x[25000:30000] = 0.5
    w = loudest_window(x, 16000)
    assert w.shape == (16000,) and np.sum(w == 0.5) == 5000
    short = loudest_window(np.ones(100, dtype=np.float32), 160)
    assert short.shape == (160,) and short[:100].sum() == 100 and short[100:].sum() == 0
