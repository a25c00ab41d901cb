"""Splitting a byte stream into lines, with a cap so a stream without newlines cannot grow forever."""

from __future__ import annotations

#: Longest line kept, bytes. An injected 10 s clip at 16 kHz is about 430 kB of base64.
MAX_LINE_BYTES = 4 * 1024 * 1024


class LineBuffer:
    """Accumulates bytes and hands back complete lines (``\\n`` or ``\\r\\n`` terminated).

    Parameters
    ----------
    max_line_bytes : int
        A line longer than this is dropped; :attr:`dropped` counts such lines.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_line_bytes
        self._overflowing = False
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the complete lines it finished, without line endings."""
        out: list[bytes] = []
        if not data:
            return out
        self._buf += data
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                break
            line = bytes(self._buf[:i]).rstrip(b"\r")
            del self._buf[: i + 1]
            if self._overflowing:
                self._overflowing = False
                continue
            out.append(line)
        if len(self._buf) > self._max:
            self._buf.clear()
            if not self._overflowing:
                self.dropped += 1
            self._overflowing = True
        return out

    def clear(self) -> None:
        """Forget any partial line (after a reconnect)."""
        self._buf.clear()
        self._overflowing = False

