"""The one serial link base both host-side clients stand on, on a real pseudo-terminal."""

from __future__ import annotations

import logging
import time

import pytest

from testbed.errors import DeviceError
from testbed.serial import DutClient, Positioner
from testbed.serial.link import SerialLink

DEADLINE_S = 5.0


def _link(port) -> SerialLink:
    link = SerialLink(port.path, 115200, field="test.port", label="widget")
    link._open_port()
    return link


def test_a_missing_port_is_one_line_naming_field_and_port(tmp_path):
    link = SerialLink(str(tmp_path / "ttyNONE"), 115200, field="dut.serial.port")
    with pytest.raises(DeviceError) as err:
        link._open_port()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("dut.serial.port: ") and "ttyNONE" in msg
    assert not link.connected


def test_lines_arrive_by_the_deadline_and_unread_ones_stay_queued(dut_port):
    with _link(dut_port) as link:
        link._write_bytes(b"ping\n")
        assert dut_port.read(timeout_s=DEADLINE_S) == b"ping\n"
        dut_port.write(b"one\r\ntwo\nthr")
        got = []
        for line in link._lines_until(time.monotonic() + DEADLINE_S):
            got.append(line)
            break  # stop after the first: "two" must wait for the next reader
        assert got == [b"one"]
        dut_port.write(b"ee\n")
        rest = []
        for line in link._lines_until(time.monotonic() + DEADLINE_S):
            rest.append(line)
            if len(rest) == 2:
                break
        assert rest == [b"two", b"three"]
        t0 = time.monotonic()
        assert list(link._lines_until(t0 + 0.3)) == []  # silence: returns at the deadline
        assert time.monotonic() - t0 >= 0.3
    assert not link.connected


def test_garbled_lines_are_logged_and_noted(dut_port, caplog):
    notes: list[str] = []
    with _link(dut_port) as link, caplog.at_level(logging.WARNING, logger="testbed.serial"):
        link._garbled(b"\xff\xfe{not json" + b"x" * 100, notes)
    assert len(notes) == 1 and notes[0].startswith("ignored a garbled line ") and notes[0].endswith("...'")
    assert "widget" in caplog.text and "garbled" in caplog.text


def test_a_vanished_port_closes_the_link_and_raises_the_subclass_error(dut_port):
    link = _link(dut_port)
    dut_port.close()
    with pytest.raises(DeviceError, match=r"test\.port: widget port .* failed while reading"):
        for _ in link._lines_until(time.monotonic() + DEADLINE_S):
            pass
    assert not link.connected
    with pytest.raises(DeviceError, match="is not open"):
        link._write_bytes(b"x")


@pytest.mark.parametrize("cls", [DutClient, Positioner])
def test_both_clients_use_the_one_port_handling(cls):
    assert issubclass(cls, SerialLink)
    for name in ("_open_port", "close", "_write_bytes", "_fill", "_read_lines", "_lines_until", "__enter__"):
        assert name not in vars(cls), f"{cls.__name__} redefines {name}"
