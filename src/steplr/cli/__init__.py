"""The ``steplr`` command: argument types shared by every subcommand, one module per subcommand, and
:func:`steplr.cli.main.main` as the one place where errors become exit codes."""

from steplr.cli.main import build_parser, entrypoint, main

__all__ = ["build_parser", "entrypoint", "main"]
