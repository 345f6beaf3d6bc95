"""Run checkpoints: writing them, loading them without running code, and refusing a damaged or mismatched one
before anything of it is loaded (torch's own loaders would fail half-way with a traceback, or load a wrong shape's
values silently). Also the run folder's history files and the folder swap of ``steplr train --force``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steplr._files import atomic_write, atomic_write_text
from steplr.errors import TrainError
from steplr.lr_scheduler import ScheduleLR
from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.data import TrainData
from steplr.training.plan import RunPlan, is_reactive, schedule_name, scheduler_steps

__all__ = [
    "CHECKPOINT",
    "RUN_FILES",
    "load_checkpoint",
    "check_resume",
    "checked_checkpoint",
    "save_checkpoint",
    "write_history",
    "replace_folder",
]

CHECKPOINT = "checkpoint.pt"
_CHECKPOINT_FORMAT = "steplr.run/1"
_CHECKPOINT_KEYS = ("format", "epoch", "config", "model", "optimizer", "scheduler", "generator", "history")
RUN_FILES = (CHECKPOINT, "history.json", "history.csv")  # what train() writes (atomically) in its folder


def check_resume(config: TrainConfig, data: TrainData, out_dir: str | os.PathLike[str]) -> None:
    """Check that ``train(config, data, out_dir, resume=True)`` can continue from the folder's checkpoint, without
    training or writing anything, so that a command can refuse a damaged run before it touches the folder.

    Raises:
        TrainError: what :func:`~steplr.training.train.train` would raise for the checkpoint (missing, corrupt, of
            another config).
    """
    plan = RunPlan([config], data)
    model = plan.initial_model(0)
    optimizer = plan.optimizer(model)
    checked_checkpoint(Path(out_dir) / CHECKPOINT, config, plan.batches, model, optimizer, plan.scheduler(optimizer))


def save_checkpoint(
    folder: Path,
    epoch: int,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    history: History,
) -> None:
    """Write the run's state after ``epoch`` epochs atomically, then its history files."""
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
    write_history(folder, history)


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
        raise _corrupt(path, type(error).__name__) from None
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise TrainError(f"{path} is not a steplr run checkpoint (format {_CHECKPOINT_FORMAT!r})")
    missing = [key for key in _CHECKPOINT_KEYS if key not in state]
    if missing:
        raise _corrupt(path, f"missing {', '.join(missing)}")
    return state


def _corrupt(path: Path, what: str) -> TrainError:
    return TrainError(f"checkpoint {path} is corrupt or unreadable ({what}); it was left as is")


class _Damaged(Exception):
    """What is wrong inside a checkpoint that torch could load (the caller names the file)."""


def _saved_config(state: dict[str, Any], path: Path) -> TrainConfig:
    data = state["config"]
    if not isinstance(data, dict):
        raise _corrupt(path, f"config is a {type(data).__name__}, not a dict")
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise _corrupt(path, f"config: {error}") from None


