"""steplr's errors, importable without torch. Every error steplr raises on purpose derives from
:class:`SteplrError`; the command line shows those as one line (exit 2, or 1 for a diverged run) and anything else
as a traceback, so a bug is never disguised as a usage error."""

from __future__ import annotations

__all__ = [
    "SteplrError",
    "SteplrValueError",
    "SteplrTypeError",
    "SteplrKeyError",
    "TrainError",
    "DivergedError",
    "Interrupted",
]


class SteplrError(Exception):
    """Base of every error steplr raises on purpose: bad input, a run that cannot go on, a lost storage."""


class SteplrValueError(SteplrError, ValueError):
    """A bad value (the message names it). Still a ``ValueError``, as the library promises."""


class SteplrTypeError(SteplrError, TypeError):
    """A value of the wrong type (the message names it). Still a ``TypeError``, as the library promises."""


class SteplrKeyError(SteplrValueError, KeyError):
    """Something a call needs is missing from a mapping (the message names it). A ``ValueError`` as the library
    promises, and a ``KeyError`` as torch raises in the same place."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class TrainError(SteplrError, RuntimeError):
    """A run that cannot start or continue (bad checkpoint, mismatched config)."""


class DivergedError(TrainError):
    """The loss became NaN or infinite; the history up to that point was saved."""

    def __init__(self, epoch: int, iteration: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, iteration {iteration}: stopped (history saved)")
        self.epoch, self.iteration, self.loss = epoch, iteration, loss


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command; the message says where and how to continue (exit code 130)."""
