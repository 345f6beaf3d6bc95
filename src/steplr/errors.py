"""Errors of runs, importable without torch (the CLI catches them at start-up cost zero)."""

from __future__ import annotations

__all__ = ["TrainError", "DivergedError", "Interrupted"]


class TrainError(RuntimeError):
    """A run that cannot start or continue (bad checkpoint, mismatched config)."""


class DivergedError(TrainError):
    """The loss became NaN or infinite; the history up to that point was saved."""

    def __init__(self, epoch: int, iteration: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, iteration {iteration}: stopped (history saved)")
        self.epoch, self.iteration, self.loss = epoch, iteration, loss


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command; the message says where and how to continue (exit code 130)."""
