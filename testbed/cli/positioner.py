"""`testbed positioner ...` commands (being built; see the issue tracker)."""

from __future__ import annotations

import typer

app = typer.Typer(help="positioner commands.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """positioner commands."""
