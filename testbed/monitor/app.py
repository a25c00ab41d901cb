"""The monitor's web app (Starlette): the page, its static files, snapshots and a server-sent event stream.

Routes
------
``/``                    the page (``testbed/assets/monitor/index.html``)
``/static/...``          its script and style, served from the installed package (no CDN)
``/api/snapshot``        the current snapshot (JSON); ``?upto=K``: as after the first K committed trials
``/events``              ``text/event-stream``: one ``data:`` line of snapshot JSON now and after each change
``/api/clients``         ``{"clients", "snapshots_built", "snapshot_build_s", "pid"}``: open event streams,
                         snapshots built so far and their CPU seconds, the serving process (the bench and
                         the tests read it from outside the monitor's process)
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from testbed.errors import TestbedError
from testbed.monitor.watcher import POLL_S, SessionWatcher
from testbed.workspace import assets_dir

#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_S = 10.0


def page_dir() -> Path:
    """Where the page's files are installed (package data)."""
    return assets_dir() / "monitor"


def create_app(watcher: SessionWatcher, stopping: threading.Event | None = None,
               poll_s: float = POLL_S) -> Starlette:
    """The app serving ``watcher``'s session; ``stopping`` set ends every open event stream."""
    stopping = stopping or threading.Event()
    static = page_dir()
    shared = {"at": -1e9, "value": None, "task": None}

    async def look() -> tuple[int, str]:
        """The watcher's ``(version, JSON)``, looked up at most once per ``poll_s`` however many pages
        follow: the pages share the look (and the snapshot, which is built once per change)."""
        now = asyncio.get_running_loop().time()
        if shared["value"] is not None and now - shared["at"] < poll_s * 0.9:
            return shared["value"]
        old = shared["task"]
        if old is not None and old.done():      # left by a page that went away: stale by now
            if not old.cancelled():
                old.exception()                 # retrieved: its error, if any, is asked for again
            shared["task"] = None
        if shared["task"] is None:
            shared["task"] = asyncio.ensure_future(asyncio.to_thread(watcher.current))
        task = shared["task"]
        try:
            value = await asyncio.shield(task)
        finally:
            if shared["task"] is task and task.done():
                shared["task"] = None
        shared["at"], shared["value"] = asyncio.get_running_loop().time(), value
        return value

    async def index(request: Request) -> Response:
        return FileResponse(static / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-store"})

    async def snapshot(request: Request) -> Response:
        upto = request.query_params.get("upto")
        if upto is not None:
            try:
                k = int(upto)
            except ValueError:
                return JSONResponse({"error": f"upto: {upto!r} is not a whole number"}, status_code=400)
            call = functools.partial(watcher.replay, max(1, k))
        else:
            call = lambda: watcher.current()[1]   # noqa: E731
        try:
            text = await asyncio.to_thread(call)
        except TestbedError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        async def stream():
            sent, quiet_s = -1, 0.0
            app.state.clients += 1
            try:
                while not stopping.is_set():
                    try:
                        version, text = await look()
                    except TestbedError as exc:   # e.g. the database went unreadable: say so, keep trying
                        yield f"event: problem\ndata: {json.dumps({'message': str(exc)})}\n\n"
                        await asyncio.sleep(max(poll_s, 1.0))
                        continue
                    if version != sent:
                        sent, quiet_s = version, 0.0
                        yield f"id: {version}\nevent: snapshot\ndata: {text}\n\n"
                    elif quiet_s >= KEEPALIVE_S:
                        quiet_s = 0.0
                        yield ": keep-alive\n\n"
                    await asyncio.sleep(poll_s)
                    quiet_s += poll_s
            finally:
                app.state.clients -= 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def clients(request: Request) -> Response:
        return JSONResponse({"clients": app.state.clients, "snapshots_built": watcher.builds,
                             "snapshot_build_s": watcher.build_s, "pid": os.getpid()},
                            headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/api/clients", clients),
        Route("/api/snapshot", snapshot),
        Route("/events", events),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.watcher = watcher
    app.state.stopping = stopping
    app.state.clients = 0          # open event streams (pages following the session)
    return app
