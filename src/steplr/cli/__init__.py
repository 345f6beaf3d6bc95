"""The ``steplr`` command: argument types shared by every subcommand, one module per subcommand, and
:func:`steplr.cli.main.main` as the one place where errors become exit codes.

Only :func:`entrypoint` (the console script) is re-exported here: re-exporting ``main`` would hide the module
``steplr.cli.main`` behind the function of the same name.
"""

from steplr.cli.main import entrypoint

__all__ = ["entrypoint"]
