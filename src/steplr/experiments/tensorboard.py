"""TensorBoard event files of finished runs (``--tensorboard DIR`` of train, compare and sweep; ``tensorboard=`` of
:func:`steplr.compare` and :func:`steplr.sweep`): the extra ``tensorboard``.

Each run (one schedule or sweep config, one seed) gets its own folder, ``DIR/LABEL/seed-N``, so TensorBoard lists
it as a run of its own and can overlay the seeds of one schedule or the schedules of one seed. A run holds:

* ``lr``: the learning rate the optimizer applied at every iteration, at step = the 0-based iteration;
* ``loss/train``, ``loss/validation``, ``loss/test``, ``accuracy/train``, ``accuracy/validation``,
  ``accuracy/test``: per epoch, at step = the 1-based epoch (as ``history.csv`` numbers them).

A value that is NaN is not written: the validation tags of a run without a validation split, a regression's
accuracies. TensorBoard stores scalars as 32-bit floats, so a value read back equals ``numpy.float32`` of the
history's value.

The events are written from the finished :class:`~steplr.training.config.History` objects, after training: what
TensorBoard shows is exactly what ``history.json`` holds, and training itself never imports TensorBoard. This is the
only steplr module that imports it (import-linter checks that), lazily, so that importing it needs no extra.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steplr.errors import SteplrValueError
from steplr.experiments.results import GridResult, point_label
from steplr.training.config import History, TrainConfig

if TYPE_CHECKING:
    from steplr.training.data import TrainData

__all__ = [
    "EPOCH_TAGS",
    "LR_TAG",
    "require",
    "check_folder",
    "check_free",
    "run_folder",
    "write_history",
    "write_runs",
    "comparison_runs",
    "config_label",
    "grid_sweep_runs",
    "sweep_run_keys",
]

LR_TAG = "lr"
# Tag -> the EpochRecord field it is read from.
EPOCH_TAGS = {
    "loss/train": "train_loss",
    "loss/validation": "val_loss",
    "loss/test": "test_loss",
    "accuracy/train": "train_acc",
    "accuracy/validation": "val_acc",
    "accuracy/test": "test_acc",
}

Run = tuple[str, int, History]  # label, seed, history


def require() -> None:
    """Import TensorBoard's writer now, so a missing extra is named before any training.

    Raises:
        ModuleNotFoundError: ``tensorboard`` is not installed (:func:`steplr._extras.missing_extra` names the
            extra ``tensorboard``).
    """
    import tensorboard  # noqa: F401  (torch's writer below needs it; importing it first names it when missing)
    import torch.utils.tensorboard  # noqa: F401


def check_folder(folder: Any, name: str = "--tensorboard") -> Path:
    """``folder`` as a path TensorBoard runs can be written under: it may exist (runs of other commands may share
    it) but must be a folder. ``name`` is what errors call it.

    Raises:
        SteplrValueError: an empty name, or a path that exists and is not a folder.
    """
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise SteplrValueError(f"{name} must name a folder, got {folder!r}")
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise SteplrValueError(f"{name} {str(path)!r} exists and is not a folder")
    return path


def _safe(label: str) -> str:
    """A run's label as one folder name: ``step 2ep, gamma 0.5, lr 0.1`` -> ``step-2ep_gamma-0.5_lr-0.1``."""
    text = re.sub(r"[^A-Za-z0-9_.,=+-]", "-", label.replace(", ", "_").replace(" ", "-"))
    return text.lstrip(".") or "run"  # never "..", nor a hidden folder TensorBoard would skip


def run_folder(root: Path, label: str, seed: int) -> Path:
    """Where the run of ``label`` and ``seed`` is written: ``root/LABEL/seed-SEED``."""
    return root / _safe(label) / f"seed-{seed}"


def check_free(
    root: Path, runs: Iterable[tuple[str, int]], *, replace: bool = False, name: str = "--tensorboard", hint: str = ""
) -> None:
    """Refuse, before any training, two runs that would share a folder under ``root`` (labels that differ only in
    characters a folder name cannot hold), and unless ``replace``, a run folder that already holds files
    (TensorBoard would show the old events and the new ones as one run). ``hint`` ends that error's message.

    Raises:
        SteplrValueError: naming the folder.
    """
    seen: dict[Path, str] = {}
    for label, seed in runs:
        folder = run_folder(root, label, seed)
        if folder in seen and seen[folder] != label:
            raise SteplrValueError(f"{name}: the runs of {seen[folder]!r} and {label!r} would share {folder}")
        seen[folder] = label
        if not replace and folder.is_dir() and any(folder.iterdir()):
            raise SteplrValueError(f"{name}: {folder} already holds a run{hint}")


def write_history(folder: Path, history: History, *, replace: bool = False) -> None:
    """Write one run's scalars (see the module's docstring) into ``folder`` (created; with ``replace``, what it
    held before is removed first)."""
    from torch.utils.tensorboard import SummaryWriter

    if replace and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for step, lr in enumerate(history.iteration_lrs):
            writer.add_scalar(LR_TAG, float(lr), global_step=step)
        for record in history.epochs:
            for tag, field_name in EPOCH_TAGS.items():
                value = float(getattr(record, field_name))
                if not math.isnan(value):
                    writer.add_scalar(tag, value, global_step=record.epoch)
    finally:
        writer.close()


def write_runs(root: Path, runs: Iterable[Run], *, replace: bool = False) -> list[Path]:
    """Write every run of ``runs`` (label, seed, history) under ``root``; return their folders in order."""
    folders = []
    for label, seed, history in runs:
        folder = run_folder(root, label, seed)
        write_history(folder, history, replace=replace)
        folders.append(folder)
    return folders


def comparison_runs(runs: Mapping[str, Sequence[History]], seeds: Sequence[int]) -> list[Run]:
    """A comparison's runs (schedule name -> one History per seed, in the order of ``seeds``) as labelled runs."""
    return [(label, seed, history) for label, histories in runs.items() for seed, history in zip(seeds, histories)]


def config_label(kind: str, swept: Sequence[str], config: TrainConfig) -> str:
    """A sweep config in words, its ``swept`` parameters and lr (``step 2ep, gamma 0.5, lr 0.1``; the constant LR
    ``none, lr 0.1``): the label its runs are filed under."""
    if config.schedule.kind != kind:
        return f"{config.schedule.kind}, lr {config.lr:g}"
    return point_label(kind, {name: config.schedule.params[name] for name in swept}, config.lr)


def grid_sweep_runs(recipe: str, data: TrainData, **arguments: Any) -> tuple[GridResult, list[Run]]:
    """:func:`steplr.experiments.grid.grid_sweep` (same arguments, same result) that also returns every run's
    History, labelled by :func:`config_label`: ``grid_sweep`` keeps only the final metrics."""
    from steplr.experiments.grid import DEFAULT_KIND, check_grid, grid_sweep
    from steplr.schedules.registry import lookup

    kind = lookup(arguments.get("schedule", DEFAULT_KIND)).name
    swept = list(check_grid(kind, arguments.get("grid") or {}))  # the registry's order, as the labels name them
    runs: list[Run] = []

    def keep(config: TrainConfig, history: History) -> None:
        runs.append((config_label(kind, swept, config), config.seed, history))

    return grid_sweep(recipe, data, on_run=keep, **arguments), runs


def sweep_run_keys(kind: str, swept: Sequence[str], configs: Iterable[TrainConfig]) -> list[tuple[str, int]]:
    """The (label, seed) of every run of a sweep's configs, for :func:`check_free` before training."""
    return [(config_label(kind, swept, config), config.seed) for config in configs]
