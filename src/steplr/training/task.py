"""A user's model and loss, as the engines take them: :class:`Task`.

The built-in recipes name their model in the config (``TrainConfig.model``); a user's model is a function that
makes a fresh ``nn.Module``, called once per run under the run's seed, so run ``i`` starts from the weights that
seed gives and a rerun starts from the same ones. The config records only a label for it (``TrainConfig.model``)
and, for a loss given as a function, ``loss="custom"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from steplr.errors import SteplrTypeError, SteplrValueError

__all__ = ["Task", "LossFunction", "loss_function", "check_model"]

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Task:
    """A model to train and, optionally, the loss to train it on.

    Args:
        build: called with no arguments, returns a fresh ``nn.Module`` (its weights drawn from torch's global RNG,
            which steplr seeds per run).
        loss: ``loss(outputs, targets) -> scalar tensor``, the mean loss of a batch; used when the config's
            ``loss`` is ``"custom"``.
        name: how configs, reports and messages name the model.
    """

    build: Callable[[], nn.Module]
    loss: LossFunction | None = None
    name: str = "model"

    def __post_init__(self) -> None:
        if not callable(self.build):
            raise SteplrTypeError(f"model must be a callable returning a fresh nn.Module, got {self.build!r}")
        if self.loss is not None and not callable(self.loss):
            raise SteplrTypeError(f"loss must be a name or a callable(outputs, targets), got {self.loss!r}")


def check_model(model: object, name: str) -> nn.Module:
    """``model`` if it is an ``nn.Module`` with parameters; else an error naming what ``name`` returned."""
    if not isinstance(model, nn.Module):
        raise SteplrTypeError(f"{name}() must return an nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise SteplrValueError(f"{name}() returned a {type(model).__name__} with no trainable parameters")
    return model


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error; outputs of shape (N, 1) are matched to targets of shape (N,)."""
    if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
        outputs = outputs.squeeze(-1)
    return F.mse_loss(outputs, targets)


def loss_function(name: str, task: Task | None) -> LossFunction:
    """The loss a config names: ``cross_entropy``, ``mse``, or ``custom`` (the task's function).

    Raises:
        SteplrValueError: for ``custom`` without a task loss.
    """
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "mse":
        return _mse
    if name == "custom" and task is not None and task.loss is not None:
        return task.loss
    raise SteplrValueError(f"loss {name!r} needs a loss function (Task.loss), got none")
