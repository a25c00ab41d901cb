"""The monitor's child process: ``python -m testbed.monitor SESSION_FOLDER --fd N --parent-pid PID``.

Started by :class:`testbed.monitor.process.MonitorProcess` (``session run --watch``), never by hand:
it serves the session on the listening socket ``N`` it inherited until SIGTERM (or SIGINT), or until
the process ``PID`` that started it is gone. A session it cannot read is said in one line on stderr
(exit status 2).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading

#: Seconds between two checks that the run is still there.
PARENT_CHECK_S = 0.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed.monitor", description=__doc__.splitlines()[0])
    ap.add_argument("session", help="the session folder")
    ap.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    ap.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone")
    ap.add_argument("--poll-s", type=float, default=None, help="seconds between two looks at the session")
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    from testbed.errors import TestbedError
    from testbed.monitor.server import MonitorServer
    from testbed.monitor.watcher import POLL_S

    sock = socket.socket(fileno=args.fd)
    try:
        mon = MonitorServer(args.session, poll_s=args.poll_s or POLL_S, sock=sock).start()
    except TestbedError as exc:
        sock.close()
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    try:
        while not stop.wait(PARENT_CHECK_S):
            if args.parent_pid is not None and os.getppid() != args.parent_pid:
                break      # the run is gone (even killed): no orphan
            if not mon.serving():
                break
    finally:
        mon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
