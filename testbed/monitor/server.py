"""Serving the monitor with uvicorn in a background thread (beside a run, or for ``session watch``)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

from testbed.errors import TestbedError
from testbed.monitor.app import create_app
from testbed.monitor.watcher import POLL_S, SessionWatcher
from testbed.session.store import resolve_session

#: Default address: this machine only.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class MonitorError(TestbedError):
    """The monitor cannot serve (address in use, not allowed, ...)."""


class MonitorServer:
    """A monitor of one session served at ``url`` until :meth:`stop` (also a context manager).

    Parameters
    ----------
    session : session id (under ``root``) or folder.
    host, port : where to listen; port 0 picks a free one. Default 127.0.0.1:8765 (this machine only).
    root : the sessions root (default: ``$TESTBED_SESSIONS_DIR`` or ``./sessions``).
    poll_s : seconds between two looks at the session's files.
    sock : a listening socket to serve on instead of binding ``host:port`` (the monitor's child
        process gets it from the run that bound it; see :mod:`testbed.monitor.process`).
    """

    def __init__(self, session: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 root: Path | str | None = None, poll_s: float = POLL_S, sock: socket.socket | None = None):
        self.path = resolve_session(session, root)
        self.watcher = SessionWatcher(self.path)
        try:
            self.watcher.current()     # a session that cannot be read fails here, in one line
        except TestbedError:
            self.watcher.close()
            raise
        self.stopping = threading.Event()
        self.app = create_app(self.watcher, self.stopping, poll_s)
        try:
            self.sock = sock if sock is not None else bind(host, port)
        except MonitorError:
            self.watcher.close()
            raise
        self.host, self.port = self.sock.getsockname()[:2]
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    @property
    def clients(self) -> int:
        """Pages following the session right now (open event streams)."""
        return self.app.state.clients

    def start(self) -> "MonitorServer":
        """Serve in a daemon thread; returns once the server accepts connections."""
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="testbed-monitor", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30.0
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MonitorError(f"{self.url}: the monitor server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """End every event stream, stop the server and close the session."""
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.watcher.close()

    def serving(self) -> bool:
        """Whether the server thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Block until the server thread ends (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> "MonitorServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def http_url(host: str, port: int) -> str:
    """The page's address for a bound ``host`` and ``port`` (an IPv6 host in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (uvicorn serves on it); port 0 picks a free one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise MonitorError(f"--host {host}: cannot resolve it: {exc.strerror or exc}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise MonitorError(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}; "
                           f"pick another with --port (0: any free port)") from None
    sock.set_inheritable(True)
    return sock
