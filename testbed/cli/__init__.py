"""The `testbed` command line: one Typer module per command group; it parses, calls and prints."""