def _check_state(
    state: dict[str, Any],
    saved: TrainConfig,
    batches: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> None:
    """Refuse a loadable but damaged checkpoint before any of it is loaded: each part must fit the run it resumes
    (torch's own loaders would fail half-way with a traceback, or load a wrong shape's values silently)."""
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= saved.epochs:
        raise _Damaged(f"epoch is {_shown(epoch)}, expected an integer in [0, {saved.epochs}]")
    _check_tensors("model weight", state["model"], model.state_dict())
    _check_optimizer(state["optimizer"], optimizer, saved.optimizer)
    _check_scheduler(state["scheduler"], scheduler, scheduler_steps(saved, epoch, batches))
    generator = state["generator"]
    if not isinstance(generator, torch.Tensor):
        raise _Damaged(f"generator state is a {type(generator).__name__}, not a tensor")
    try:
        torch.Generator().set_state(generator)  # a scratch generator: torch checks size and content
    except (RuntimeError, TypeError) as error:
        raise _Damaged(f"bad generator state: {error}") from None
    _check_history(state["history"], epoch, batches)


def _check_tensors(kind: str, saved: object, expected: dict[str, torch.Tensor]) -> None:
    if not isinstance(saved, dict):
        raise _Damaged(f"{kind}s are a {type(saved).__name__}, not a dict")
    missing, unknown = [k for k in expected if k not in saved], [str(k) for k in saved if k not in expected]
    if missing or unknown:
        raise _Damaged(f"{kind}s: missing {missing}, unknown {unknown}")
    for name, want in expected.items():
        _check_tensor(f"{kind} {name}", saved[name], tuple(want.shape), want.dtype)


def _check_tensor(name: str, value: object, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    if not isinstance(value, torch.Tensor):
        raise _Damaged(f"{name} is a {type(value).__name__}, not a tensor")
    if tuple(value.shape) != shape:
        raise _Damaged(f"{name} has shape {tuple(value.shape)}, expected {shape}")
    if value.dtype != dtype:
        raise _Damaged(f"{name} has dtype {value.dtype}, expected {dtype}")


_OPTIMIZER_STATE = {"sgd": ((), ("momentum_buffer",)), "adam": (("step", "exp_avg", "exp_avg_sq"), ())}


def _check_optimizer(saved: object, optimizer: torch.optim.Optimizer, name: str) -> None:
    """Param groups as the config builds them (hyperparameters of the same kinds, a finite LR), and a state
    tensor of each parameter's shape for every key the optimizer keeps."""
    fresh = optimizer.state_dict()
    if (
        not isinstance(saved, dict)
        or not isinstance(saved.get("state"), dict)
        or not isinstance(saved.get("param_groups"), list)
    ):
        raise _Damaged("optimizer state is not a dict of 'state' and 'param_groups'")
    groups = saved["param_groups"]
    if len(groups) != len(fresh["param_groups"]):
        raise _Damaged(f"optimizer has {len(groups)} param groups, expected {len(fresh['param_groups'])}")
    for i, (group, want) in enumerate(zip(groups, fresh["param_groups"])):
        if not isinstance(group, dict) or not _same(group.get("params"), want["params"]):
            raise _Damaged(f"optimizer param_groups[{i}] does not list the model's parameters {want['params']}")
        lr = group.get("lr")
        if not _is_number(lr) or not 0 <= lr < math.inf:  # type: ignore[operator]
            raise _Damaged(f"optimizer param_groups[{i}] lr is {_shown(lr)}, expected a finite number >= 0")
        for key in want.keys() & group.keys():  # a key torch added or dropped between versions is its business
            if not _same_kind(group[key], want[key]):
                raise _Damaged(
                    f"optimizer param_groups[{i}] {key} is {_shown(group[key])}, expected one like {_shown(want[key])}"
                )
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    required, optional = _OPTIMIZER_STATE[name]
    for index, entry in saved["state"].items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(parameters):
            raise _Damaged(f"optimizer state of parameter {_shown(index)}, which the model does not have")
        keys = entry.keys() if isinstance(entry, dict) else set()
        if not isinstance(entry, dict) or not set(required) <= keys <= {*required, *optional}:
            raise _Damaged(
                f"optimizer state of parameter {index} has keys {sorted(map(str, keys))}, expected "
                f"{sorted(required) or sorted(optional)}"
            )
        for key, value in entry.items():
            if not (key == "momentum_buffer" and value is None):
                shape = () if key == "step" else tuple(parameters[index].shape)
                dtype = torch.float32 if key == "step" else parameters[index].dtype
                _check_tensor(f"optimizer {key} of parameter {index}", value, shape, dtype)
    if required and len(saved["state"]) != len(parameters):
        raise _Damaged(f"optimizer state covers {len(saved['state'])} of the model's {len(parameters)} parameters")


def _shown(value: object) -> str:
    """``repr(value)``, cut short: a damaged file may hold anything, and the error is one line."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_kind(value: object, like: object) -> bool:
    """``value`` can stand where ``like`` stands: a number for a number, a tuple of as many numbers, and so on."""
    if _is_number(like):
        return _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
    if isinstance(like, tuple):
        return isinstance(value, tuple) and len(value) == len(like) and all(map(_same_kind, value, like))
    if like is None or isinstance(like, bool):
        return value is None or isinstance(value, bool)
    return type(value) is type(like)


def _same(value: object, like: object) -> bool:
    """Equal and of the same types all the way down (a tensor is not equal to the number it holds)."""
    if isinstance(like, dict):
        return isinstance(value, dict) and value.keys() == like.keys() and all(_same(value[k], like[k]) for k in like)
    if isinstance(like, (list, tuple)):
        return type(value) is type(like) and len(value) == len(like) and all(map(_same, value, like))
    return type(value) is type(like) and value == like


_PLATEAU_PROGRESS = ("best", "num_bad_epochs", "cooldown_counter", "_last_lr")  # the rest comes from the config


def _check_scheduler(saved: object, scheduler: Any, last_epoch: int) -> None:
    """The scheduler state must be the config's, at step ``last_epoch``; for plateau its progress must be of the
    right kinds (its loader copies every key onto the object, so an unknown key could replace a method)."""
    fresh = {**scheduler.state_dict(), "last_epoch": last_epoch}
    if not isinstance(saved, dict):
        raise _Damaged(f"scheduler state is a {type(saved).__name__}, not a dict")
    missing, unknown = sorted(fresh.keys() - saved.keys()), sorted(map(str, saved.keys() - fresh.keys()))
    if missing or unknown:
        raise _Damaged(f"scheduler state: missing {missing}, unknown {unknown}")
    for key, want in fresh.items():
        value = saved[key]
        if key == "_step_count":  # how many times step() ran: progress, like last_epoch, not configuration
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _Damaged(f"scheduler _step_count is {_shown(value)}, expected an integer >= 0")
        elif isinstance(scheduler, ScheduleLR) or key not in _PLATEAU_PROGRESS:
            if not _same(value, want):
                raise _Damaged(f"scheduler {key} is {_shown(value)}, expected {_shown(want)} (from the run's config)")
        elif key == "_last_lr":
            if not (
                isinstance(value, list)
                and len(value) == len(want)
                and all(_is_number(v) and 0 <= v < math.inf for v in value)
            ):
                raise _Damaged(f"scheduler _last_lr is {_shown(value)}, expected {len(want)} finite numbers >= 0")
        elif not _is_number(value) or (key != "best" and not (isinstance(value, int) and value >= 0)):
            kind = "a number" if key == "best" else "an integer >= 0"
            raise _Damaged(f"scheduler {key} is {_shown(value)}, expected {kind}")


def _check_history(saved: object, epoch: int, batches: int) -> None:
    """A record of each epoch trained (fields of :class:`EpochRecord`, numbers or null) and an LR per iteration."""
    if (
        not isinstance(saved, dict)
        or not isinstance(saved.get("epochs"), list)
        or not isinstance(saved.get("iteration_lrs"), list)
    ):
        raise _Damaged("history is not a dict of 'epochs' and 'iteration_lrs' lists")
    records, lrs = saved["epochs"], saved["iteration_lrs"]
    if len(records) != epoch:
        raise _Damaged(f"history has {len(records)} epochs, expected {epoch}")
    fields = dataclasses.fields(EpochRecord)
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    for number, record in enumerate(records, start=1):
        keys = record.keys() if isinstance(record, dict) else set()
        if not isinstance(record, dict) or not required <= keys <= {f.name for f in fields}:
            raise _Damaged(
                f"history epoch {number} has fields {sorted(map(str, keys))}, expected {[f.name for f in fields]}"
            )
        if not (
            _same(record["epoch"], number)
            and all(v is None or _is_number(v) for k, v in record.items() if k != "epoch")
        ):
            raise _Damaged(f"history epoch {number} is not a record of epoch {number}: {_shown(record)}")
    if len(lrs) != epoch * batches or not all(_is_number(lr) and 0 <= lr < math.inf for lr in lrs):
        raise _Damaged(
            f"history has {len(lrs)} iteration LRs, expected {epoch * batches} finite numbers >= 0 "
            f"({epoch} epochs of {batches} batches)"
        )


def replace_folder(new: Path, old: Path) -> None:
    """Put the folder ``new`` where ``old`` is: ``old`` is moved aside, ``new`` renamed into place, ``old`` deleted.

    Until the second rename the old folder is intact under its name, so an interrupted replacement loses nothing.
    """
    trash = old.with_name(f".{old.name}.old-{os.getpid()}")
    if old.exists():
        os.replace(old, trash)
    os.replace(new, old)
    shutil.rmtree(trash, ignore_errors=True)


def checked_checkpoint(
    path: Path, config: TrainConfig, batches: int, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    """The checkpoint at ``path``, checked to continue ``config`` into these objects (which it does not touch)."""
    state = load_checkpoint(path)
    saved = _saved_config(state, path)
    _check_resumable(saved, config, batches)
    try:
        _check_state(state, saved, batches, model, optimizer, scheduler)
    except _Damaged as damage:
        raise _corrupt(path, str(damage)) from None
    return state


def _check_resumable(saved: TrainConfig, config: TrainConfig, batches: int) -> None:
    """A checkpoint resumes only its own config, or extends it to more ``epochs`` when the schedule stays the same
    (a length-dependent default, such as cosine's ``t_max``, would change the LRs already applied)."""
    if dataclasses.replace(saved, epochs=config.epochs) != config:
        raise TrainError("the checkpoint was written with another config; resume without overrides")
    if config.epochs < saved.epochs:
        raise TrainError(f"the checkpoint is of a {saved.epochs}-epoch run: cannot shorten it to {config.epochs}")
    extended = config.epochs != saved.epochs and not is_reactive(config)
    if extended and saved.build_schedule(batches) != config.build_schedule(batches):
        raise TrainError(
            f"extending to {config.epochs} epochs would change the {schedule_name(config)} schedule of the epochs "
            "already trained (it depends on the run length): start a new run instead"
        )


def write_history(folder: Path, history: History) -> None:
    atomic_write_text(folder / "history.json", json.dumps(history.as_dict(), indent=1))
    header = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr\n"
    rows = [
        f"{e.epoch},{e.train_loss!r},{e.train_acc!r},{e.val_loss!r},{e.val_acc!r},{e.test_loss!r},{e.test_acc!r},"
        f"{e.lr!r}\n"
        for e in history.epochs
    ]
    atomic_write_text(folder / "history.csv", header + "".join(rows))
