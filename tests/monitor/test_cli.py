"""`testbed session watch` and `testbed session run --watch` through the CLI."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request

from testbed.monitor import MonitorProcess
from testbed.session.store import SessionStore
from tests.session.conftest import quick_plan, tiny_zoo  # noqa: F401  (fixture)


def test_watch_names_a_missing_session_in_one_line(cli, tmp_path):
    r = cli(["session", "watch", "nope", "--sessions-dir", tmp_path / "sessions", "--port", "0"])
    assert r.exit_code == 2 and "nope" in r.output and "Traceback" not in r.output


def test_watch_names_a_damaged_session_database_in_one_line(cli, session_store):
    db = session_store.path / "session.sqlite"
    session_store.close()
    for extra in ("-wal", "-shm"):
        (session_store.path / f"session.sqlite{extra}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    r = cli(["session", "watch", str(session_store.path), "--port", "0"])
    assert r.exit_code == 2 and "session.sqlite" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_watch_refuses_a_port_in_use_in_one_line(cli, session_store):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        r = cli(["session", "watch", str(session_store.path), "--port", str(port)])
    finally:
        busy.close()
    assert r.exit_code == 2 and f"--port {port}" in r.output and "Traceback" not in r.output


def test_run_with_watch_serves_the_session_while_it_runs(cli, tmp_path, office_rig_path, tiny_zoo,  # noqa: F811
                                                         monkeypatch):
    servers, seen = [], []
    real_start = MonitorProcess.start

    def start(self):
        servers.append(self)
        return real_start(self)

    monkeypatch.setattr(MonitorProcess, "start", start)
    real_commit = SessionStore.commit_trial

    def commit(self, *a, **kw):   # the run does not wait for the monitor; this test does, once
        end = time.monotonic() + 60
        while not seen and time.monotonic() < end:
            time.sleep(0.05)
        return real_commit(self, *a, **kw)

    monkeypatch.setattr(SessionStore, "commit_trial", commit)
    done = threading.Event()

    def poll():   # what a page would fetch while the run goes on
        while not done.is_set():
            if servers:
                try:
                    with urllib.request.urlopen(servers[0].url + "api/snapshot", timeout=5) as resp:
                        seen.append(json.loads(resp.read()))
                except OSError:
                    pass
            time.sleep(0.05)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        r = cli(["session", "run", quick_plan(tmp_path), "--rig", office_rig_path, "--id", "w",
                 "--sessions-dir", tmp_path / "sessions", "--models-dir", tiny_zoo, "--json", "--quiet", "--watch"])
    finally:
        done.set()
        t.join(10)
    assert r.exit_code == 0, r.output
    assert len(servers) == 1 and "live monitor: http://127.0.0.1:" in r.output
    assert any(s["state"] == "running" for s in seen), [s["state"] for s in seen]
    dones = [s["done"] for s in seen]
    assert dones == sorted(dones) and dones[-1] <= json.loads(r.stdout)["done"] == 8
    # the monitor went away with the run: its process too
    assert servers[0].pid != os.getpid() and servers[0].proc.poll() is not None
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", servers[0].port)) != 0
