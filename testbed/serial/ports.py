"""Finding and opening serial ports, with one-line errors that list the ports that exist."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from testbed.errors import DeviceError


def list_ports() -> list[dict]:
    """Serial ports this machine has, as ``testbed devices`` lists them.

    Returns
    -------
    list of dict
        One ``{"device", "description", "hwid"}`` per port, sorted by device path
        (USB-serial adapters, on-board UARTs; udev ``/dev/serial/by-id`` links are
        added as their own rows because rigs usually name those).
    """
    from serial.tools import list_ports as lp

    rows = {p.device: {"device": p.device, "description": p.description or "", "hwid": p.hwid or ""}
            for p in lp.comports()}
    for link in sorted(glob.glob("/dev/serial/by-id/*")):
        target = os.path.realpath(link)
        base = rows.get(target, {"description": "", "hwid": ""})
        rows[link] = {"device": link, "description": base["description"] or f"link to {target}",
                      "hwid": base["hwid"]}
    return [rows[k] for k in sorted(rows)]


def io_errors() -> tuple[type[BaseException], ...]:
    """What pyserial may raise when a port vanishes under it (termios errors escape its wrapping)."""
    import serial

    errs: list[type[BaseException]] = [serial.SerialException, OSError, TypeError]
    try:
        import termios

        errs.append(termios.error)
    except ImportError:  # pragma: no cover - Windows
        pass
    return tuple(errs)


def read_burst(ser, wait_s: float) -> bytes:
    """Bytes available on ``ser`` within ``wait_s`` seconds: waits for the first byte (polling at the
    port's own timeout), then takes whatever else has arrived; b"" when nothing came.

    Raises whatever :func:`io_errors` names when the port goes away.
    """
    import time

    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        data = ser.read(1)  # returns at the first byte, or after the port's poll timeout
        if data:
            n = ser.in_waiting
            return data + ser.read(n) if n else data
        if time.monotonic() >= deadline:
            return b""


def _ports_hint() -> str:
    names = [p["device"] for p in list_ports()]
    return f"ports that exist: {', '.join(names)}" if names else "no serial ports were found on this machine"


def open_serial(port: str, baud: int, *, field: str, timeout_s: float = 0.05, write_timeout_s: float = 5.0):
    """Open ``port`` with pyserial, or raise a :class:`DeviceError` naming the rig field.

    Parameters
    ----------
    port : str
        Device path (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``, a pty path, ``COM3``).
    baud : int
        Line speed in bit/s.
    field : str
        The rig field the port came from (``dut.serial.port``), named in errors.
    timeout_s : float
        Read timeout of the returned port, seconds: the polling step of readers, which
        loop on it rather than change it (every change reprograms the port).
    write_timeout_s : float
        Longest one ``write`` call may block (a device that stops reading), seconds.

    Returns
    -------
    serial.Serial
        Open port, raw 8N1, no flow control, ``exclusive`` where the OS allows it.
    """
    import serial

    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout_s, write_timeout=write_timeout_s, exclusive=True)
    except io_errors() as exc:
        if not isinstance(exc, serial.SerialException):  # e.g. termios.error on a pty that just died
            raise DeviceError(f"{field}: cannot open serial port {port!r}: {exc}") from None
        errno_ = getattr(exc, "errno", None)
        if errno_ == 2 or (not Path(port).exists() and not port.upper().startswith("COM")):
            raise DeviceError(f"{field}: serial port {port!r} does not exist ({_ports_hint()}); "
                              "plug the device in or fix the rig file") from None
        if errno_ == 13:
            raise DeviceError(f"{field}: no permission to open {port!r}; add your user to the "
                              "'dialout' group (then log in again)") from None
        if errno_ in (11, 16) or "busy" in str(exc).lower() or "lock" in str(exc).lower():
            raise DeviceError(f"{field}: serial port {port!r} is busy (another program has it open); "
                              "close it and try again") from None
        raise DeviceError(f"{field}: cannot open serial port {port!r}: {exc}") from None
