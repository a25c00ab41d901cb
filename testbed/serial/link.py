"""One serial link: the port handling the DUT client and the positioner share.

:class:`SerialLink` opens a port (a one-line :class:`~testbed.errors.DeviceError` naming the
rig field and the port, see :func:`~testbed.serial.ports.open_serial`), writes bytes, reads
complete lines with a deadline, notes garbled lines and closes. What a device says, and what
a failing port means to its caller, is the subclass's business: it names the exception a
closed or failing port raises in :meth:`SerialLink._port_error`.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterator

from testbed.errors import DeviceError
from testbed.serial.lines import MAX_LINE_BYTES, LineBuffer
from testbed.serial.ports import io_errors, open_serial, read_burst

#: Longest wait for new bytes in one read, seconds: deadlines are checked at least this often.
POLL_S = 0.1
#: Bytes handed to the port per write call, so a write's deadline is checked between chunks.
WRITE_CHUNK = 4096
#: Default longest wait for one chunk to be taken by the port, seconds (a device that stops reading).
WRITE_TIMEOUT_S = 5.0


class WriteTimeout(Exception):
    """The device did not take (or the driver did not send) the bytes in time."""


def short_repr(line: bytes | str, n: int = 60) -> str:
    """``repr`` of a line cut to ``n`` characters (with "..."), for logs and notes."""
    text = line if isinstance(line, str) else line.decode("utf-8", "replace")
    return repr(text if len(text) <= n else text[:n] + "...")


def exc_text(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class SerialLink:
    """A line-oriented serial port: open, write, read lines until a deadline, close.

    Parameters
    ----------
    port : str
        Serial device path (``/dev/ttyACM0``, a ``/dev/serial/by-id`` link, a pty).
    baud : int
        Line speed, bit/s.
    field : str
        The rig field the port came from (``dut.serial.port``), named in errors.
    max_line_bytes : int
        Longer lines are dropped (and logged) rather than kept.
    label : str
        What the device is called in log messages ("DUT", "positioner").
    write_timeout_s : float
        Longest wait for one chunk of a write, seconds; a whole write may take that plus twice
        its time on the wire at ``baud`` (a device that stops reading fails, never hangs).
    logger : logging.Logger or None
        Where log messages go (default ``testbed.serial``).

    Notes
    -----
    Not thread-safe: one thread talks to one device.
    """

    def __init__(self, port: str, baud: int, *, field: str, max_line_bytes: int = MAX_LINE_BYTES,
                 label: str = "serial device", logger: logging.Logger | None = None,
                 write_timeout_s: float = WRITE_TIMEOUT_S) -> None:
        self.port = port
        self.baud = int(baud)
        # a chunk must have time to leave at the line speed, whatever the caller asked for
        self.write_timeout_s = max(float(write_timeout_s), 2.0 * WRITE_CHUNK * 10.0 / self.baud)
        self.field = field
        self.label = label
        self._log = logger or logging.getLogger("testbed.serial")
        self._ser = None
        self._pending: collections.deque[bytes] = collections.deque()
        self._buf = LineBuffer(max_line_bytes=max_line_bytes)

    # -- the port -------------------------------------------------------------------
    def _open_port(self, *, flush_input: bool = False) -> None:
        """(Re)open the port with empty line buffers; ``flush_input`` also drops bytes the OS holds.

        Raises
        ------
        DeviceError
            The port does not exist (the message lists those that do), is busy, or is not
            ours to open.
        """
        self.close()
        self._ser = open_serial(self.port, self.baud, field=self.field, write_timeout_s=self.write_timeout_s)
        if flush_input:
            try:
                self._ser.reset_input_buffer()
            except io_errors():  # some drivers cannot; stale bytes are then read as noise
                pass
        self._buf.clear()
        self._pending.clear()

    def close(self) -> None:
        """Close the port (idempotent)."""
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished device may fail; it is closed either way
                pass

    @property
    def connected(self) -> bool:
        """True while the port is open (it may still vanish on the next read)."""
        return self._ser is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _port_error(self, action: str, exc: BaseException | None) -> Exception:
        """The exception to raise when the port is closed (``exc`` None) or failed while
        ``action`` ("writing" or "reading"); the port is already closed. Subclasses override."""
        if exc is None:
            return DeviceError(f"{self.field}: {self.label} port {self.port} is not open")
        return DeviceError(f"{self.field}: {self.label} port {self.port} failed while {action}: {exc_text(exc)}")

    # -- bytes and lines ----------------------------------------------------------------
    def _write_bytes(self, data: bytes) -> None:
        """Write ``data`` and wait until it has left, within a deadline; a failure or a timeout
        closes the port and raises.

        The wait for the bytes to leave polls the driver's output queue instead of ``tcdrain``
        (pyserial's ``flush``), which blocks for ever on a USB device that stopped reading.
        """
        if self._ser is None:
            raise self._port_error("writing", None)
        budget = self.write_timeout_s + 2.0 * len(data) * 10.0 / self.baud
        deadline = time.monotonic() + budget
        view = memoryview(data)
        try:
            for i in range(0, len(view), WRITE_CHUNK):
                self._ser.write(view[i:i + WRITE_CHUNK])   # blocks at most write_timeout_s
                if time.monotonic() > deadline:
                    raise WriteTimeout(f"write of {len(data)} bytes not taken within {budget:.3g} s")
            while self._ser.out_waiting:
                if time.monotonic() > deadline:
                    raise WriteTimeout(f"{self._ser.out_waiting} bytes still unsent after {budget:.3g} s")
                time.sleep(0.002)
        except (WriteTimeout, *io_errors()) as exc:
            self.close()
            raise self._port_error("writing", exc) from None

    def _fill(self, wait_s: float) -> list[bytes]:
        """Complete lines that arrive within ``wait_s`` seconds (none if nothing came)."""
        if self._ser is None:
            raise self._port_error("reading", None)
        try:
            data = read_burst(self._ser, wait_s)
        except io_errors() as exc:
            self.close()
            raise self._port_error("reading", exc) from None
        before = self._buf.dropped
        lines = self._buf.feed(data)
        if self._buf.dropped != before:
            self._log.warning("%s %s: dropped an over-long line", self.label, self.port)
        return lines

    def _read_lines(self, wait_s: float) -> Iterator[bytes]:
        """Yield complete lines, waiting at most ``wait_s`` for new bytes when none are queued.

        Lines a caller does not consume (it returned mid-batch) stay queued for the next call.
        """
        if not self._pending:
            self._pending.extend(self._fill(wait_s))
        while self._pending:
            yield self._pending.popleft()

    def _lines_until(self, deadline: float) -> Iterator[bytes]:
        """Yield lines as they arrive until ``time.monotonic()`` reaches ``deadline``.

        A caller that stops early leaves the lines it did not take queued.
        """
        while (left := deadline - time.monotonic()) > 0:
            yield from self._read_lines(min(left, POLL_S))

    def _garbled(self, line: bytes, notes: list[str] | None = None) -> None:
        """Log a line that is not what the protocol allows, and note it for the trial record."""
        self._log.warning("%s %s: ignored a garbled line %s", self.label, self.port, short_repr(line))
        if notes is not None:
            notes.append(f"ignored a garbled line {short_repr(line, 40)}")
