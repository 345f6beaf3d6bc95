"""Schedules compared and swept on a user's own model and data: ``compare`` and ``sweep``
(``steplr.compare``, ``steplr.sweep``).

Every argument is checked before anything trains or any file is written, each error naming the argument: the
data's shapes and types, the schedules (names get the registry's fair defaults, schedule objects are taken as
given), the optimizer settings, and one trial call of the model on two training examples with the loss. Then the
runs go through the same path as the built-in recipes (``steplr.experiments.compare.train_comparison``,
``steplr.experiments.grid.grid_sweep``, both training with ``steplr.training.engines.train_many``), and
``out`` is written exactly as ``steplr compare`` / ``steplr sweep`` write their folders.

A user's run steps its scheduler once an epoch unless ``interval="iteration"``: that is how most training loops
call ``scheduler.step()``, and a duration such as ``"5ep"`` means the same either way.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.experiments.compare import (
    DEFAULT_VALIDATION,
    batches_per_epoch,
    compare_config,
    compare_figures,
    plan_lines,
    train_comparison,
)
from steplr.experiments.results import BASELINE, Comparison, GridResult, as_row, jsonable
from steplr.schedules.kinds import LinearWarmup, Schedule
from steplr.schedules.kinds import Sequence as Joined
from steplr.schedules.registry import KINDS, compared, lookup
from steplr.schedules.spec import ScheduleSpec
from steplr.training.config import LOSSES, EpochRecord, History, TrainConfig
from steplr.training.task import LossFunction, Task, check_model

__all__ = [
    "compare",
    "sweep",
    "CompareResult",
    "SweepResult",
    "UserData",
    "as_data",
    "schedule_spec",
    "model_label",
    "user_config",
    "check_task",
    "STEP_GRID",
    "DEFAULT_SEEDS",
    "USER_DEFAULTS",
    "prepare_compare",
    "run_compare",
    "prepare_sweep",
    "run_sweep",
    "PreparedCompare",
    "PreparedSweep",
]

STEP_GRID: dict[str, list[Any]] = {
    "step_size": ["1ep", "2ep", "5ep", "10ep"],
    "gamma": [0.1, 0.3, 0.5, 0.7, 0.9],
}  # sweep's default grid
DEFAULT_SEEDS = {"compare": 5, "sweep": 3}
# The settings of a user's runs unless given (the keyword defaults of compare and sweep; the CLI's with --model).
USER_DEFAULTS: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.0,
    "nesterov": False,
    "weight_decay": 0.0,
    "batch_size": 32,
    "epochs": 10,
    "interval": "epoch",
    "validation": DEFAULT_VALIDATION,
}
_NAMED_LOSSES = tuple(name for name in LOSSES if name != "custom")


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class UserData:
    """A user's data in memory (a ``TrainData``): integer labels are classes, float
    targets a regression (``num_classes`` is then the number of outputs)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def classify(self) -> bool:
        return not self.y_train.is_floating_point()


