"""`testbed init`: a fresh workspace with example rigs and plans."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console


def init(
    directory: Path = typer.Argument(Path("."), help="workspace folder (created if missing)"),
    force: bool = typer.Option(False, "--force", help="overwrite example files that already exist"),
) -> None:
    """Create a workspace: rigs/ (example rigs), calibration/, sessions/plans/, analysis/, models/.

    Example: testbed init lab && cd lab && testbed rig check rigs/office-sim.toml
    """
    from testbed.workspace import init_workspace

    written = init_workspace(directory, force=force)
    console.print(f"workspace ready in {directory.resolve()}")
    for p in written:
        console.print(f"  wrote {p}")
