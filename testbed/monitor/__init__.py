"""The live web monitor of a session: an interface, like the CLI.

It reads the session store's read API (read-only SQLite, never the writer's lock) and its event
log, and knows nothing of audio backends, models or attacks. A Starlette app pushes a JSON snapshot
to the page over server-sent events whenever the store changes; the page (HTML, JS and CSS in
``testbed/assets/monitor/``, no CDN) draws it.

``session run --watch`` serves it from a child process (:class:`MonitorProcess`), so that
building snapshots never competes with the run for its interpreter; ``session watch`` serves it in
its own process (:class:`MonitorServer`, a thread).

Typical use::

    with MonitorServer("quick-sim-20250101-120000", port=0) as mon:
        print(mon.url)          # open it in a browser
        ...                     # a run commits trials; the page follows
"""

from testbed.monitor.app import create_app
from testbed.monitor.process import MonitorProcess
from testbed.monitor.server import DEFAULT_HOST, DEFAULT_PORT, MonitorError, MonitorServer
from testbed.monitor.snapshot import build_snapshot
from testbed.monitor.watcher import POLL_S, SessionWatcher

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "POLL_S", "MonitorError", "MonitorProcess", "MonitorServer",
           "SessionWatcher", "build_snapshot", "create_app"]