def _stacked(dataset: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A map-style dataset of ``(x, y)`` pairs as two stacked tensors (read once, item by item)."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise SteplrTypeError(f"data: {what} must be a map-style dataset (len and [i]), got {type(dataset).__name__}")
    size = len(dataset)
    if size == 0:
        raise SteplrValueError(f"data: {what} is empty")
    xs, ys = [], []
    for i in range(size):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise SteplrTypeError(f"data: {what}[{i}] must be a pair (x, y), got {type(item).__name__}")
        try:
            xs.append(torch.as_tensor(item[0]))
            ys.append(torch.as_tensor(item[1]))
        except (TypeError, ValueError, RuntimeError) as error:
            raise SteplrTypeError(f"data: {what}[{i}] is not a pair of tensors or numbers: {error}") from None
    try:
        return torch.stack(xs), torch.stack(ys)
    except RuntimeError:
        raise SteplrValueError(f"data: the examples of {what} differ in shape") from None


def _tensors(data: Any) -> tuple[torch.Tensor, ...]:
    """The four tensors of ``data`` as given (tensors, a pair of datasets, or an object with the four fields)."""
    names = ("x_train", "y_train", "x_test", "y_test")
    if all(hasattr(data, name) for name in names) and not isinstance(data, (tuple, list)):
        return tuple(getattr(data, name) for name in names)
    if not isinstance(data, (tuple, list)):
        raise SteplrTypeError(
            "data must be (x_train, y_train, x_test, y_test) tensors or (train_dataset, test_dataset), "
            f"got {type(data).__name__}"
        )
    if len(data) == 2:
        return (*_stacked(data[0], "the training dataset"), *_stacked(data[1], "the test dataset"))
    if len(data) != 4:
        raise SteplrValueError(
            "data must be (x_train, y_train, x_test, y_test) tensors or (train_dataset, test_dataset), "
            f"got {len(data)} items"
        )
    for name, value in zip(names, data):
        if not isinstance(value, torch.Tensor):
            raise SteplrTypeError(f"data: {name} must be a torch.Tensor, got {type(value).__name__}")
    return tuple(data)


def as_data(data: Any, loss: str | Callable[..., Any] = "cross_entropy") -> UserData:
    """``data`` checked and held in memory: four tensors ``(x_train, y_train, x_test, y_test)``, or a pair of
    map-style datasets yielding ``(x, y)`` (stacked once), or an object with those four fields.

    Raises:
        SteplrTypeError, SteplrValueError: naming what is wrong (``data: ...``): an empty set, lengths of x and y
            that differ, train and test examples of different shapes, features that are not floating point,
            labels that are not integers for ``cross_entropy`` (or not floats for ``mse``).
    """
    x_train, y_train, x_test, y_test = _tensors(data)
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.dim() == 0 or y.dim() == 0:
            raise SteplrValueError(f"data: x_{part} and y_{part} must hold one row per example, got a scalar")
        if x.shape[0] == 0:
            raise SteplrValueError(f"data: x_{part} holds no examples")
        if x.shape[0] != y.shape[0]:
            raise SteplrValueError(
                f"data: x_{part} has {x.shape[0]} examples but y_{part} has {y.shape[0]}: they must match"
            )
        if not x.is_floating_point():
            raise SteplrTypeError(f"data: x_{part} must hold floating-point features, got {x.dtype} (convert it)")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise SteplrValueError(
            f"data: train and test examples differ in shape: {tuple(x_train.shape[1:])} and {tuple(x_test.shape[1:])}"
        )
    if y_train.is_floating_point() != y_test.is_floating_point() or y_train.shape[1:] != y_test.shape[1:]:
        raise SteplrValueError(
            f"data: y_train and y_test differ: {y_train.dtype} {tuple(y_train.shape[1:])} and "
            f"{y_test.dtype} {tuple(y_test.shape[1:])}"
        )
    classify = not y_train.is_floating_point()
    if loss == "cross_entropy" and not classify:
        raise SteplrTypeError(f"data: loss cross_entropy needs integer class labels, got y_train of {y_train.dtype}")
    if loss == "mse" and classify:
        raise SteplrTypeError(f"data: loss mse needs floating-point targets, got y_train of {y_train.dtype}")
    if classify:
        if y_train.dim() != 1 or y_test.dim() != 1:
            raise SteplrValueError(
                f"data: class labels must be one integer per example, got shape {tuple(y_train.shape)}"
            )
        low = int(min(y_train.min(), y_test.min()))
        if low < 0:
            raise SteplrValueError(f"data: class labels must be >= 0, got {low}")
        classes = int(max(y_train.max(), y_test.max())) + 1
    else:
        classes = 1 if y_train.dim() == 1 else int(math.prod(y_train.shape[1:]))
    return UserData(x_train, y_train, x_test, y_test, classes)


# --------------------------------------------------------------------------------------------- schedules


def schedule_spec(schedule: Schedule | ScheduleSpec, name: str = "schedule") -> ScheduleSpec:
    """The config's ``ScheduleSpec`` of a schedule object: its registry kind and parameters (a bare integer
    is scheduler steps, as in the Python API everywhere); ``join([LinearWarmup(w, f), s], [w])`` is ``s`` with a
    warm-up of ``w`` steps.

    Raises:
        SteplrValueError: for a schedule with no registry kind, or a join of another shape (named by ``name``).
    """
    if isinstance(schedule, ScheduleSpec):
        return schedule
    if not isinstance(schedule, Schedule):
        raise SteplrTypeError(f"{name} must be a schedule name or a steplr schedule, got {schedule!r}")
    if isinstance(schedule, Joined):
        parts, boundaries = schedule.schedules, schedule.boundaries
        if (
            len(parts) == 2
            and type(parts[0]) is LinearWarmup
            and list(boundaries) == [parts[0].total_iters]
            and not any(p.in_run for p in _kind_of(parts[1], name).params)
        ):
            inner = schedule_spec(parts[1], name)
            warm = parts[0]
            return ScheduleSpec(inner.kind, dict(inner.params), _warmup(warm.total_iters), float(warm.start_factor))
        raise SteplrValueError(
            f"{name}: a joined schedule is taken only as join([LinearWarmup(w), schedule], [w]) "
            "(a warm-up in front of one schedule without milestones)"
        )
    kind = _kind_of(schedule, name)
    params = {k: v for k, v in schedule.params().items() if k != "type"}
    if params.pop("counted", False):
        raise SteplrValueError(
            f"{name}: MultiStep(counted=True) has no config form; give strictly increasing milestones"
        )
    try:
        return ScheduleSpec(kind.name, params)
    except SteplrValueError as error:
        raise SteplrValueError(f"{name}: {error}") from None


def _warmup(value: Any) -> int | str:
    """A warm-up's length as a spec keeps it: steps (an int) or a duration's text."""
    return value if isinstance(value, int) else str(value)


def _kind_of(schedule: Schedule, name: str) -> Any:
    kind = next((k for k in KINDS if k.schedule is not None and type(schedule) is k.schedule), None)
    if kind is None:
        kinds = ", ".join(k.schedule.__name__ for k in KINDS if k.schedule is not None)
        raise SteplrValueError(f"{name}: {type(schedule).__name__} has no config form; use one of {kinds}")
    return kind


def _schedules(schedules: Any) -> dict[str, str | ScheduleSpec]:
    """Label -> registry name (fair defaults) or spec (as given), the constant LR first."""
    if schedules is None:
        schedules = list(compared(by_default=True))
    if isinstance(schedules, str) or not isinstance(schedules, (Mapping, list, tuple)):
        raise SteplrTypeError(
            f"schedules must be a dict of name -> schedule, or a list of schedule names, got {schedules!r}"
        )
    items = list(schedules.items()) if isinstance(schedules, Mapping) else [(s, s) for s in schedules]
    if not items:
        raise SteplrValueError("schedules must name at least one schedule")
    found: dict[str, str | ScheduleSpec] = {}
    for label, value in items:
        if not isinstance(label, str) or not label.strip():
            raise SteplrValueError(f"schedules: every name must be a non-empty string, got {label!r}")
        if label in found:
            raise SteplrValueError(f"schedules names {label!r} twice")
        where = f"schedules[{label!r}]"
        if isinstance(value, str):
            if value not in compared():
                raise SteplrValueError(f"{where}: unknown schedule {value!r}; expected one of {', '.join(compared())}")
            found[label] = lookup(value).name
        else:
            found[label] = schedule_spec(value, where)
    baseline = found.pop(BASELINE, BASELINE)
    if baseline != BASELINE and not (
        isinstance(baseline, ScheduleSpec) and baseline.kind == BASELINE and not baseline.warmup
    ):
        raise SteplrValueError(f"schedules[{BASELINE!r}] is the constant-LR baseline; name your schedule otherwise")
    return {BASELINE: BASELINE, **found}


# --------------------------------------------------------------------------------------------- model and settings


def model_label(model: Any) -> str:
    """How configs and reports name a model factory: ``module:qualname``."""
    module = getattr(model, "__module__", None) or "?"
    name = getattr(model, "__qualname__", None) or getattr(model, "__name__", None) or type(model).__name__
    return f"{module}:{name}"


def _seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SteplrValueError(f"seeds must be a positive count or a list of seeds, got {seeds!r}")
        return list(range(seeds))
    if isinstance(seeds, (list, tuple, range)) and seeds:
        values = list(seeds)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values):
            raise SteplrValueError(f"seeds must be integers >= 0, got {values!r}")
        if len(set(values)) != len(values):
            raise SteplrValueError(f"seeds lists a seed twice: {values!r}")
        return values
    raise SteplrValueError(f"seeds must be a positive count or a non-empty list of seeds, got {seeds!r}")


