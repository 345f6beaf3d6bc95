"""python -m steplr."""

from .cli import entrypoint

entrypoint()
