"""`testbed session watch` and `session run --watch`: the live web monitor of a session; `session inject`: a
rehearsal disturbance played into a running simulated session."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer

from testbed.cli.common import console, err_console


@contextlib.contextmanager
def watching(session_path: Path | None) -> Iterator[None]:
    """``session run --watch``: serve the monitor from a child process for as long as the block runs
    (nothing when ``session_path`` is None). The run does not wait for the child; it is stopped when
    the block ends, however it ends (and stops by itself if the run is killed)."""
    if session_path is None:
        yield
        return
    from testbed.monitor import MonitorProcess

    # 8765 taken (another run watched?): any free port rather than no run
    mon = MonitorProcess(session_path, any_port_if_taken=True)
    try:
        mon.start()
        err_console.print(f"live monitor: {mon.url}  (this machine only; it stops when the run ends)")
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


def inject_cmd(
    session: str = typer.Argument(..., help="the running session (id or folder)", show_default=False),
    noise_dbspl: float = typer.Option(85.0, "--noise-dbspl", help="level at the mics, dB SPL"),
    captures: int = typer.Option(3, "--captures", help="how many captures (pre-rolls included) hear it"),
    kind: str = typer.Option("noise", "--kind", help="noise | tone"),
    freq_hz: float = typer.Option(1000.0, "--freq-hz", help="the tone's frequency, Hz (--kind tone)"),
    sessions_dir: Path = typer.Option(None, "--sessions-dir", envvar="TESTBED_SESSIONS_DIR",
                                      help="sessions folder (default: env TESTBED_SESSIONS_DIR or ./sessions)"),
) -> None:
    """Play a disturbance (a door slam, a loud room) into a running SIMULATED session, to rehearse
    what its suspenders do: with [suspenders] ambient_max_dba set, the session pauses, records why,
    and resumes by itself once the room is quiet again. Watch it with `testbed session watch`.

    Example: testbed session inject office-sim-20261206-221218 --noise-dbspl 90 --captures 4
    """
    from testbed.session.disturbance import inject_running

    path = inject_running(session, sessions_dir, noise_dbspl, captures, kind, freq_hz)
    console.print(f"asked {path.parent.name} to play {kind} at {noise_dbspl:g} dB SPL for {captures} capture(s)")