def user_config(model: str, data: str, loss: str | Callable[..., Any], **settings: Any) -> TrainConfig:
    """The config of a user's runs: the settings given (TrainConfig's fields, checked there, each error naming
    its field), ``model`` and ``data`` as labels, ``loss`` a name or ``"custom"`` for a function."""
    if callable(loss):
        name = "custom"
    elif isinstance(loss, str) and loss in _NAMED_LOSSES:
        name = loss
    else:
        raise SteplrValueError(f"loss must be one of {', '.join(_NAMED_LOSSES)} or a callable, got {loss!r}")
    return TrainConfig(recipe=model, dataset=data, model=model, loss=name, **settings)


def check_task(task: Task, data: UserData, config: TrainConfig) -> None:
    """Build the model once (torch's random state left as it was) and train-step nothing: run two training
    examples through it and the loss, so that a model that does not fit the data fails here, by name.

    Raises:
        SteplrTypeError, SteplrValueError: ``model: ...`` naming what ``model()`` or its outputs got wrong.
    """
    from steplr.training.task import loss_function

    name = str(getattr(task.build, "__name__", task.name))
    with torch.random.fork_rng(devices=[]):
        try:
            built = task.build()
        except Exception as error:
            raise SteplrValueError(f"model: {name}() failed: {type(error).__name__}: {error}") from None
        module = check_model(built, name)
    loss = loss_function(config.loss, task)
    xb, yb = data.x_train[:2], data.y_train[:2]
    shape = tuple(xb.shape[1:])
    with torch.no_grad():
        try:
            outputs = module(xb)
        except Exception as error:
            raise SteplrValueError(
                f"model: {name}() fails on 2 training examples of shape {shape}: {type(error).__name__}: {error}"
            ) from None
        if not isinstance(outputs, torch.Tensor):
            raise SteplrTypeError(
                f"model: {name}() makes a model whose output is {type(outputs).__name__}, not a tensor"
            )
        if data.classify and (outputs.dim() != 2 or outputs.shape[1] < data.num_classes):
            raise SteplrValueError(
                f"model: {name}() gives outputs of shape {tuple(outputs.shape)} for 2 examples; the labels need "
                f"(2, C) with C >= {data.num_classes} classes"
            )
        try:
            value = loss(outputs, yb)
        except Exception as error:
            raise SteplrValueError(
                f"model: the loss {config.loss} fails on {name}()'s outputs of shape {tuple(outputs.shape)} and "
                f"targets of shape {tuple(yb.shape)}: {type(error).__name__}: {error}"
            ) from None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise SteplrTypeError(f"loss must return one number (a scalar tensor), got {value!r}")


