"""Positioner against the GRBL emulator over a real pty."""

from __future__ import annotations

import time

import pytest

from testbed.errors import DeviceError, PositionerAlarm, SerialProtocolError
from testbed.serial import GrblEmulator, Positioner

ROOM = (6.0, 5.0, 3.0)


def _open(port, **kw) -> Positioner:
    pos = Positioner(port.path, room_size_m=ROOM, origin_m=(0.5, 0.25), timeout_s=kw.pop("timeout_s", 3.0), **kw)
    pos.connect()
    return pos


def test_home_and_move_with_origin_offset(grbl_port):
    emu = GrblEmulator(grbl_port, speed_mm_s=20000.0)
    with emu.running(), _open(grbl_port) as pos:
        pos.home()
        pos.move_to(4.5, 3.0)
        st = pos.status()
        pos.move_to(1.0, 1.0)
    assert "$H" in emu.lines
    assert "G90 G0 X4000.000 Y2750.000" in emu.lines  # (4.5 - 0.5) m, (3.0 - 0.25) m in mm
    assert emu.moves == [(4000.0, 2750.0), (500.0, 750.0)]
    assert st.state == "Idle" and st.x_m == pytest.approx(4.5) and st.y_m == pytest.approx(3.0)
    # each move waited for the planner (G4 P0) before the next command went out
    i = emu.lines.index("G90 G0 X4000.000 Y2750.000")
    assert emu.lines[i + 1] == "G4 P0"


def test_move_waits_until_idle(grbl_port):
    emu = GrblEmulator(grbl_port, speed_mm_s=5000.0)  # 1.5 m at 5 m/s: 0.3 s of motion
    with emu.running(), _open(grbl_port) as pos:
        t0 = time.monotonic()
        pos.move_to(2.0, 0.25)
        took = time.monotonic() - t0
        assert emu.state == "Idle"
    assert took >= 0.29


def test_soft_limits_from_room_send_nothing(grbl_port):
    emu = GrblEmulator(grbl_port)
    with emu.running(), _open(grbl_port) as pos:
        with pytest.raises(DeviceError, match=r"outside the soft limits x 0\.\.6 m, y 0\.\.5 m"):
            pos.move_to(6.5, 1.0)
        with pytest.raises(DeviceError, match="soft limits"):
            pos.move_to(1.0, -0.1)
    assert emu.moves == []


def test_alarm_mid_move_raises_positioner_alarm_and_locks(grbl_port):
    emu = GrblEmulator(grbl_port, speed_mm_s=4000.0, alarm_on_move=2, alarm_code=1)
    with emu.running(), _open(grbl_port) as pos:
        pos.move_to(1.0, 1.0)
        with pytest.raises(PositionerAlarm) as info:
            pos.move_to(5.0, 4.0)
        msg = str(info.value)
        assert "ALARM:1" in msg and "hard limit" in msg and "halted" in msg
        assert "(5.000, 4.000)" in msg
        # locked until homed: GRBL answers error:9 and nothing moves
        with pytest.raises(DeviceError, match="error:9") as locked:
            pos.move_to(2.0, 2.0)
        assert not isinstance(locked.value, PositionerAlarm)
        pos.home()
        pos.move_to(2.0, 2.0)
    assert emu.moves[-1] == (1500.0, 1750.0)


def test_starts_in_alarm_reports_state_and_needs_homing(grbl_port):
    emu = GrblEmulator(grbl_port, start_in_alarm=True)
    with emu.running(), _open(grbl_port) as pos:
        assert pos.last_status.state == "Alarm"
        with pytest.raises(DeviceError, match=r"error:9 \(G-code locked out"):
            pos.move_to(1.0, 1.0)
        pos.home()
        pos.move_to(1.0, 1.0)
        assert pos.status().state == "Idle"


def test_soft_limit_alarm_from_the_controller(grbl_port):
    emu = GrblEmulator(grbl_port, travel_mm=(1000.0, 1000.0))
    with emu.running(), _open(grbl_port) as pos:
        with pytest.raises(PositionerAlarm, match="ALARM:2 .soft limit"):
            pos.move_to(3.0, 3.0)


def test_no_grbl_on_the_port(grbl_port):
    t0 = time.monotonic()
    with pytest.raises(SerialProtocolError, match="no GRBL status report"):
        _open(grbl_port, timeout_s=0.4)
    assert time.monotonic() - t0 < 2.0


def test_wrong_port_lists_ports(tmp_path):
    with pytest.raises(DeviceError) as info:
        Positioner(str(tmp_path / "ttyGANTRY"), room_size_m=ROOM).connect()
    msg = str(info.value)
    assert "positioner.port" in msg and "ttyGANTRY" in msg and "does not exist" in msg
