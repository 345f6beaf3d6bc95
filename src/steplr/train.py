"""The training loop: in-memory batches, a History, atomic checkpoints and exact resume.

Knows nothing about particular datasets: it takes tensors (a :class:`TrainData`), a model name and a
:class:`TrainConfig`. The scheduler is a steplr :class:`~steplr.lr_scheduler.ScheduleLR` (or torch's
``ReduceLROnPlateau`` for ``schedule="plateau"``), stepped per iteration or per epoch.

Learning rates in the history are the ones *applied*: ``iteration_lrs[i]`` is the LR the optimizer used at
iteration ``i``. The reference notes record ``param_groups[0]["lr"]`` after ``scheduler.step()``, which is the LR
of the *next* iteration: their list is ours shifted by one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ._files import atomic_write, atomic_write_text
from .errors import DivergedError, TrainError
from .lr_scheduler import ScheduleLR
from .models import build_model
from .schedules import Schedule, by_name

__all__ = [
    "TrainConfig",
    "TrainData",
    "EpochRecord",
    "History",
    "TrainError",
    "DivergedError",
    "train",
    "CHECKPOINT",
    "load_checkpoint",
]

CHECKPOINT = "checkpoint.pt"
_CHECKPOINT_FORMAT = "steplr.run/1"
OPTIMIZERS = ("sgd", "adam")
_SMALL_DATA_BYTES = 16 * 2**20
INTERVALS = ("iteration", "epoch")


class TrainData(Protocol):
    """What train() reads from a dataset (steplr.data.Dataset has it; so may any object)."""

    @property
    def x_train(self) -> torch.Tensor: ...
    @property
    def y_train(self) -> torch.Tensor: ...
    @property
    def x_test(self) -> torch.Tensor: ...
    @property
    def y_test(self) -> torch.Tensor: ...
    @property
    def num_classes(self) -> int: ...


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rerun a run (saved as config.json and inside each checkpoint)."""

    recipe: str = "custom"
    dataset: str = "qwerty"
    model: str = "qwerty"
    optimizer: str = "sgd"
    lr: float = 0.01
    batch_size: int = 32
    epochs: int = 20
    schedule: str = "step"
    step_size: int | str = "5ep"
    gamma: float = 0.5
    milestones: tuple[int | str, ...] = ()
    t_max: int | str | None = None
    eta_min: float = 0.0
    interval: str = "iteration"
    plateau_patience: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.interval not in INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {self.interval!r}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")

    def steps_per_epoch(self, batches: int) -> int:
        """Scheduler steps per epoch: every batch when stepping per iteration, else one."""
        return batches if self.interval == "iteration" else 1

    def build_schedule(self, batches: int) -> Schedule:
        """The config's closed-form schedule, resolved in scheduler steps (``t_max`` defaults to the whole run).

        Raises:
            ValueError: for ``plateau``, which reacts to the loss and has no closed form.
        """
        if self.schedule == "plateau":
            raise ValueError("schedule 'plateau' has no closed form")
        spe = self.steps_per_epoch(batches)
        return by_name(
            self.schedule,
            step_size=self.step_size,
            gamma=self.gamma,
            milestones=list(self.milestones) or None,
            t_max=self.t_max if self.t_max is not None else self.epochs * spe,
            eta_min=self.eta_min,
        ).resolve(spe)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        values = dict(data)
        values["milestones"] = tuple(values.get("milestones", ()))
        return cls(**values)


@dataclass
class EpochRecord:
    epoch: int  # 1-based, as the notes print it
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float  # the LR applied at the epoch's last iteration
    val_loss: float = math.nan  # NaN when the run holds out no validation split
    val_acc: float = math.nan


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    iteration_lrs: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": [dataclasses.asdict(e) for e in self.epochs], "iteration_lrs": list(self.iteration_lrs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls([EpochRecord(**e) for e in data["epochs"]], [float(x) for x in data["iteration_lrs"]])

    def column(self, name: str) -> list[float]:
        return [float(getattr(e, name)) for e in self.epochs]


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a run checkpoint without running code from it (``weights_only=True``).

    Raises:
        TrainError: if the file is missing, unreadable, corrupt or not a steplr run checkpoint.
    """
    if not path.is_file():
        raise TrainError(f"no checkpoint to resume from at {path}")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise TrainError(f"checkpoint {path} is corrupt or unreadable ({type(error).__name__}); it was left as is") from None
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise TrainError(f"{path} is not a steplr run checkpoint (format {_CHECKPOINT_FORMAT!r})")
    return state


def _build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        # fused: one kernel for the whole update instead of a Python loop over tensors; half of Adam's cost on
        # the notes' linear model (benchmarks/RESULTS.md)
        return torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    return torch.optim.SGD(model.parameters(), lr=config.lr)


def _build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, batches: int) -> Any:
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.gamma, patience=config.plateau_patience
        )
    return ScheduleLR(optimizer, config.build_schedule(batches), steps_per_epoch=config.steps_per_epoch(batches))


def _rows(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[index]`` for an integer index of any shape; index_select is 3x faster than advanced indexing."""
    picked = torch.index_select(tensor, 0, index.reshape(-1))
    return picked.view(*index.shape, *tensor.shape[1:])


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        logits = model(x)
        loss = F.cross_entropy(logits, y).item()
        accuracy = int((logits.argmax(dim=1) == y).sum()) / y.shape[0]
    return loss, accuracy


