"""Which engine trains a set of runs, and training them: :func:`train_many`.

Three engines train the same run plan (:mod:`steplr.training.plan`) to the same result:

* ``stack``: the hand-written batched engine (:mod:`steplr.training.batched`) for plain Linear/ReLU stacks that
  declare a :class:`~steplr.training.models.StackSpec`, trained with cross-entropy by plain SGD or Adam;
* ``sequential``: the reference trainer (:mod:`steplr.training.train`), one run after another, for any model.

``engine="auto"`` takes the fastest engine that can train the runs and says why in :func:`choose_engine`'s reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from steplr.errors import DivergedError, SteplrValueError
from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.data import TrainData
from steplr.training.models import stack_spec
from steplr.training.task import Task

__all__ = ["ENGINES", "choose_engine", "train_many"]

ENGINES = ("auto", "batched", "sequential")


def _stack_reason(config: TrainConfig, task: Task | None, device: torch.device | str | None) -> str | None:
    """Why the hand-written stack engine cannot train ``config``, or None when it can."""
    if task is not None:
        return "a user's model"
    if config.loss != "cross_entropy":
        return f"loss {config.loss}"
    if config.optimizer == "adamw" or config.momentum or config.weight_decay:
        return "an optimizer setting it does not write out (momentum, weight decay or AdamW)"
    if device is not None and torch.device(device).type != "cpu":
        return f"device {device}"
    return None


def choose_engine(
    configs: Sequence[TrainConfig],
    data: TrainData,
    task: Task | None = None,
    engine: str = "auto",
    device: torch.device | str | None = None,
) -> tuple[str, str]:
    """The engine that trains ``configs`` (``"stack"`` or ``"sequential"``) and the reason, in a few words.

    Raises:
        SteplrValueError: for an unknown engine, or ``batched`` where no batched engine can train the runs.
    """
    if engine not in ENGINES:
        raise SteplrValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "sequential":
        return "sequential", "asked for"
    reason = _stack_reason(configs[0], task, device)
    if reason is None:
        from steplr.training.models import build_model

        if stack_spec(build_model(configs[0].model, 1, 2)) is None:
            reason = f"model {configs[0].model} is not a plain Linear/ReLU stack"
    if reason is None:
        return "stack", "a plain Linear/ReLU stack"
    if engine == "batched":
        raise SteplrValueError(f"engine 'batched' cannot train these runs: {reason}")
    return "sequential", f"no batched engine takes {reason}"


def train_many(
    configs: Sequence[TrainConfig],
    data: TrainData,
    *,
    task: Task | None = None,
    engine: str = "auto",
    device: torch.device | str | None = None,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
) -> list[History]:
    """Train every config; one History per config, in order. ``on_epoch`` is called with the records of the
    models that finished an epoch (all of them at once for a batched engine, one at a time for the sequential).

    A run whose loss becomes NaN or infinite keeps NaN metrics from that epoch on, whatever the engine.
    """
    chosen, _ = choose_engine(configs, data, task, engine, device)
    if chosen == "stack":
        from steplr.training.batched import train_batched

        return train_batched(configs, data, on_epoch=on_epoch)
    return [_sequential(config, data, task, device, on_epoch) for config in configs]


def _sequential(
    config: TrainConfig,
    data: TrainData,
    task: Task | None,
    device: torch.device | str | None,
    on_epoch: Callable[[list[EpochRecord]], None] | None,
) -> History:
    """One run of the reference trainer; a diverged run's history is padded with NaN epochs to the run's end."""
    from steplr.training.train import train

    history = History()

    def record(epoch: EpochRecord) -> None:
        history.epochs.append(epoch)
        if on_epoch is not None:
            on_epoch([epoch])

    try:
        return train(config, data, on_epoch=record, task=task, device=device)
    except DivergedError:
        nan = math.nan
        for epoch in range(len(history.epochs) + 1, config.epochs + 1):
            history.epochs.append(EpochRecord(epoch, nan, nan, nan, nan, nan, nan, nan))
        return history