def _check_out(out: Any) -> Path | None:
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise SteplrValueError(f"out must name a folder, got {out!r}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SteplrValueError(f"out {str(path)!r} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        raise SteplrValueError(f"out {str(path)!r} is not empty: give a new folder")
    return path


def _check_engine(engine: Any, device: Any, max_memory: Any) -> None:
    from steplr.training.engines import ENGINES

    if engine not in ENGINES:
        raise SteplrValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if device is not None:
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise SteplrValueError(f"device must name a torch device such as 'cpu', got {device!r} ({error})") from None
    if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory <= 0):
        raise SteplrValueError(f"max_memory must be a number of bytes > 0, got {max_memory!r}")


@dataclass(frozen=True)
class _Setup:
    """What both functions check before any training: the task, the data, the base config, the seeds."""

    task: Task
    data: UserData
    base: TrainConfig
    seeds: list[int]
    out: Path | None


def _setup(
    model: Any,
    data: Any,
    seeds: Any,
    loss: Any,
    engine: Any,
    device: Any,
    max_memory: Any,
    out: Any,
    settings: dict[str, Any],
    data_label: str,
) -> _Setup:
    if not callable(model) or isinstance(model, nn.Module):
        raise SteplrTypeError(
            f"model must be a callable returning a fresh nn.Module (a function or class, not a built model), "
            f"got {model!r}"
        )
    label = model_label(model)
    base = user_config(label, data_label, loss, **settings)
    task = Task(model, loss if callable(loss) else None, label)
    seeds = _seeds(seeds)
    _check_engine(engine, device, max_memory)
    checked = as_data(data, loss if isinstance(loss, str) else "custom")
    check_task(task, checked, base)
    return _Setup(task, checked, base, seeds, _check_out(out))


def _engine(configs: Sequence[TrainConfig], setup: _Setup, engine: str, device: Any) -> tuple[str, str]:
    from steplr.training.engines import choose_engine

    return choose_engine(configs, setup.data, task=setup.task, engine=engine, device=device)


def _budget(setup: _Setup, models: int, batches: int, max_memory: int | None) -> None:
    """Refuse work that cannot fit ``max_memory`` before training (one model's state when the engines split the
    models to fit, all of them trained together otherwise; every model's history either way)."""
    if max_memory is None:
        return
    from steplr.experiments.compare import takes_max_memory
    from steplr.training import budget

    with torch.random.fork_rng(devices=[]):
        parameters = sum(p.numel() for p in setup.task.build().parameters())
    config = setup.base
    work = budget.Work(
        models=models,
        iterations=config.epochs * batches,
        steps=config.epochs * config.steps_per_epoch(batches),
        together=1 if takes_max_memory() else models,
        parameters=int(parameters),
        data_bytes=int(setup.data.x_train.nelement()) * setup.data.x_train.element_size(),
    )
    budget.check(work, max_memory, "this comparison")


# --------------------------------------------------------------------------------------------- compare


@dataclass
class CompareResult:
    """What [`compare`][steplr.experiments.user.compare] found.

    Attributes:
        rows: one dict per schedule, the same fields as summary.json (means and sds over seeds, the paired
            difference against the constant LR with its CI, p, Holm-adjusted p, verdict); the constant LR
            (``"none"``) is the baseline.
        histories: the ``History`` of each run (per-epoch metrics, per-iteration LRs) by ``(schedule name, seed)``.
        notes: what to know before trusting the verdicts (a constant LR still improving at the end, a reactive
            schedule that never acted, diverged seeds).
        engine: what trained the runs: ``stack``, ``functional`` or ``sequential``.
        engine_reason: why that engine, in words.
        configs: each schedule's config (seed 0).
        comparison: the ``steplr.experiments.results.Comparison`` the report is written from.
        out: the folder written, or None.
    """

    rows: list[dict[str, Any]]
    histories: dict[tuple[str, int], History]
    notes: list[str]
    engine: str
    engine_reason: str
    configs: dict[str, TrainConfig]
    comparison: Comparison
    out: Path | None = None


@dataclass
class PreparedCompare:
    """A comparison checked and ready to train (``prepare_compare``): the CLI prints its plans' warnings and
    claims its folder between the two steps."""

    setup: _Setup
    configs: dict[str, TrainConfig]
    plans: dict[str, list[str]]
    warnings: list[str]
    engine: str
    engine_reason: str
    asked: str
    device: Any
    max_memory: int | None

    @property
    def models(self) -> int:
        return len(self.configs) * len(self.setup.seeds)


