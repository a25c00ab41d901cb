"""Monitor benchmark: how fast the page follows a run, and what watching costs the run.

One simulated session (office-sim rig, untrained LM models of the zoo's format, tone commands)
runs with the monitor served from a child process (:class:`testbed.monitor.MonitorProcess`), exactly
as ``session run --watch`` serves it; the open pages are counted from outside (``/api/clients``):

1. **Latency** (the first :data:`LATENCY_TRIALS` trials): the page is open in a headless Chromium
   driven by playwright, which stamps every snapshot it draws; ``latency_median_s`` /
   ``latency_worst_s`` run from a trial's commit to the page drawing it.
2. **Cost** (the rest, in blocks of :data:`BLOCK` trials): the page closed, then open in a plain
   headless Chromium (no DevTools protocol attached, as an operator's browser), then closed, ...
   in the same run, so both conditions share the machine's load. ``throughput_ratio`` = trials per
   second with the page open / with it closed (target >= 0.97); ``throughput_ratio_block_median``:
   the median over open blocks of the ratio to the mean of the two closed blocks beside it (robust
   to other jobs' load drifting during the run; a last, partial block of at least half
   :data:`BLOCK` trials counts). Each trial is timed from the end of the previous
   one, so starting and stopping the browser between blocks counts for neither. The CPU seconds per
   trial of the run's process and of the monitor's process, page open and closed, are the part of
   the cost that does not depend on the machine's other load.

Every request the playwright page makes to anything but 127.0.0.1 is refused and counted.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from testbed.errors import TestbedError

#: Trials timed for the latency (page open throughout).
LATENCY_TRIALS = 50
#: Trials per block of the cost measurement (page closed, then open, then closed, ...).
BLOCK = 20
#: Seconds a freshly started browser is given to settle before its block is timed.
SETTLE_S = 3.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise TestbedError("bench monitor: Chromium is needed (apt-get install chromium; scripts/system-deps.sh)")
    return exe


class _PlainBrowser:
    """A headless Chromium showing ``url`` with nothing attached to it (started and stopped per block);
    ``client="sse"``: curl reading the event stream instead (the server's cost without a browser's)."""

    def __init__(self, url: str, profile: Path, client: str = "chromium"):
        cmd = ([_chromium(), "--headless", *CHROMIUM_ARGS, f"--user-data-dir={profile}", "--window-size=1400,1800",
                url] if client == "chromium" else ["curl", "-sN", url + "events"])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cpu_s = 0.0

    def cpu_now(self) -> float:
        """CPU seconds used so far by the client and its children (psutil, when installed)."""
        try:
            import psutil
        except ImportError:
            return float("nan")
        try:
            procs = [psutil.Process(self.proc.pid)]
            procs += procs[0].children(recursive=True)
        except psutil.Error:      # the client is gone
            return float("nan")
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Cpu:
    """CPU seconds (user + system) of process ``pid`` so far (psutil; NaN without it or once it is gone)."""

    def __init__(self, pid: int | None):
        self.proc = None
        try:
            import psutil
        except ImportError:
            return
        self._error = psutil.Error
        try:
            self.proc = psutil.Process(pid)
        except psutil.Error:
            pass

    def cpu_s(self) -> float:
        if self.proc is None:
            return float("nan")
        try:
            t = self.proc.cpu_times()
        except self._error:
            return float("nan")
        return t.user + t.system


def _wait(cond, what: str, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise TestbedError(f"bench monitor: timed out waiting for {what}")
        time.sleep(0.02)


def measure(per_label: int = 10, screenshot: Path | None = None, latency_trials: int = LATENCY_TRIALS,
            client: str = "chromium") -> dict:
    """Run the benchmark on ``2 labels x per_label x 2 attacks x 5 delays x 2 placements`` trials.

    ``screenshot``: also save a full-page PNG of the monitor while the session runs.
    ``client``: what follows the page in the cost blocks: ``chromium`` (a plain headless browser) or
    ``sse`` (curl reading the event stream: the server's own cost, no browser).
    """
    import torch

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise TestbedError("bench monitor: the playwright package is needed (pip install playwright)") from None
    from testbed.bench.session import PLAN, _tones, _zoo
    from testbed.monitor import MonitorProcess
    from testbed.session import Runner, create_session, open_runner_parts
    from testbed.workspace import assets_dir

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp, sync_playwright() as pw:
        tmp = Path(tmp)
        _zoo(tmp / "zoo")
        plan = tmp / "plan.toml"
        plan.write_text(PLAN.format(per_label=per_label, delays=[0, 100, 250, 400, 500]).replace(
            'name = "bench"', 'name = "monitor-bench"'))
        store = create_session(plan, assets_dir() / "rigs" / "office-sim.toml", root=tmp / "sessions",
                               models_root=tmp / "zoo", utterances=_tones(["yes", "no"], per_label))
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        blocked: list[str] = []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1")
                   else (blocked.append(route.request.url), route.abort()))
        intervals: dict[bool, list[float]] = {False: [], True: []}
        blocks: list[tuple[bool, float]] = []      # (page open, mean trial seconds) per block, in order
        # CPU s per condition of this process (the run) and of the monitor's; the browser's
        cpu = {False: 0.0, True: 0.0, "browser": 0.0, ("mon", False): 0.0, ("mon", True): 0.0}
        marks = {"cpu": 0.0, "browser": 0.0, "mon": 0.0}
        commits: dict[int, float] = {}
        latencies: list[float] = []
        state: dict = {"phase": "latency", "open": False, "prev": None, "plain": None, "first": None}

        with MonitorProcess(store.path, port=0) as mon:
            mon.wait_ready()
            mon_proc = _Cpu(mon.pid)

            def clients() -> int:
                return mon.info()["clients"]

            def end_latency_phase() -> None:
                last = max(commits)
                page.wait_for_function(f"window.monitorUpdates.some(u => u.done >= {last})", timeout=60_000)
                ups = page.evaluate("window.monitorUpdates")
                for done, at in commits.items():
                    first = min((u["at"] for u in ups if u["done"] >= done and u["at"] >= at), default=None)
                    if first is not None:
                        latencies.append(first - at)
                if screenshot is not None:
                    Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshot), full_page=True)
                page.goto("about:blank")
                _wait(lambda: clients() == 0, "the playwright page to leave")

            def on_event(ev) -> None:
                now = time.time()
                if ev.kind != "trial":
                    return
                if state["first"] is None:       # the first trial waited for crafting: open the page now
                    state["first"] = ev.done
                    page.goto(mon.url)
                    page.wait_for_function("window.monitorUpdates.length > 0", timeout=60_000)
                elif state["phase"] == "latency":
                    commits[ev.done] = now
                    if len(commits) >= latency_trials:
                        end_latency_phase()
                        state["phase"], state["prev"] = "cost", None
                        marks["cpu"], marks["mon"] = time.process_time(), mon_proc.cpu_s()
                else:
                    if state["prev"] is not None:
                        intervals[state["open"]].append(now - state["prev"])
                    if len(intervals[state["open"]]) % BLOCK == 0 and intervals[state["open"]]:
                        blocks.append((state["open"], statistics.fmean(intervals[state["open"]][-BLOCK:])))
                        cpu[state["open"]] += time.process_time() - marks["cpu"]
                        cpu[("mon", state["open"])] += mon_proc.cpu_s() - marks["mon"]
                        if state["open"]:
                            cpu["browser"] += state["plain"].cpu_now() - marks["browser"]
                            state["plain"].close()
                            _wait(lambda: clients() == 0, "the browser to leave")
                        else:
                            state["plain"] = _PlainBrowser(mon.url, tmp / "chromium-profile", client)
                            _wait(lambda: clients() > 0, "the browser to open the page")
                            time.sleep(SETTLE_S)      # the browser's own start-up is not the page's cost
                            marks["browser"] = state["plain"].cpu_now()
                        state["open"] = not state["open"]
                        marks["cpu"], marks["mon"] = time.process_time(), mon_proc.cpu_s()
                state["prev"] = time.time()

            commit_s = {False: 0.0, True: 0.0}
            real_commit = store.commit_trial

            def timed_commit(rec, sr):
                t0 = time.perf_counter()
                try:
                    return real_commit(rec, sr)
                finally:
                    if state["phase"] == "cost":
                        commit_s[state["open"]] += time.perf_counter() - t0

            store.commit_trial = timed_commit
            rig, plan_obj, models, cal = open_runner_parts(store)
            try:
                Runner(store, rig, plan_obj, models, calibration=cal, on_event=on_event).run()
                if state["phase"] == "cost":           # the last, partial block
                    tail = len(intervals[state["open"]]) % BLOCK
                    if tail >= BLOCK // 2:               # half a block or more: it counts as a block
                        blocks.append((state["open"], statistics.fmean(intervals[state["open"]][-tail:])))
                    cpu[state["open"]] += time.process_time() - marks["cpu"]
                    cpu[("mon", state["open"])] += mon_proc.cpu_s() - marks["mon"]
                    if state["open"]:
                        cpu["browser"] += state["plain"].cpu_now() - marks["browser"]
            finally:
                if state["plain"] is not None:          # closing twice is harmless
                    state["plain"].close()
            info = mon.info()
            builds, build_s = info["snapshots_built"], info["snapshot_build_s"]
        browser.close()
        store.close()
    closed, opened = intervals[False], intervals[True]
    if not closed or not opened or not latencies:
        raise TestbedError(f"bench monitor: too few trials ({len(latencies)} latency, {len(closed)} closed, "
                           f"{len(opened)} open); raise per_label")
    rate_closed = len(closed) / sum(closed)
    rate_open = len(opened) / sum(opened)
    # each open block against the closed blocks beside it (the same moment's load on a shared machine)
    pairs = [(blocks[i - 1][1] + blocks[i + 1][1]) / 2 / blocks[i][1]
             for i in range(1, len(blocks) - 1) if blocks[i][0] and not blocks[i - 1][0] and not blocks[i + 1][0]]
    return {
        "latency_samples": len(latencies),
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_worst_s": round(max(latencies), 3),
        "latency_target_s": 2.0,
        "trials_page_closed": len(closed),
        "trials_page_open": len(opened),
        "trial_s_page_closed": round(1 / rate_closed, 4),
        "trial_s_page_open": round(1 / rate_open, 4),
        "throughput_ratio": round(rate_open / rate_closed, 3),
        "throughput_ratio_block_median": round(statistics.median(pairs), 3) if pairs else None,
        "throughput_block_pairs": len(pairs),
        "throughput_target_ratio": 0.97,
        "process_cpu_s_per_trial_page_closed": round(cpu[False] / len(closed), 4),
        "process_cpu_s_per_trial_page_open": round(cpu[True] / len(opened), 4),
        "monitor_process_cpu_s_per_trial_page_closed": round(cpu[("mon", False)] / len(closed), 4),
        "monitor_process_cpu_s_per_trial_page_open": round(cpu[("mon", True)] / len(opened), 4),
        "commit_s_per_trial_page_closed": round(commit_s[False] / len(closed), 4),
        "commit_s_per_trial_page_open": round(commit_s[True] / len(opened), 4),
        "client": client,
        "client_cpu_pct_of_a_core": round(100 * cpu["browser"] / sum(opened), 1),
        "snapshots_built": builds,
        "snapshot_build_ms_mean": round(1000 * build_s / max(1, builds), 2),
        "requests_blocked": len(blocked),
    }


def run(quick: bool = False) -> dict:
    """The benchmark: 400 trials (50 for the latency, 350 in blocks); 80 when ``quick`` (20 + 60)."""
    return measure(per_label=2, latency_trials=20) if quick else measure(per_label=10)
