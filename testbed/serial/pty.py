"""A pseudo-terminal that plays the device end of a serial link.

Emulators (the reference DUT, the GRBL stand-in, the misbehaving devices of the tests)
read and write the pty *master*; clients open the *slave* path with pyserial exactly as
they would open ``/dev/ttyUSB0``. With ``link``, the pty is reachable through a stable
symlink that :meth:`PtyPort.reopen` re-points, as udev does when a USB device is
unplugged and plugged back in.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import time
import tty
from pathlib import Path

from testbed.errors import DeviceError


class PtyPort:
    """The device end of a new pseudo-terminal (POSIX only).

    Parameters
    ----------
    link : Path or None
        If given, a symlink made to point at the slave device; clients should open it.

    Attributes
    ----------
    device : str
        The slave device path (``/dev/pts/N``) of the current pty.
    """

    def __init__(self, link: Path | str | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self.device = ""
        self._open()

    # -- lifecycle ----------------------------------------------------------
    def _open(self) -> None:
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise DeviceError(f"cannot create a pseudo-terminal: {exc.strerror or exc}") from None
        tty.setraw(slave)  # no echo, no line editing: a clean 8-bit link like a UART
        self._master, self._slave = master, slave
        self.device = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            os.symlink(self.device, tmp)
            os.replace(tmp, self.link)

    @property
    def path(self) -> str:
        """What a client should open: the link if there is one, else the slave device."""
        return str(self.link) if self.link is not None else self.device

    @property
    def is_open(self) -> bool:
        return self._master is not None

    def unread_bytes(self) -> int:
        """Bytes written to the client that it has not read yet (0 when closed)."""
        if self._slave is None:
            return 0
        try:
            raw = fcntl.ioctl(self._slave, termios.FIONREAD, struct.pack("i", 0))
        except OSError:
            return 0
        return struct.unpack("i", raw)[0]

    def drain(self, timeout_s: float = 2.0) -> bool:
        """Wait until the client has read everything sent (closing a pty discards unread bytes).

        Bytes may sit in the kernel's flip buffer for a moment before they are counted as
        unread, so the queue must read empty on two checks 50 ms apart.

        Returns
        -------
        bool
            True if drained, False if ``timeout_s`` seconds passed first.
        """
        deadline = time.monotonic() + timeout_s
        empty_checks = 0
        while empty_checks < 2:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
            empty_checks = empty_checks + 1 if self.unread_bytes() == 0 else 0
        return True

    def close(self) -> None:
        """Unplug: close both ends (a client's next read fails) and remove the link."""
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        if self.link is not None:
            self.link.unlink(missing_ok=True)

    def reopen(self) -> None:
        """Plug back in: a fresh pty, the link (if any) pointing at it."""
        self.close()
        self._open()

    def __enter__(self) -> "PtyPort":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- byte stream ----------------------------------------------------------
    def read(self, timeout_s: float = 0.1, max_bytes: int = 65536) -> bytes:
        """Bytes the client wrote, waiting at most ``timeout_s`` seconds; ``b""`` if none (or closed)."""
        fd = self._master
        if fd is None:
            return b""
        try:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                return b""
            return os.read(fd, max_bytes)
        except (OSError, ValueError):
            return b""

    def write(self, data: bytes) -> None:
        """Send ``data`` to the client (blocks while the client's input queue is full)."""
        fd = self._master
        if fd is None:
            raise DeviceError("pty: write after close")
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
