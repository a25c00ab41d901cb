"""`session run --watch` serves the monitor from a child process: the page follows the run, the run's
process does not serve it, and the child is gone when the run ends, even when the run is killed.

The CLI runs as a real process here (as an operator starts it); a small wrapper holds each trial's
commit until the test allows it (a number in a file), so what the page sees does not depend on speed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.monitor.test_page import counter, wait_for
from tests.session.conftest import quick_plan, tiny_zoo  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
#: The CLI, with each commit held until the file $ALLOW_FILE holds a number >= the commit's rank.
WRAPPER = """
import os, time
from pathlib import Path
from testbed.session.store import SessionStore
allow, real, n = Path(os.environ["ALLOW_FILE"]), SessionStore.commit_trial, [0]
def commit(self, *a, **kw):
    n[0] += 1
    end = time.monotonic() + 300
    while int(allow.read_text() or 0) < n[0] and time.monotonic() < end:
        time.sleep(0.05)
    return real(self, *a, **kw)
SessionStore.commit_trial = commit
from testbed.cli.app import main
main()
"""


class WatchedRun:
    """``testbed session run PLAN --watch`` in its own process; its stderr is collected as it comes."""

    def __init__(self, tmp_path: Path, rig: Path, zoo: Path):
        self.allow = tmp_path / "allow"
        self.allow.write_text("0")
        env = dict(os.environ, ALLOW_FILE=str(self.allow),
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-c", WRAPPER, "session", "run", str(quick_plan(tmp_path)), "--rig", str(rig),
               "--id", "w", "--sessions-dir", str(tmp_path / "sessions"), "--models-dir", str(zoo), "--quiet",
               "--watch"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self._reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def let(self, n: int) -> None:
        self.allow.write_text(str(n))

    def url(self) -> str:
        m = wait_for(lambda: re.search(r"live monitor: (http://127\.0\.0\.1:\d+/)", "".join(self.err))
                     or (self.proc.poll() is not None and "ended"), "the run to print the monitor's URL")
        assert m != "ended", "".join(self.err)
        return m.group(1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(60)


def monitor_pid(url: str) -> int:
    import json
    import urllib.request

    def ask():
        try:
            with urllib.request.urlopen(url + "api/clients", timeout=5) as resp:
                return json.loads(resp.read())["pid"]
        except OSError:
            return None

    return wait_for(ask, "the monitor to answer")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...), or None: no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def parent_of(pid: int) -> int | None:
    st = _stat(pid)
    return None if st is None else int(st[1])


def gone(pid: int) -> bool:
    """No such process (a zombie that nobody reaped yet counts as gone: it serves nothing)."""
    st = _stat(pid)
    return st is None or st[0] in ("Z", "X")


def test_run_with_watch_serves_from_a_child_process_that_ends_with_the_run(tmp_path, office_rig_path, tiny_zoo,  # noqa: F811
                                                                           offline_page):
    run = WatchedRun(tmp_path, office_rig_path, tiny_zoo)
    try:
        url = run.url()
        pid = monitor_pid(url)
        assert pid != run.proc.pid and parent_of(pid) == run.proc.pid
        page = offline_page.page
        page.goto(url)
        page.evaluate("window.notReloaded = true")
        wait_for(lambda: "running" in page.inner_text("#state"), "the page to say the session runs")
        total = int(wait_for(lambda: re.fullmatch(r"0 / (\d+)", counter(page)), "no trial yet").group(1))
        run.let(3)
        wait_for(lambda: counter(page) == f"3 / {total}", "the page to follow the run to 3 trials")
        assert page.evaluate("window.notReloaded") is True
        run.let(total)
        assert run.proc.wait(300) == 0, "".join(run.err)
    finally:
        run.kill()
    wait_for(lambda: gone(pid), "the monitor process to end with the run")
    wait_for(lambda: "unreachable" in page.inner_text("#link"), "the page to notice the monitor went away")
    assert offline_page.blocked == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_or_killed_run_leaves_no_monitor_behind(tmp_path, office_rig_path, tiny_zoo, sig):  # noqa: F811
    run = WatchedRun(tmp_path, office_rig_path, tiny_zoo)
    try:
        pid = monitor_pid(run.url())
        assert parent_of(pid) == run.proc.pid
        run.proc.send_signal(sig)      # kill -9: no finally, no atexit; the child must notice by itself
        run.let(10**6)                 # Ctrl-C: the run ends the trial it is in (held here), then stops
        run.proc.wait(120)
    finally:
        run.kill()
    wait_for(lambda: gone(pid), "the monitor process to end after its run was stopped")
