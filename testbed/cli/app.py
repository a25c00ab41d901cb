"""The ``testbed`` command: one Typer app joining one module per command group.

Every :class:`~testbed.errors.TestbedError` raised below a command becomes one line
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from testbed.errors import TestbedError


class _ErrorFunnel(TyperGroup):
    """Root group that turns domain errors into ``error: ...`` and exit 2."""

    def invoke(self, ctx: click.Context):  # noqa: D401
        try:
            return super().invoke(ctx)
        except TestbedError as exc:
            from rich.markup import escape

            from testbed.cli.common import err_console

            msg = " ".join(str(exc).split("\n"))
            err_console.print(f"[red]error:[/red] {escape(msg)}", markup=True, highlight=False)
            ctx.exit(2)


app = typer.Typer(
    cls=_ErrorFunnel,
    name="testbed",
    help=(
        "Over-the-air adversarial attacks on compressed and robust on-device audio models.\n\n"
        "Example: testbed init lab && cd lab && testbed rig check rigs/office-sim.toml"
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _register() -> None:
    from testbed.cli import (
        analyze,
        attack,
        bench,
        calibrate,
        demo,
        devices,
        dut,
        models,
        positioner,
        rig,
        session,
        watch,
        workspace,
    )

    app.command("init")(workspace.init)
    app.command("devices")(devices.devices)
    app.add_typer(rig.app, name="rig")
    app.command("calibrate")(calibrate.calibrate)
    app.add_typer(models.app, name="models")
    app.add_typer(attack.app, name="attack")
    session.app.command("watch")(watch.watch_cmd)   # lives in cli/watch.py: session.py is at its size limit
    app.add_typer(session.app, name="session")
    app.add_typer(dut.app, name="dut")
    app.add_typer(positioner.app, name="positioner")
    app.command("analyze")(analyze.analyze)
    app.command("demo")(demo.demo)
    app.command("bench")(bench.bench)


_register()


def main() -> None:
    """Console-script entry point (the process's allocator is tuned first, see
    :mod:`testbed.models.allocator`)."""
    from testbed.models.allocator import keep_freed_memory

    keep_freed_memory()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