def prepare_compare(
    *,
    model: Callable[[], nn.Module],
    data: Any,
    schedules: Mapping[str, str | Schedule] | Sequence[str] | None = None,
    seeds: int | Sequence[int] = DEFAULT_SEEDS["compare"],
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    epochs: int = 10,
    interval: str = "epoch",
    validation: float = DEFAULT_VALIDATION,
    loss: str | LossFunction = "cross_entropy",
    engine: str = "auto",
    device: str | torch.device | None = None,
    max_memory: int | None = None,
    out: str | os.PathLike[str] | None = None,
    data_label: str = "data",
    schedule_settings: Mapping[str, Any] | None = None,
) -> PreparedCompare:
    """Every check of ``compare``, and its configs and plans, without training (arguments as there;
    ``data_label`` names the data in the configs; ``schedule_settings``, flat settings such as ``gamma`` or
    ``warmup``, win over the fair defaults of schedules given by name, as ``steplr compare``'s flags do)."""
    settings = {
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "epochs": epochs,
        "interval": interval,
        "validation": validation,
    }
    setup = _setup(model, data, seeds, loss, engine, device, max_memory, out, settings, data_label)
    named = _schedules(schedules)
    batches = batches_per_epoch(setup.data, setup.base)
    configs = {
        label: compare_config(setup.base, value, dict(schedule_settings or {}), batches)
        if isinstance(value, str)
        else dataclasses.replace(setup.base, schedule=value)
        for label, value in named.items()
    }
    plans = {label: _plan(label, config, batches) for label, config in configs.items()}
    _budget(setup, len(configs) * len(setup.seeds), batches, max_memory)
    runs = [dataclasses.replace(c, seed=s) for c in configs.values() for s in setup.seeds]
    chosen, reason = _engine(runs, setup, engine, device)
    return PreparedCompare(setup, configs, plans, _plan_warnings(plans), chosen, reason, engine, device, max_memory)


def run_compare(
    prepared: PreparedCompare,
    progress: Callable[[list[EpochRecord]], None] | None = None,
    out: Path | None = None,
) -> CompareResult:
    """Train a prepared comparison; with ``out`` (or the prepared one), write its folder there."""
    setup = prepared.setup
    comparison = train_comparison(
        setup.base.model,
        setup.base,
        prepared.configs,
        setup.data,
        setup.seeds,
        task=setup.task,
        engine=prepared.asked,
        device=prepared.device,
        max_memory=prepared.max_memory,
        on_epoch=progress,
    )
    notes = [*prepared.warnings, *comparison.notes()]
    summary = comparison.summary()
    folder = out if out is not None else setup.out
    if folder is not None:
        write_compare(folder, comparison, prepared.plans, notes)
    histories = {
        (label, seed): history
        for label, runs_of in comparison.runs.items()
        for seed, history in zip(setup.seeds, runs_of, strict=True)
    }
    return CompareResult(
        rows=[jsonable(as_row(row, comparison.columns)) for row in summary],
        histories=histories,
        notes=notes,
        engine=prepared.engine,
        engine_reason=prepared.engine_reason,
        configs=dict(prepared.configs),
        comparison=comparison,
        out=setup.out if out is None else out,
    )


def compare(
    *,
    model: Callable[[], nn.Module],
    data: Any,
    schedules: Mapping[str, str | Schedule] | Sequence[str] | None = None,
    seeds: int | Sequence[int] = DEFAULT_SEEDS["compare"],
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    epochs: int = 10,
    interval: str = "epoch",
    validation: float = DEFAULT_VALIDATION,
    loss: str | LossFunction = "cross_entropy",
    engine: str = "auto",
    device: str | torch.device | None = None,
    max_memory: int | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[list[EpochRecord]], None] | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
) -> CompareResult:
    """Train each schedule on the same seeds as a constant LR (added as ``"none"`` when absent) and pair the
    results: choose on the validation split, report on the test set.

    Every argument is keyword-only and checked, with two training examples sent through the model and the loss,
    before anything trains or is written.

    Args:
        model: called with no arguments, returns a fresh ``nn.Module``; steplr calls it under each run's seed.
        data: ``(x_train, y_train, x_test, y_test)`` tensors (integer labels: classes; float targets: a
            regression), or ``(train_dataset, test_dataset)`` of map-style datasets of ``(x, y)`` (stacked once).
        schedules: name -> a registry name (its fair default for the run, as ``steplr compare`` gives it) or a
            schedule object (``StepDecay("5ep", 0.1)``: taken as given; a bare integer counts scheduler steps); or
            a list of registry names. Default: compare's default list.
        seeds: a count ``n`` (seeds 0..n-1) or a list of seeds; every schedule trains on all of them.
        optimizer: ``sgd`` (with ``momentum``, ``nesterov``, ``weight_decay``), ``adam`` or ``adamw``.
        lr: the base learning rate of every schedule, > 0.
        momentum: SGD's momentum, in [0, 1).
        nesterov: SGD's Nesterov momentum (needs ``momentum`` > 0).
        weight_decay: SGD's, Adam's or AdamW's weight decay, >= 0.
        batch_size: training examples per batch, > 0.
        epochs: passes over the training set, > 0.
        interval: step the scheduler once an ``epoch`` or every ``iteration``.
        validation: share of the training set held out to choose on, in [0, 1).
        loss: ``cross_entropy``, ``mse``, or ``loss(outputs, targets) -> scalar tensor``.
        engine: ``auto`` (the fastest engine that can train the model), ``batched`` or ``sequential``.
        device: where to train (None: where the data is).
        max_memory: a budget in bytes, checked before training and handed to the engines (None: half the memory
            available).
        out: a new folder to write summary.json, summary.csv, config.json, the figures and report.html into (as
            ``steplr compare --out``); None writes nothing.
        progress: called with the records of the models that just finished an epoch.
        tensorboard: a folder to write every run into as a TensorBoard run, ``tensorboard/SCHEDULE/seed-N``
            (``steplr.experiments.tensorboard``; needs the extra ``tensorboard``; runs of other calls may share
            the folder, a run's own folder must be new).

    Returns:
        A [`CompareResult`][steplr.experiments.user.CompareResult]: one row per schedule, every run's history,
        the notes and the engine used.

    Raises:
        SteplrValueError, SteplrTypeError: for any bad argument, named, before anything trains or is written.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import steplr
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(240, 4, generator=g)
        >>> y = (x[:, 0] > 0).long()
        >>> result = steplr.compare(
        ...     model=lambda: nn.Linear(4, 2), data=(x[:200], y[:200], x[200:], y[200:]),
        ...     schedules={"step": steplr.StepDecay("1ep", 0.5)}, seeds=2, epochs=2, lr=0.1,
        ... )
        >>> [row["schedule"] for row in result.rows]
        ['none', 'step']
        >>> result.histories[("step", 1)].epochs[-1].lr  # the LR of the last epoch: 0.1 halved once
        0.05
    """
    prepared = prepare_compare(
        model=model,
        data=data,
        schedules=schedules,
        seeds=seeds,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        batch_size=batch_size,
        epochs=epochs,
        interval=interval,
        validation=validation,
        loss=loss,
        engine=engine,
        device=device,
        max_memory=max_memory,
        out=out,
    )
    keys = [(label, seed) for label in prepared.configs for seed in prepared.setup.seeds]
    board = _tensorboard(tensorboard, keys)
    result = run_compare(prepared, progress)
    _write_tensorboard(board, [(label, seed, h) for (label, seed), h in result.histories.items()])
    return result


