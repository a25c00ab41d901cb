"""`testbed session watch` and `session run --watch`: the live web monitor of a session."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer

from testbed.cli.common import console, err_console


@contextlib.contextmanager
def watching(session_path: Path | None) -> Iterator[None]:
    """``session run --watch``: serve the monitor in a background thread for as long as the block runs
    (nothing when ``session_path`` is None)."""
    if session_path is None:
        yield
        return
    from testbed.monitor import MonitorError, MonitorServer

    try:
        mon = MonitorServer(session_path)
    except MonitorError:   # 8765 taken (another run watched?): any free port rather than no run
        mon = MonitorServer(session_path, port=0)
    mon.start()
    err_console.print(f"live monitor: {mon.url}  (this machine only; it stops when the run ends)")
    try:
        yield
    finally:
        mon.stop()


def watch_cmd(
    session: str = typer.Argument(None, help="session id or folder (default: the newest session)",
                                  show_default=False),
    port: int = typer.Option(8765, "--port", help="TCP port (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; the default serves this machine "
                             "only (0.0.0.0 shows the session to the whole network)"),
    sessions_dir: Path = typer.Option(None, "--sessions-dir",
                                      help="sessions root (default: $TESTBED_SESSIONS_DIR or ./sessions)"),
) -> None:
    """Serve a live web monitor of a session: progress, levels, error rates, captures, rig map, events.

    Read-only: it never takes the session's lock, so it follows a run from another terminal, or
    replays a finished session trial by trial. Stop it with Ctrl-C.

    Example: testbed session watch quick-sim-20250101-120000 --port 8765
    """
    from testbed.errors import SessionError
    from testbed.monitor import MonitorServer
    from testbed.session.store import list_session_dirs

    if session is None:
        dirs = list_session_dirs(sessions_dir)
        if not dirs:
            raise SessionError("no session to watch yet; start one with 'testbed session run PLAN --rig RIG'")
        session = str(dirs[-1])
    mon = MonitorServer(session, host=host, port=port, root=sessions_dir).start()
    console.print(f"monitor of session {mon.path.name}: {mon.url}  (Ctrl-C stops it)")
    try:
        mon.wait()
    except KeyboardInterrupt:
        pass
    finally:
        mon.stop()
