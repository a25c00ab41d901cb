"""The monitor served from a child process beside a run (``session run --watch``).

The run binds the listening socket (so the URL is known at once and a taken port falls back to a
free one), hands it to a child ``python -m testbed.monitor`` and goes on without waiting: the page's
first requests queue on the socket until the child serves them. Building snapshots (SQLite reads,
FLAC decoding, spectrograms, JSON) then never competes with the run for its interpreter's lock.

The child runs in its own session (a Ctrl-C or a closed terminal reaches the run, not the child),
stops on SIGTERM, and stops by itself within about a second when the run that started it is gone
(even after ``kill -9``): there is no orphan.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from testbed.monitor.server import DEFAULT_HOST, DEFAULT_PORT, MonitorError, bind, http_url
from testbed.monitor.watcher import POLL_S

#: Seconds the child is given to stop after SIGTERM before it is killed.
STOP_S = 10.0


class MonitorProcess:
    """A monitor of session folder ``path`` served at ``url`` by a child process until :meth:`stop`.

    Parameters
    ----------
    path : the session folder.
    host, port : where to listen (default 127.0.0.1:8765, this machine only); port 0 picks a free one.
    any_port_if_taken : when ``port`` cannot be bound (another watched run has it), take a free one
        instead of raising :class:`MonitorError`.
    poll_s : seconds between two looks at the session's files.
    """

    def __init__(self, path: Path | str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 any_port_if_taken: bool = False, poll_s: float = POLL_S):
        self.path = Path(path)
        self.poll_s = poll_s
        try:
            self.sock = bind(host, port)
        except MonitorError:
            if not any_port_if_taken or port == 0:
                raise
            self.sock = bind(host, 0)
        self.host, self.port = self.sock.getsockname()[:2]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    @property
    def pid(self) -> int | None:
        """The child's process id (None before :meth:`start`)."""
        return None if self.proc is None else self.proc.pid

    def start(self) -> "MonitorProcess":
        """Start the child and return at once (it serves once it has imported and read the session)."""
        fd = self.sock.fileno()
        cmd = [sys.executable, "-m", "testbed.monitor", str(self.path), "--fd", str(fd),
               "--parent-pid", str(os.getpid()), "--poll-s", repr(self.poll_s)]
        env = dict(os.environ)
        here = Path(__file__).resolve().parents[2]      # the folder holding this ``testbed`` package
        if here.name not in ("site-packages", "dist-packages"):   # a checkout: the child imports this very copy
            env["PYTHONPATH"] = os.pathsep.join([str(here)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                                if p])
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        except OSError as exc:
            raise MonitorError(f"{self.url}: cannot start the monitor process: {exc}") from None
        finally:
            self.sock.close()    # the child holds its own copy; the run keeps none
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def info(self, timeout_s: float = 5.0) -> dict:
        """The child's ``/api/clients`` JSON (open event streams, snapshots built, its pid); raises OSError."""
        with urllib.request.urlopen(self.url + "api/clients", timeout=timeout_s) as resp:
            return json.loads(resp.read())

    def wait_ready(self, deadline_s: float = 60.0) -> "MonitorProcess":
        """Block until the child answers (the bench and tests; a run never waits for it)."""
        end = time.monotonic() + deadline_s
        while True:
            if not self.alive():
                raise MonitorError(f"{self.url}: the monitor process ended (exit status "
                                   f"{None if self.proc is None else self.proc.returncode})")
            with contextlib.suppress(OSError):
                self.info()
                return self
            if time.monotonic() > end:
                raise MonitorError(f"{self.url}: the monitor process did not answer within {deadline_s:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Ask the child to stop (SIGTERM), wait for it, kill it if it does not go."""
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "MonitorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