def _plan(label: str, config: TrainConfig, batches: int) -> list[str]:
    """A schedule's plan (checks it against the run: a warm-up longer than the run is named here)."""
    try:
        return plan_lines(config, batches)
    except SteplrValueError as error:
        raise SteplrValueError(f"schedules[{label!r}]: {error}") from None


def _plan_warnings(plans: Mapping[str, list[str]]) -> list[str]:
    return [
        f"{label}: {line.removeprefix('warning: ')}"
        for label, lines in plans.items()
        for line in lines
        if line.startswith("warning: ")
    ]


def write_compare(out: Path, comparison: Comparison, plans: Mapping[str, list[str]], notes: Sequence[str]) -> None:
    """``steplr compare``'s folder: summary files, config.json, the figures and report.html."""
    from steplr.experiments.report import write_compare_outputs

    out.mkdir(parents=True, exist_ok=True)
    write_compare_outputs(out, comparison, compare_figures(out, comparison.runs, comparison.judged_on), plans, notes)


# --------------------------------------------------------------------------------------------- sweep


@dataclass
class SweepResult:
    """What [`sweep`][steplr.experiments.user.sweep] found.

    Attributes:
        rows: one dict per swept config (the summary.json fields), best on validation first.
        best: the first of them: the config chosen on validation, with its test result against the constant LR.
        best_config: that config (seed 0).
        runs: every run's final metrics (the rows of results.csv).
        notes: what to know before trusting the verdicts, as for
            [`CompareResult`][steplr.experiments.user.CompareResult].
        engine: what trained the runs.
        engine_reason: why that engine, in words.
        grid: the ``GridResult`` the report is written from.
        out: the folder written, or None.
        lines: what ``steplr sweep`` prints, when a folder was written.
        histories: ``(config label, seed, History)`` of every run, kept for TensorBoard only.
    """

    rows: list[dict[str, Any]]
    best: dict[str, Any]
    best_config: TrainConfig
    runs: list[dict[str, Any]]
    notes: list[str]
    engine: str
    engine_reason: str
    grid: GridResult
    out: Path | None = None
    lines: list[str] = field(default_factory=list)  # what steplr sweep prints, when a folder was written
    # (config label, seed, History) of every run, kept for TensorBoard only (tensorboard=, keep_histories=True)
    histories: list[tuple[str, int, History]] = field(default_factory=list)


@dataclass
class PreparedSweep:
    """A sweep checked and ready to train (``prepare_sweep``)."""

    setup: _Setup
    kind: str
    grid: dict[str, list[Any]]
    lrs: list[float]
    configs: list[TrainConfig]
    warnings: list[str]
    steps_per_epoch: int
    engine: str
    engine_reason: str
    asked: str
    device: Any
    max_memory: int | None

    @property
    def models(self) -> int:
        return len(self.configs)


