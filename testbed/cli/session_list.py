"""`testbed session list`: the catalogue of sessions, filtered and sorted on what their manifests know."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, print_json

DirOpt = typer.Option(None, "--sessions-dir", help="sessions root (default: $TESTBED_SESSIONS_DIR or ./sessions)")


def list_cmd(
    sessions_dir: Path = DirOpt,
    rig: str = typer.Option(None, "--rig", help="only sessions on this rig (name or glob)"),
    plan: str = typer.Option(None, "--plan", help="only sessions of this plan (name or glob)"),
    model: str = typer.Option(None, "--model", help="only sessions that evaluated with this model (name or glob)"),
    since: str = typer.Option(None, "--since", help="created at or after this date (YYYY-MM-DD[THH:MM])"),
    until: str = typer.Option(None, "--until", help="created before this date (YYYY-MM-DD[THH:MM])"),
    state: str = typer.Option(None, "--state", help="complete | running | killed | stopped | interrupted | "
                              "error | created | damaged"),
    tag: list[str] = typer.Option(None, "--tag", help="KEY=VALUE (or KEY: any value) given at 'session run'; "
                                  "repeat to require several"),
    sort: str = typer.Option("created", "--sort", help="created | id | plan | rig | state | done | failed"),
    reverse: bool = typer.Option(False, "--reverse", help="newest / largest first"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON list"),
) -> None:
    """Every session under the sessions root with its progress; a damaged one is listed as damaged.

    Example: testbed session list --rig office-sim --tag site=lab2 --since 2026-01-01 --json
    """
    from rich.markup import escape
    from rich.table import Table

    from testbed.session.catalogue import Filters, catalog_rows, iso, parse_when, tag_filters

    f = Filters(rig=rig, plan=plan, model=model, since=parse_when(since, "--since"),
                until=parse_when(until, "--until"), state=state, tags=tag_filters(tag))
    rows = catalog_rows(sessions_dir, f, sort, reverse)
    if json_out:
        print_json([{**r, "created": iso(r["created_at"])} for r in rows])
        return
    if not rows:
        console.print("no sessions match" if any(vars(f).values()) else
                      "no sessions yet; start one with 'testbed session run PLAN --rig RIG'")
        return
    t = Table()
    for col in ("id", "plan", "rig", "created", "done", "failed", "state", "tags"):
        t.add_column(col)
    for r in rows:
        st = "[red]damaged[/red]" if r["state"] == "damaged" else r["state"]
        done = "-" if r["done"] is None else f"{r['done']}/{r['total']}"
        t.add_row(escape(r["id"]), escape(str(r["plan"])), escape(str(r["rig"])),
                  (iso(r["created_at"]) or "-").replace("+00:00", "Z"), done,
                  "-" if r["failed"] is None else str(r["failed"]), st,
                  escape(" ".join(f"{k}={v}" for k, v in sorted(r["tags"].items()))))
    console.print(t)
    for r in rows:   # the reason on one unwrapped line per damaged session
        if r["state"] == "damaged":
            console.print(f"[red]damaged[/red] {escape(r['id'])}: {escape(r['last_error'])}", soft_wrap=True)
