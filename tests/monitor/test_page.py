"""The monitor page in a real headless Chromium, with the network off, following a session that
commits trials while the page is open."""

from __future__ import annotations

import time

from testbed.monitor import MonitorServer
from tests.monitor.conftest import MICS, SyntheticWriter

DEADLINE_S = 60.0


def wait_for(cond, what: str, deadline_s: float = DEADLINE_S):
    """Poll ``cond()`` until it returns something truthy (generous deadline, no timed assertion)."""
    end = time.monotonic() + deadline_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def counter(page) -> str:
    return page.inner_text("#trial-counter")


def error_cells(page) -> list[tuple[str, str]]:
    """``(n, wrong)`` of every error-table cell, in page order."""
    return page.eval_on_selector_all("#error-table td[data-n]",
                                     "els => els.map(e => [e.dataset.n, e.dataset.wrong])")


def meter_pixels(page) -> int:
    """Non-transparent pixels in the meter bars' area of the level canvas."""
    return page.evaluate("""() => {
        const c = document.getElementById('meters');
        const d = c.getContext('2d').getImageData(96, 22, c.width - 296, c.height - 40).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 120 && d[i] < 120) n++;   // the green of the bars
        return n;
    }""")


def test_page_follows_a_running_session_without_reload(session_store, offline_page):
    page = offline_page.page
    writer = SyntheticWriter(session_store).start()
    writer.release(2)
    wait_for(lambda: len(writer.committed) == 2, "the first two commits")
    with MonitorServer(session_store.path, port=0) as mon:
        assert mon.host == "127.0.0.1"
        page.goto(mon.url)
        page.evaluate("window.notReloaded = true")
        total = len(session_store.planned())
        wait_for(lambda: counter(page) == f"2 / {total}", "the page to show 2 trials")
        wait_for(lambda: "running" in page.inner_text("#state"), "the running state")
        cells_before = error_cells(page)
        assert cells_before and sum(int(n) for n, _ in cells_before) > 0
        wait_for(lambda: page.eval_on_selector("#meters", "c => c.dataset.drawn") == str(len(MICS)),
                 "the level meters")
        drawn = meter_pixels(page)
        assert drawn > 100, f"level meters: only {drawn} bar pixels drawn"
        assert page.locator("canvas.spec").count() == len(MICS)

        writer.release(4)
        wait_for(lambda: counter(page) == f"6 / {total}", "the page to show 6 trials without a reload")
        wait_for(lambda: error_cells(page) != cells_before, "the error table to change")
        assert sum(int(n) for n, _ in error_cells(page)) > sum(int(n) for n, _ in cells_before)
        assert page.evaluate("window.notReloaded") is True
        assert offline_page.navigations == 1

        writer.release(total)
        writer.join()
        wait_for(lambda: counter(page) == f"{total} / {total}", "the last trial")
        wait_for(lambda: "finished" in page.inner_text("#state"), "the page to say the session finished")
        assert page.evaluate("window.notReloaded") is True
        events = page.inner_text("#events")
        assert "retry" in events and "started" in events
    assert writer.refused == []
    assert offline_page.blocked == []
    assert offline_page.local and all(u.startswith(mon.url) for u in offline_page.local)


def test_page_says_a_crashed_session_is_not_running_and_replays_it(session_store, offline_page):
    page = offline_page.page
    writer = SyntheticWriter(session_store).start()
    writer.release(5)
    wait_for(lambda: len(writer.committed) == 5, "five commits")
    writer.abandon()                # the writer "dies": its lock goes, no stop event is written
    with MonitorServer(session_store.path, port=0) as mon:
        page.goto(mon.url)
        wait_for(lambda: "crashed" in page.inner_text("#state"), "the page to say the session crashed")
        assert "not running" in page.inner_text("#state")
        assert page.is_visible("#replay-card")
        page.fill("#replay-slider", "2")    # fires 'input': the page asks for the session after trial 2
        wait_for(lambda: counter(page).startswith("2 /"), "the replayed state after trial 2")
        assert "replay" in page.inner_text("#state")
        page.click("#replay-live")
        wait_for(lambda: counter(page).startswith("5 /"), "back to the final state")
    assert offline_page.blocked == []


def test_a_page_with_no_server_says_so(session_store, offline_page):
    page = offline_page.page
    mon = MonitorServer(session_store.path, port=0).start()
    page.goto(mon.url)
    wait_for(lambda: page.inner_text("#trial-counter").startswith("0 /"), "the first snapshot")
    mon.stop()
    wait_for(lambda: "unreachable" in page.inner_text("#link"), "the page to notice the server went away")


def test_default_bind_is_loopback(session_store):
    mon = MonitorServer(session_store.path, port=0)
    try:
        assert mon.host == "127.0.0.1" and mon.url.startswith("http://127.0.0.1:")
    finally:
        mon.stop()


def test_page_updates_in_place_and_not_while_hidden(session_store, offline_page):
    """The error tables and the event list are updated in place (not rebuilt) while their shape
    holds, and a hidden page draws nothing until it is shown again (then the newest snapshot)."""
    page = offline_page.page
    writer = SyntheticWriter(session_store).start()
    writer.release(4)            # placement P1: both attacks and both delays seen; P2 comes at trial 25
    wait_for(lambda: len(writer.committed) == 4, "four commits")
    total = len(session_store.planned())
    with MonitorServer(session_store.path, port=0) as mon:
        page.goto(mon.url)
        wait_for(lambda: counter(page) == f"4 / {total}", "the page to show 4 trials")
        page.evaluate("""() => {
            document.querySelector('#error-table table[data-dim="delay_ms"]').dataset.mark = 'kept';
            document.querySelector('#events li').dataset.mark = 'kept';
        }""")
        cells_before = error_cells(page)
        writer.release(4)
        wait_for(lambda: counter(page) == f"8 / {total}", "the page to show 8 trials")
        wait_for(lambda: error_cells(page) != cells_before, "the error table to change")
        assert page.evaluate("""() => [
            document.querySelector('#error-table table[data-dim="delay_ms"]').dataset.mark,
            document.querySelectorAll('#events li[data-mark="kept"]').length]""") == ["kept", 1]
        assert sum(int(n) for n, _ in error_cells(page)) > sum(int(n) for n, _ in cells_before)

        # hidden (a background tab): snapshots arrive, nothing is drawn
        page.evaluate("""() => {
            Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
            document.dispatchEvent(new Event('visibilitychange'));
        }""")
        received = page.evaluate("window.monitorReceived")
        drawn = page.evaluate("document.body.dataset.version")
        writer.release(3)
        wait_for(lambda: page.evaluate("window.monitorReceived") > received and
                 page.evaluate("latest.done") == 11, "the snapshot of trial 11 to reach the hidden page")
        # a draw would have been scheduled on receipt (at most 0.5 s + a frame away): give it the time
        # (this wait can only let a wrong page pass, never fail a right one)
        page.wait_for_timeout(1500)
        assert counter(page) == f"8 / {total}" and page.evaluate("document.body.dataset.version") == drawn
        page.evaluate("""() => {
            Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
            document.dispatchEvent(new Event('visibilitychange'));
        }""")
        wait_for(lambda: counter(page) == f"11 / {total}", "the page to catch up once shown")
        writer.release(total)
        writer.join()
    assert writer.refused == []
