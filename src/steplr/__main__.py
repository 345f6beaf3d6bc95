"""python -m steplr."""

from steplr.cli.main import entrypoint

entrypoint()