def prepare_sweep(
    *,
    model: Callable[[], nn.Module],
    data: Any,
    schedule: str = "step",
    grid: Mapping[str, Sequence[Any]] | None = None,
    step_size: Sequence[Any] | None = None,
    gamma: Sequence[float] | None = None,
    lr: float | Sequence[float] = 0.01,
    seeds: int | Sequence[int] = DEFAULT_SEEDS["sweep"],
    optimizer: str = "sgd",
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    epochs: int = 10,
    interval: str = "epoch",
    validation: float = DEFAULT_VALIDATION,
    loss: str | LossFunction = "cross_entropy",
    engine: str = "auto",
    device: str | torch.device | None = None,
    max_memory: int | None = None,
    out: str | os.PathLike[str] | None = None,
    data_label: str = "data",
) -> PreparedSweep:
    """Every check of ``sweep``, and its configs and plans, without training (arguments as there)."""
    from steplr.experiments.grid import _grid_configs, check_grid, grid_plans
    from steplr.schedules.explain import format_plan

    lrs = [lr] if isinstance(lr, (int, float)) and not isinstance(lr, bool) else lr
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence) or not lrs:
        raise SteplrValueError(f"lr must be a number > 0 or a non-empty list of them, got {lr!r}")
    lrs = list(lrs)
    if len(set(lrs)) != len(lrs):
        raise SteplrValueError(f"lr lists a value twice: {lrs!r}")
    if validation == 0:
        raise SteplrValueError("validation 0 leaves nothing to choose the best config on: give a fraction such as 0.2")
    if not isinstance(schedule, str):
        raise SteplrTypeError(f"schedule must be the name of a closed-form kind, got {schedule!r}")
    kind = lookup(schedule, reactive=False).name
    given = dict(grid or {})
    for name, values in (("step_size", step_size), ("gamma", gamma)):
        if values is not None:
            if name in given:
                raise SteplrValueError(f"{name} is given twice: as an argument and in grid")
            given[name] = values
    if not given and kind == "step":
        given = {k: list(v) for k, v in STEP_GRID.items()}
    checked = check_grid(kind, given)
    settings = {
        "optimizer": optimizer,
        "lr": lrs[0],
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "epochs": epochs,
        "interval": interval,
        "validation": validation,
    }
    setup = _setup(model, data, seeds, loss, engine, device, max_memory, out, settings, data_label)
    for value in lrs[1:]:
        dataclasses.replace(setup.base, lr=value)  # names a bad lr
    batches = batches_per_epoch(setup.data, setup.base)
    spe = setup.base.steps_per_epoch(batches)
    plans = grid_plans(setup.base, kind, checked, lrs, spe)  # names a bad value before training
    warnings = [
        f"{label}: {line.removeprefix('warning: ')}"
        for label, plan in plans
        for line in format_plan("", plan)
        if line.startswith("warning: ")
    ]
    configs = _grid_configs(setup.base, kind, checked, lrs, setup.seeds)
    _budget(setup, len(configs), batches, max_memory)
    chosen, reason = _engine(configs, setup, engine, device)
    return PreparedSweep(setup, kind, checked, lrs, configs, warnings, spe, chosen, reason, engine, device, max_memory)


def run_sweep(
    prepared: PreparedSweep,
    progress: Callable[[int], None] | None = None,
    out: Path | None = None,
    shown: Path | None = None,
    keep_histories: bool = False,
) -> SweepResult:
    """Train a prepared sweep; with ``out`` (or the prepared one), write its folder there (``shown``: the folder
    the printed lines name, when ``out`` is a staging folder that will replace it)."""
    from steplr.experiments.grid import grid_sweep
    from steplr.experiments.tensorboard import grid_sweep_runs

    setup = prepared.setup
    arguments: dict[str, Any] = {
        "grid": prepared.grid,
        "seeds": setup.seeds,
        "lrs": prepared.lrs,
        "schedule": prepared.kind,
        "base": setup.base,
        "task": setup.task,
        "engine": prepared.asked,
        "device": prepared.device,
        "max_memory": prepared.max_memory,
        "on_progress": progress,
    }
    histories: list[tuple[str, int, History]] = []
    if keep_histories:  # the same sweep, keeping every run's history (keep_histories: for TensorBoard)
        result, histories = grid_sweep_runs(setup.base.model, setup.data, **arguments)
    else:
        result = grid_sweep(setup.base.model, setup.data, **arguments)
    summaries = result.summaries()
    folder = out if out is not None else setup.out
    lines: list[str] = []
    if folder is not None:
        from steplr.experiments.report import write_grid_outputs

        folder.mkdir(parents=True, exist_ok=True)
        lines = write_grid_outputs(folder, shown or folder, result, prepared.steps_per_epoch, prepared.warnings)
    rows = [jsonable(as_row(row, result.columns)) for row in summaries]
    swept = SweepResult(
        rows=rows,
        best=rows[0],
        best_config=result.config(summaries[0]),
        runs=list(result.rows),
        notes=[*prepared.warnings, *result.notes()],
        engine=prepared.engine,
        engine_reason=prepared.engine_reason,
        grid=result,
        out=setup.out if out is None else out,
        lines=lines,
        histories=histories,
    )
    return swept


