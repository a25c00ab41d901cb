"""The ``testbed`` command: one Typer app joining one module per command group.

Every :class:`~testbed.errors.TestbedError` raised below a command becomes one line
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from testbed.errors import TestbedError


def _as_written(text: str | None) -> str | None:
    """A help text shown as written. Rich markup is escaped (a TOML ``[dut]`` or a JSON
    ``[lo, hi]`` is text, not a style tag, which Rich would drop), and the hard line breaks of
    each paragraph after the first are joined (Typer's rich mode keeps them, which breaks lines
    mid-sentence wherever the terminal is narrower than the source). A line starting with
    ``- `` keeps its break."""
    if not text:
        return text
    from rich.markup import escape

    paragraphs = []
    for para in text.split("\n\n"):
        if not para.startswith("\b"):
            para = "".join(("\n" if line.startswith("- ") else " ") + line.strip()
                           for line in para.split("\n")).strip()
        paragraphs.append(para)
    return escape("\n\n".join(paragraphs))


def _show_help_as_written(command: click.Command) -> None:
    command.help = _as_written(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = _as_written(param.help)
    for sub in getattr(command, "commands", {}).values():
        _show_help_as_written(sub)


class _ErrorFunnel(TyperGroup):
    """Root group that turns domain errors into ``error: ...`` and exit 2, and shows every
    command's help as written (see :func:`_as_written`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _show_help_as_written(self)

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


@app.callback()
def _root(
    tls_ca_file: str = typer.Option(None, "--tls-ca-file", envvar="TESTBED_TLS_CA_FILE",
                                    help="--cluster tls://...: the CA file (PEM) that signed the scheduler's certificate"),
    tls_cert: str = typer.Option(None, "--tls-cert", envvar="TESTBED_TLS_CERT",
                                 help="--cluster tls://...: this client's certificate (PEM)"),
    tls_key: str = typer.Option(None, "--tls-key", envvar="TESTBED_TLS_KEY",
                                help="--cluster tls://...: this client's private key (PEM)"),
) -> None:
    """Options before the command apply to every command (e.g. the TLS files of --cluster tls://)."""
    import os

    for env, value in (("TESTBED_TLS_CA_FILE", tls_ca_file), ("TESTBED_TLS_CERT", tls_cert),
                       ("TESTBED_TLS_KEY", tls_key)):
        if value:
            os.environ[env] = value   # read by testbed.scale.parse_cluster


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
        study,
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
    session.app.command("inject")(watch.inject_cmd)
    app.add_typer(session.app, name="session")
    app.add_typer(dut.app, name="dut")
    app.add_typer(positioner.app, name="positioner")
    app.command("analyze")(analyze.analyze)
    app.command("demo")(demo.demo)
    app.command("bench")(bench.bench)
    app.add_typer(study.app, name="study")


_register()


def main() -> None:
    """Console-script entry point. The process's allocator is tuned first
    (:func:`testbed.models.allocator.keep_freed_memory`, the setting Dask workers and the tests'
    ``cli`` fixture apply too, and sessions record in their manifest)."""
    # function-level for start-up cost only (testbed.models loads torch; ``--help`` need not):
    # models never imports the CLI, so this is no cycle
    from testbed.models.allocator import keep_freed_memory

    keep_freed_memory()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
