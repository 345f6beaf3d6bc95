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
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._files import atomic_write, atomic_write_text
from .data import TrainData, split_validation
from .errors import DivergedError, TrainError
from .lr_scheduler import ScheduleLR
from .models import build_model
from .schedules import SCHEDULE_NAMES, LinearWarmup, Schedule, by_name, join
from .units import resolve_duration

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
    validation: float = 0.0  # fraction of the training set held out (steplr.data.split_validation); 0: none
    warmup: int | str | None = None  # a linear warm-up in front of the schedule (closed forms only)
    warmup_start_factor: float = 0.1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in (*SCHEDULE_NAMES, "plateau"):
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of "
                             f"{', '.join((*SCHEDULE_NAMES, 'plateau'))}")
        if self.interval not in INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {self.interval!r}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        v = self.validation
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ValueError(f"validation must be a fraction in [0, 1), got {v!r}")
        if self.warmup is not None and self.schedule == "plateau":
            raise ValueError("warmup applies to closed-form schedules, not to 'plateau'")

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
        total = self.epochs * spe
        # With a warm-up the main schedule starts after it: t_max defaults to the rest of the run and milestones
        # stay positions in the whole run (as in `steplr explain --warmup`).
        warmup = 0 if self.warmup is None else resolve_duration(self.warmup, "warmup", spe)
        if warmup >= total:
            raise ValueError(f"warmup {self.warmup} covers the whole run of {self.epochs} epochs")
        milestones = [resolve_duration(m, "milestones", spe) - warmup for m in self.milestones] or None
        if milestones and min(milestones) <= 0:
            raise ValueError(f"milestones must come after the warm-up ({self.warmup}), got {list(self.milestones)}")
        main = by_name(
            self.schedule,
            step_size=self.step_size,
            gamma=self.gamma,
            milestones=milestones,
            t_max=self.t_max if self.t_max is not None else total - warmup,
            eta_min=self.eta_min,
        ).resolve(spe)
        if not warmup:
            return main
        return join([LinearWarmup(warmup, self.warmup_start_factor), main], [warmup])

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
        """Plain data for JSON: a metric that is not a number (no validation split, a diverged model) is None."""
        epochs = [{k: _finite_or_none(v) for k, v in dataclasses.asdict(e).items()} for e in self.epochs]
        return {"epochs": epochs, "iteration_lrs": list(self.iteration_lrs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        epochs = [EpochRecord(**{k: math.nan if v is None else v for k, v in e.items()}) for e in data["epochs"]]  # type: ignore[arg-type]
        return cls(epochs, [float(x) for x in data["iteration_lrs"]])

    @property
    def diverged_at(self) -> int | None:
        """The first epoch (1-based) whose training or test loss is not a finite number, or None."""
        return next((e.epoch for e in self.epochs if not (math.isfinite(e.train_loss) and math.isfinite(e.test_loss))),
                    None)

    def column(self, name: str) -> list[float]:
        return [float(getattr(e, name)) for e in self.epochs]


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


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
    if y.shape[0] == 0:
        return math.nan, math.nan
    with torch.no_grad():
        logits = model(x)
        loss = F.cross_entropy(logits, y).item()
        accuracy = int((logits.argmax(dim=1) == y).sum()) / y.shape[0]
    return loss, accuracy


CHECKPOINT_SECONDS = 10.0  # wall-clock time between checkpoints; the last epoch always writes one


def _checkpoint(folder: Path, epoch: int, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, generator: torch.Generator, history: History) -> None:
    state = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": epoch,
        "config": config.as_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "history": history.as_dict(),
    }
    atomic_write(folder / CHECKPOINT, lambda tmp: torch.save(state, tmp))
    _write_history(folder, history)


def replace_folder(new: Path, old: Path) -> None:
    """Put the folder ``new`` where ``old`` is: ``old`` is moved aside, ``new`` renamed into place, ``old`` deleted.

    Until the second rename the old folder is intact under its name, so an interrupted replacement loses nothing.
    """
    trash = old.with_name(f".{old.name}.old-{os.getpid()}")
    if old.exists():
        os.replace(old, trash)
    os.replace(new, old)
    shutil.rmtree(trash, ignore_errors=True)


def train(
    config: TrainConfig,
    data: TrainData,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_iteration: Callable[[], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    replace: str | os.PathLike[str] | None = None,
) -> History:
    """Train one model; return its history. With ``out_dir``, write atomic checkpoints (and the history so far)
    every ``checkpoint_seconds`` of wall-clock time and after the last epoch.

    Same config and data give the same history bit for bit, so a checkpoint needs no fixed cadence: ``resume=True``
    continues from the last one to exactly the history an uninterrupted run produces. With ``config.validation``
    a stratified validation split is held out of the training set (:func:`steplr.data.split_validation`) and
    evaluated every epoch; ``plateau`` steps on the validation loss (on the training loss without a split, never
    on the test set). ``replace``: ``out_dir`` is a staging folder that replaces the folder ``replace`` once the
    first checkpoint is written (``steplr train --force`` keeps the old run until then).

    Raises:
        DivergedError: when the loss becomes NaN or infinite (after saving the history so far).
        TrainError: for a missing or corrupt checkpoint on resume.
    """
    folder = Path(out_dir) if out_dir is not None else None
    split = split_validation(data, config.validation)
    n = split.x_train.shape[0]
    batches = math.ceil(n / config.batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.seed)  # the CPU generator only: no device seeding to pay for
        model = build_model(config.model, int(split.x_train[0].numel()), split.num_classes)
    optimizer = _build_optimizer(config, model)
    scheduler = _build_scheduler(config, optimizer, batches)
    generator = torch.Generator().manual_seed(config.seed)
    history = History()
    start_epoch = 0
    if resume:
        if folder is None:
            raise TrainError("resume needs the run's folder")
        state = load_checkpoint(folder / CHECKPOINT)
        _check_resumable(TrainConfig.from_dict(state["config"]), config, batches)
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
    copy_per_epoch = split.x_train.element_size() * split.x_train.nelement() <= _SMALL_DATA_BYTES
    last_save = time.monotonic()
    for epoch in range(start_epoch, config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        if copy_per_epoch:
            x_epoch, y_epoch = _rows(split.x_train, order), _rows(split.y_train, order)
        loss_sum, correct = 0.0, torch.zeros((), dtype=torch.int64)
        lr = float("nan")
        for batch in range(batches):
            start, stop = batch * config.batch_size, (batch + 1) * config.batch_size
            if copy_per_epoch:
                xb, yb = x_epoch[start:stop], y_epoch[start:stop]
            else:
                index = order[start:stop]
                xb, yb = _rows(split.x_train, index), _rows(split.y_train, index)
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
        val_loss, val_acc = _evaluate(model, split.x_val, split.y_val)
        test_loss, test_acc = _evaluate(model, split.x_test, split.y_test)
        record = EpochRecord(epoch + 1, loss_sum / batches, int(correct) / n, test_loss, test_acc, lr, val_loss, val_acc)
        history.epochs.append(record)
        if config.schedule == "plateau":
            scheduler.step(plateau_signal(record))
        elif not per_iteration:
            scheduler.step()
        now = time.monotonic()
        if folder is not None and (epoch + 1 == config.epochs or now - last_save >= checkpoint_seconds):
            _checkpoint(folder, epoch + 1, config, model, optimizer, scheduler, generator, history)
            last_save = now
            if replace is not None:
                replace_folder(folder, Path(replace))
                folder, replace = Path(replace), None
        if on_epoch is not None:
            on_epoch(record)
    return history


def plateau_signal(record: EpochRecord) -> float:
    """The loss ``plateau`` reacts to: validation when the run holds out a split, else training (never test)."""
    return record.train_loss if math.isnan(record.val_loss) else record.val_loss


def _check_resumable(saved: TrainConfig, config: TrainConfig, batches: int) -> None:
    """A checkpoint resumes only its own config, or extends it to more ``epochs`` when the schedule stays the same
    (a length-dependent default, such as cosine's ``t_max``, would change the LRs already applied)."""
    if dataclasses.replace(saved, epochs=config.epochs) != config:
        raise TrainError("the checkpoint was written with another config; resume without overrides")
    if config.epochs < saved.epochs:
        raise TrainError(f"the checkpoint is of a {saved.epochs}-epoch run: cannot shorten it to {config.epochs}")
    if config.epochs != saved.epochs and config.schedule != "plateau":
        if saved.build_schedule(batches) != config.build_schedule(batches):
            raise TrainError(
                f"extending to {config.epochs} epochs would change the {config.schedule} schedule of the epochs "
                "already trained (it depends on the run length): start a new run instead"
            )


def _write_history(folder: Path, history: History) -> None:
    atomic_write_text(folder / "history.json", json.dumps(history.as_dict(), indent=1))
    header = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr\n"
    rows = [
        f"{e.epoch},{e.train_loss!r},{e.train_acc!r},{e.val_loss!r},{e.val_acc!r},{e.test_loss!r},{e.test_acc!r},"
        f"{e.lr!r}\n"
        for e in history.epochs
    ]
    atomic_write_text(folder / "history.csv", header + "".join(rows))