def sweep(
    *,
    model: Callable[[], nn.Module],
    data: Any,
    schedule: str = "step",
    grid: Mapping[str, Sequence[Any]] | None = None,
    step_size: Sequence[Any] | None = None,
    gamma: Sequence[float] | None = None,
    lr: float | Sequence[float] = 0.01,
    seeds: int | Sequence[int] = DEFAULT_SEEDS["sweep"],
    optimizer: str = "sgd",
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    epochs: int = 10,
    interval: str = "epoch",
    validation: float = DEFAULT_VALIDATION,
    loss: str | LossFunction = "cross_entropy",
    engine: str = "auto",
    device: str | torch.device | None = None,
    max_memory: int | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
) -> SweepResult:
    """Train every combination of a closed-form schedule's parameters (StepLR's ``step_size`` x ``gamma`` by
    default) x base LRs ``lr`` x ``seeds``, each LR also with a constant LR on the same seeds; choose the best on
    validation and report its test result against the constant LR.

    Args:
        model: called with no arguments, returns a fresh ``nn.Module``, as for
            [`compare`][steplr.experiments.user.compare].
        data: the data, as for [`compare`][steplr.experiments.user.compare].
        schedule: the registry name of a closed-form kind whose parameters are swept (default ``"step"``).
        grid: parameters of ``schedule`` mapped to their values; every combination is trained.
        step_size: shorthand for ``grid["step_size"]``.
        gamma: shorthand for ``grid["gamma"]`` (``schedule="step"`` with neither sweeps ``STEP_GRID``).
        lr: one base LR or a list of them; each is swept with every config and has its own constant-LR baseline.
        seeds: a count ``n`` (seeds 0..n-1) or a list of seeds.
        optimizer: as for [`compare`][steplr.experiments.user.compare].
        momentum: as for [`compare`][steplr.experiments.user.compare].
        nesterov: as for [`compare`][steplr.experiments.user.compare].
        weight_decay: as for [`compare`][steplr.experiments.user.compare].
        batch_size: as for [`compare`][steplr.experiments.user.compare].
        epochs: as for [`compare`][steplr.experiments.user.compare].
        interval: as for [`compare`][steplr.experiments.user.compare].
        validation: as for [`compare`][steplr.experiments.user.compare].
        loss: as for [`compare`][steplr.experiments.user.compare].
        engine: as for [`compare`][steplr.experiments.user.compare].
        device: as for [`compare`][steplr.experiments.user.compare].
        max_memory: as for [`compare`][steplr.experiments.user.compare].
        out: a new folder to write results.csv, summary.json, the heatmap, the best configs' LR curves and
            report.html into (as ``steplr sweep --out``); None writes nothing.
        progress: called with the number of runs each trained chunk finished.
        tensorboard: as for [`compare`][steplr.experiments.user.compare], one run per config and seed.

    Returns:
        A [`SweepResult`][steplr.experiments.user.SweepResult]: every config's row, best on validation first.

    Raises:
        SteplrValueError, SteplrTypeError: for any bad argument, named, before anything trains or is written.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import steplr
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(240, 4, generator=g)
        >>> y = (x[:, 0] > 0).long()
        >>> result = steplr.sweep(
        ...     model=lambda: nn.Linear(4, 2), data=(x[:200], y[:200], x[200:], y[200:]),
        ...     step_size=["1ep", "2ep"], gamma=[0.1, 0.5], lr=0.1, seeds=2, epochs=2,
        ... )
        >>> len(result.rows)  # 2 step sizes x 2 gammas at one base LR
        4
        >>> result.best == result.rows[0]
        True
    """
    prepared = prepare_sweep(
        model=model,
        data=data,
        schedule=schedule,
        grid=grid,
        step_size=step_size,
        gamma=gamma,
        lr=lr,
        seeds=seeds,
        optimizer=optimizer,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        batch_size=batch_size,
        epochs=epochs,
        interval=interval,
        validation=validation,
        loss=loss,
        engine=engine,
        device=device,
        max_memory=max_memory,
        out=out,
    )
    from steplr.experiments.tensorboard import sweep_run_keys

    board = _tensorboard(tensorboard, sweep_run_keys(prepared.kind, list(prepared.grid), prepared.configs))
    result = run_sweep(prepared, progress, keep_histories=board is not None)
    _write_tensorboard(board, result.histories)
    return result


def _tensorboard(folder: Any, runs: list[tuple[str, int]]) -> Path | None:
    """``tensorboard=`` checked before anything trains: a folder, the extra installed, each run's folder free."""
    if folder is None:
        return None
    from steplr._extras import missing_extra
    from steplr.experiments import tensorboard as board

    path = board.check_folder(folder, "tensorboard")
    try:
        board.require()
    except ModuleNotFoundError as error:
        missing = missing_extra(error)
        if missing is None:
            raise
        raise missing from None
    board.check_free(path, runs, name="tensorboard", hint=": give another folder")
    return path


def _write_tensorboard(folder: Path | None, runs: list[tuple[str, int, History]]) -> None:
    if folder is not None:
        from steplr.experiments.tensorboard import write_runs

        write_runs(folder, runs)
