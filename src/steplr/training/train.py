"""The sequential reference trainer: one model, in-memory batches, a History, atomic checkpoints and exact resume.

Knows nothing about particular datasets: it takes tensors (a :class:`TrainData`) and a :class:`TrainConfig`, and
takes everything the batched engine must agree on (split, batches, step cadence, batch orders, initial weights,
scheduler, optimizer constants) from a :class:`~steplr.training.plan.RunPlan`. The scheduler is a steplr
:class:`~steplr.lr_scheduler.ScheduleLR` (or torch's ``ReduceLROnPlateau`` for ``plateau``), stepped per
iteration or per epoch.

Learning rates in the history are the ones *applied*: ``iteration_lrs[i]`` is the LR the optimizer used at
iteration ``i``. The reference notes record ``param_groups[0]["lr"]`` after ``scheduler.step()``, which is the LR
of the *next* iteration: their list is ours shifted by one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steplr._files import remove_stale_temps
from steplr.errors import DivergedError, TrainError
from steplr.training._checkpoint import (
    CHECKPOINT,
    RUN_FILES,
    check_resume,
    checked_checkpoint,
    load_checkpoint,
    replace_folder,
    save_checkpoint,
    write_history,
)
from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.data import TrainData
from steplr.training.plan import RunPlan, plateau_signal
from steplr.training.task import Task

__all__ = [
    "TrainData",
    "TrainError",
    "DivergedError",
    "train",
    "CHECKPOINT",
    "CHECKPOINT_SECONDS",
    "load_checkpoint",
    "check_resume",
    "replace_folder",
    "plateau_signal",
]

CHECKPOINT_SECONDS = 10.0  # wall-clock time between checkpoints; the last epoch always writes one
# Rows evaluated per forward pass: one pass over a whole test set of images takes about 3x as long as passes of
# 1000 for a small CNN (cache-sized activations); for the MLPs it makes no difference.
EVAL_ROWS = 1000


def train(
    config: TrainConfig,
    data: TrainData,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_iteration: Callable[[], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    replace: str | os.PathLike[str] | None = None,
    *,
    task: Task | None = None,
    device: torch.device | str | None = None,
) -> History:
    """Train one model; return its history. With ``out_dir``, write atomic checkpoints (and the history so far)
    every ``checkpoint_seconds`` of wall-clock time and after the last epoch; ``resume=True`` continues from the
    last one to exactly the history an uninterrupted run produces (same config and data, same history bit for bit).
    ``config.validation`` holds out a stratified split, evaluated every epoch, on whose loss ``plateau`` steps (on
    the training loss without one, never on the test set). ``replace``: ``out_dir`` is a staging folder moved over
    ``replace`` once it holds the first checkpoint (``steplr train --force`` keeps the old run until then).
    ``task``: a user's model and loss (None: the model the config names); ``device``: where to train (None: where
    the data is).

    Raises:
        DivergedError: when the loss becomes NaN or infinite (after saving the history so far).
        TrainError: for a missing or corrupt checkpoint on resume.
    """
    plan = RunPlan([config], data, task, device)
    model = plan.initial_model(0)
    optimizer = plan.optimizer(model)
    scheduler = plan.scheduler(optimizer)
    generator = plan.generator(0)
    folder = _RunFolder(out_dir, replace, checkpoint_seconds)
    history, start_epoch = History(), 0
    if resume:  # the checkpoint, checked, loaded into the objects above
        history, start_epoch = _resume(folder.path, plan, model, optimizer, scheduler, generator)
    folder.remove_stale_temps()
    parameters = list(model.parameters())
    for epoch in range(start_epoch, plan.epochs):
        model.train()
        loss_sum, correct, lr = 0.0, torch.zeros((), dtype=torch.int64, device=plan.device), math.nan
        for batch, (xb, yb) in enumerate(plan.batches_of(plan.order(generator))):
            for parameter in parameters:  # zero_grad(set_to_none=True) without its per-call profiling overhead
                parameter.grad = None
            logits = model(xb)
            loss = plan.loss(logits, yb)
            value = loss.item()
            if not math.isfinite(value):
                folder.write_history(history)
                raise DivergedError(epoch + 1, batch + 1, value)
            loss.backward()  # type: ignore[no-untyped-call]
            lr = float(optimizer.param_groups[0]["lr"])
            history.iteration_lrs.append(lr)
            optimizer.step()
            if plan.steps_after_each_batch(0):
                scheduler.step()
            loss_sum += value
            if plan.classify:
                correct += (logits.argmax(dim=1) == yb).sum()
            if on_iteration is not None:
                on_iteration()
        history.epochs.append(record := _evaluate(plan, model, epoch, loss_sum, int(correct), lr))
        _step_after_epoch(plan, scheduler, record)
        folder.checkpoint(epoch + 1 == plan.epochs, epoch + 1, config, model, optimizer, scheduler, generator, history)
        if on_epoch is not None:
            on_epoch(record)
    return history


class _RunFolder:
    """Where a run writes, if anywhere: checkpoints every ``seconds`` of wall-clock time and after the last epoch,
    the history files; a staging folder moved over ``replace`` once it holds the first checkpoint."""

    def __init__(
        self, out_dir: str | os.PathLike[str] | None, replace: str | os.PathLike[str] | None, seconds: float
    ) -> None:
        self.path = Path(out_dir) if out_dir is not None else None
        self.replace = Path(replace) if replace is not None else None
        self.seconds = seconds
        self.last_save = time.monotonic()

    def remove_stale_temps(self) -> None:
        """Remove what a process killed while writing left behind (called after the resume checks: they touch
        nothing)."""
        if self.path is not None:
            remove_stale_temps(self.path, RUN_FILES)

    def write_history(self, history: History) -> None:
        if self.path is not None:
            write_history(self.path, history)

    def checkpoint(self, last: bool, epoch: int, *state: Any) -> None:
        """Checkpoint after ``epoch`` epochs when it is the last or the time has come (``state``: as
        :func:`~steplr.training._checkpoint.save_checkpoint` takes it after the epoch)."""
        now = time.monotonic()
        if self.path is None or not (last or now - self.last_save >= self.seconds):
            return
        save_checkpoint(self.path, epoch, *state)
        self.last_save = now
        if self.replace is not None:
            replace_folder(self.path, self.replace)
            self.path, self.replace = self.replace, None


def _resume(
    folder: Path | None,
    plan: RunPlan,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
) -> tuple[History, int]:
    """Load the folder's checkpoint (once checked) into the run's objects; its history and epochs trained."""
    if folder is None:
        raise TrainError("resume needs the run's folder")
    state = checked_checkpoint(folder / CHECKPOINT, plan.configs[0], plan.batches, model, optimizer, scheduler)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    return History.from_dict(state["history"]), int(state["epoch"])


def _step_after_epoch(plan: RunPlan, scheduler: Any, record: EpochRecord) -> None:
    """A reactive scheduler steps on the epoch's loss; a closed form stepped per epoch steps once."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(plateau_signal(record))
    elif not plan.steps_after_each_batch(0):
        scheduler.step()


def _evaluate(plan: RunPlan, model: nn.Module, epoch: int, loss_sum: float, correct: int, lr: float) -> EpochRecord:
    """The epoch's record: training sums, and loss and accuracy on the validation split and the test set."""
    model.eval()
    split = plan.split
    return plan.record(
        epoch,
        loss_sum,
        correct,
        lr,
        _metrics(plan, model, split.x_test, split.y_test),
        _metrics(plan, model, split.x_val, split.y_val),
    )


def _metrics(plan: RunPlan, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    if y.shape[0] == 0:
        return math.nan, math.nan
    with torch.no_grad():
        logits = torch.cat([model(x[start : start + EVAL_ROWS]) for start in range(0, x.shape[0], EVAL_ROWS)])
        loss = plan.loss(logits, y).item()
    accuracy = plan.accuracy_count(logits, y) / y.shape[0] if plan.classify else math.nan
    return loss, accuracy