def train(
    config: TrainConfig,
    data: TrainData,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_iteration: Callable[[], None] | None = None,
) -> History:
    """Train one model; return its history. With ``out_dir``, checkpoint every epoch (atomically).

    Same config and data give the same history bit for bit; ``resume=True`` continues from the last checkpoint
    to exactly the history an uninterrupted run produces.

    Raises:
        DivergedError: when the loss becomes NaN or infinite (after saving the history so far).
        TrainError: for a missing or corrupt checkpoint on resume.
    """
    folder = Path(out_dir) if out_dir is not None else None
    n = data.x_train.shape[0]
    batches = math.ceil(n / config.batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.seed)  # the CPU generator only: no device seeding to pay for
        model = build_model(config.model, int(data.x_train[0].numel()), data.num_classes)
    optimizer = _build_optimizer(config, model)
    scheduler = _build_scheduler(config, optimizer, batches)
    generator = torch.Generator().manual_seed(config.seed)
    history = History()
    start_epoch = 0
    if resume:
        if folder is None:
            raise TrainError("resume needs the run's folder")
        state = load_checkpoint(folder / CHECKPOINT)
        saved = TrainConfig.from_dict(state["config"])
        if saved != config:
            raise TrainError("the checkpoint was written with another config; resume without overrides")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = History.from_dict(state["history"])
        start_epoch = int(state["epoch"])

    per_iteration = config.interval == "iteration" and config.schedule != "plateau"
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    # Small training sets are shuffled with one gather per epoch and sliced into views; for large ones a
    # gather per batch is faster (it does not stream the whole set through memory again; benchmarks/RESULTS.md).
    copy_per_epoch = data.x_train.element_size() * data.x_train.nelement() <= _SMALL_DATA_BYTES
    for epoch in range(start_epoch, config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        if copy_per_epoch:
            x_epoch, y_epoch = _rows(data.x_train, order), _rows(data.y_train, order)
        loss_sum, correct = 0.0, torch.zeros((), dtype=torch.int64)
        lr = float("nan")
        for batch in range(batches):
            start, stop = batch * config.batch_size, (batch + 1) * config.batch_size
            if copy_per_epoch:
                xb, yb = x_epoch[start:stop], y_epoch[start:stop]
            else:
                index = order[start:stop]
                xb, yb = _rows(data.x_train, index), _rows(data.y_train, index)
            for parameter in parameters:  # zero_grad(set_to_none=True) without its per-call profiling overhead
                parameter.grad = None
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            value = loss.item()
            if not math.isfinite(value):
                if folder is not None:
                    _write_history(folder, history)
                raise DivergedError(epoch + 1, batch + 1, value)
            loss.backward()  # type: ignore[no-untyped-call]
            lr = float(optimizer.param_groups[0]["lr"])
            history.iteration_lrs.append(lr)
            optimizer.step()
            if per_iteration:
                scheduler.step()
            loss_sum += value
            correct += (logits.argmax(dim=1) == yb).sum()
            if on_iteration is not None:
                on_iteration()
        model.eval()
        test_loss, test_acc = _evaluate(model, data.x_test, data.y_test)
        record = EpochRecord(epoch + 1, loss_sum / batches, int(correct) / n, test_loss, test_acc, lr)
        history.epochs.append(record)
        if config.schedule == "plateau":
            scheduler.step(test_loss)
        elif not per_iteration:
            scheduler.step()
        if folder is not None:
            _save_checkpoint(
                folder / CHECKPOINT,
                {
                    "format": _CHECKPOINT_FORMAT,
                    "epoch": epoch + 1,
                    "config": config.as_dict(),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "history": history.as_dict(),
                },
            )
            _write_history(folder, history)
        if on_epoch is not None:
            on_epoch(record)
    return history


def _write_history(folder: Path, history: History) -> None:
    atomic_write_text(folder / "history.json", json.dumps(history.as_dict(), indent=1))
    header = "epoch,train_loss,train_acc,test_loss,test_acc,lr\n"
    rows = [
        f"{e.epoch},{e.train_loss!r},{e.train_acc!r},{e.test_loss!r},{e.test_acc!r},{e.lr!r}\n" for e in history.epochs
    ]
    atomic_write_text(folder / "history.csv", header + "".join(rows))
