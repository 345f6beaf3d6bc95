"""The recipes of the reference notes, and comparisons of schedules on them (paired over seeds).

Knows nothing about argument parsing: the CLI turns flags into ``overrides``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from steplr.errors import SteplrValueError
from steplr.experiments.results import BASELINE, Comparison
from steplr.schedules.registry import RunShape, compared, lookup
from steplr.schedules.spec import SETTINGS, ScheduleSpec
from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.data import TrainData

if TYPE_CHECKING:
    from steplr.training.task import Task

__all__ = [
    "RECIPES",
    "recipe_config",
    "schedule_config",
    "compare",
    "compare_config",
    "train_comparison",
    "train_runs",
    "batches_per_epoch",
    "takes_max_memory",
    "plan_lines",
    "compare_figures",
    "Comparison",
    "BASELINE",
    "DEFAULT_VALIDATION",
]

DEFAULT_VALIDATION = 1 / 6  # compare and sweep hold out this share of the training set to choose on

RECIPES: dict[str, dict[str, Any]] = {
    # 2-8-3 MLP, SGD 0.01, batch 32, 20 epochs, StepLR per iteration every 5 epochs of batches, gamma 0.5.
    "qwerty": {
        "dataset": "qwerty",
        "model": "qwerty",
        "optimizer": "sgd",
        "lr": 0.01,
        "batch_size": 32,
        "epochs": 20,
        "schedule": ScheduleSpec("step", {"step_size": "5ep", "gamma": 0.5}),
        "interval": "iteration",
    },
    # The notes' MNIST protocol: linear model, Adam 1e-3, batch 64, 5 epochs, StepLR(2, 0.1) per epoch.
    "mnist": {
        "dataset": "mnist",
        "model": "linear",
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 64,
        "epochs": 5,
        "schedule": ScheduleSpec("step", {"step_size": "2ep", "gamma": 0.1}),
        "interval": "epoch",
    },
    "fashion-mnist": {
        "dataset": "fashion-mnist",
        "model": "linear",
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 64,
        "epochs": 5,
        "schedule": ScheduleSpec("step", {"step_size": "2ep", "gamma": 0.1}),
        "interval": "epoch",
    },
    # Where decay is expected to pay: a small CNN (two conv/BatchNorm blocks) on real Fashion-MNIST, SGD with
    # momentum 0.9 and weight decay at a large LR, decayed x0.1 every 5 of 15 epochs (the classic setting of step
    # decay). Trained on a fixed stratified 12,000 of the 60,000 training images (fashion-mnist-12k), so that
    # `compare fashion-cnn --seeds 3` of none, step and cosine fits in minutes on two cores; tested on all 10,000.
    "fashion-cnn": {
        "dataset": "fashion-mnist-12k",
        "model": "cnn",
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "epochs": 15,
        "schedule": ScheduleSpec("step", {"step_size": "5ep", "gamma": 0.1}),
        "interval": "epoch",
    },
    "digits": {
        "dataset": "digits",
        "model": "linear",
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 64,
        "epochs": 5,
        "schedule": ScheduleSpec("step", {"step_size": "2ep", "gamma": 0.1}),
        "interval": "epoch",
    },
}


def recipe_config(recipe: str, **overrides: Any) -> TrainConfig:
    """The recipe's settings with ``overrides`` applied by their flat names (None values are ignored): fields such
    as ``lr``, and schedule settings (``schedule``, each kind's parameters, ``warmup``; see
    :meth:`TrainConfig.with_settings`).

    Raises:
        SteplrValueError: for an unknown recipe or setting, or a setting the schedule does not read.
    """
    if recipe not in RECIPES:
        raise SteplrValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    return TrainConfig(recipe=recipe, **RECIPES[recipe]).with_settings(**overrides)


def schedule_config(
    base: TrainConfig, schedule: str, given: Mapping[str, Any] | Collection[str] = (), batches: int | None = None
) -> TrainConfig:
    """``base`` switched to ``schedule`` with defaults that make each schedule a fair contender.

    Parameters the new kind shares with ``base``'s schedule (the recipe's gamma) carry over; then the kind's fair
    default from the registry applies (``multistep`` decays by gamma at 50% and 75% of the run, ``exponential``
    100x over the run's scheduler steps, ``cosine`` anneals over the whole run after any warm-up, ``plateau``
    halves the LR after 2 epochs without a better validation loss); then the user's settings in ``given`` win: a
    mapping of values, or the names of ``base``'s schedule settings the user set. A reactive kind takes no warm-up.
    ``batches``: batches per epoch, to count the scheduler steps of a per-iteration run (None: one step an epoch).
    """
    if schedule not in compared():
        raise SteplrValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(compared())}")
    entry = lookup(schedule)
    spe = 1 if batches is None else base.steps_per_epoch(batches)
    values = dict(given) if isinstance(given, Mapping) else {}
    old = base.schedule.settings()
    settings = {**old, **entry.fair(RunShape(base.epochs, base.epochs * spe))}
    settings.update({k: old[k] for k in given if k in old and k not in values})  # named only: base's value
    settings.update({k: v for k, v in values.items() if v is not None})
    if entry.reactive:  # no warm-up: dropped here, since a spec checks itself on creation
        settings["warmup"] = None
    return dataclasses.replace(base, schedule=ScheduleSpec.from_settings(schedule, settings))


def compare(
    recipe: str,
    data: TrainData,
    schedules: Sequence[str],
    seeds: Sequence[int],
    overrides: dict[str, Any] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    max_batch: int | None = None,
    *,
    engine: str = "auto",
    device: Any = None,
    max_memory: int | None = None,
) -> Comparison:
    """Train every schedule on every seed (the same seeds, so the same initial weights and batch orders: the
    differences are paired), in chunks of up to ``max_batch`` models, each trained by
    :func:`steplr.training.engines.train_many` (``engine``, ``device``, ``max_memory`` as it takes them).

    The constant LR (``none``) is always trained: every verdict is against it. ``overrides`` are the user's
    settings; they win over each schedule's fair default (:func:`schedule_config`). Unless ``overrides`` set
    ``validation``, :data:`DEFAULT_VALIDATION` of the training set is held out. ``on_epoch`` is called with the
    epoch number of each epoch a chunk of models finishes.
    """
    overrides = {"validation": DEFAULT_VALIDATION, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    schedule_settings = {k: v for k, v in overrides.items() if k in SETTINGS}
    base = recipe_config(recipe, **{k: v for k, v in overrides.items() if k not in SETTINGS})
    if not schedules:
        raise SteplrValueError("schedules must name at least one schedule")
    if not seeds:
        raise SteplrValueError("seeds must name at least one seed")
    names = [BASELINE, *[s for s in schedules if s != BASELINE]]
    batches = batches_per_epoch(data, base)
    configs = {name: compare_config(base, name, schedule_settings, batches) for name in names}
    return train_comparison(
        recipe,
        base,
        configs,
        data,
        seeds,
        engine=engine,
        device=device,
        max_memory=max_memory,
        max_batch=max_batch,
        on_epoch=None if on_epoch is None else lambda records: on_epoch(records[0].epoch),
    )


def batches_per_epoch(data: TrainData, config: TrainConfig) -> int:
    """Batches per epoch of ``config`` on ``data``, once its validation split is held out."""
    from steplr.training.data import split_validation

    return math.ceil(split_validation(data, config.validation).x_train.shape[0] / config.batch_size)


def train_comparison(
    label: str,
    base: TrainConfig,
    configs: Mapping[str, TrainConfig],
    data: TrainData,
    seeds: Sequence[int],
    *,
    task: Task | None = None,
    engine: str = "auto",
    device: Any = None,
    max_memory: int | None = None,
    max_batch: int | None = None,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
) -> Comparison:
    """Train each named config (the baseline ``none`` first) on every seed and pair the results: what
    :func:`compare` does for a recipe, and :func:`steplr.compare` for a user's model (``task``). ``label`` names
    the comparison in the report (the recipe, or the model)."""
    if BASELINE not in configs:
        raise SteplrValueError(f"a comparison needs the constant LR ({BASELINE!r}) to compare against")
    result = Comparison(label, base, list(seeds))
    runs: list[TrainConfig] = []
    for name, config in configs.items():
        result.configs[name] = config
        runs += [dataclasses.replace(config, seed=seed) for seed in seeds]
    histories = train_runs(
        runs,
        data,
        task=task,
        engine=engine,
        device=device,
        max_memory=max_memory,
        max_batch=max_batch,
        on_epoch=on_epoch,
    )
    for index, name in enumerate(configs):
        result.runs[name] = histories[index * len(seeds) : (index + 1) * len(seeds)]
    return result


def takes_max_memory() -> bool:
    """Whether :func:`steplr.training.engines.train_many` splits its models to fit a memory budget."""
    from steplr.training.engines import train_many

    return "max_memory" in inspect.signature(train_many).parameters


def train_runs(
    configs: Sequence[TrainConfig],
    data: TrainData,
    *,
    task: Task | None = None,
    engine: str = "auto",
    device: Any = None,
    max_memory: int | None = None,
    max_batch: int | None = None,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> list[History]:
    """Every config trained by :func:`~steplr.training.engines.train_many`, in chunks of up to ``max_batch``
    (None: all at once); one History per config, in order. ``max_memory`` (bytes) is handed on where
    ``train_many`` takes a memory budget; ``on_chunk`` is called with the size of each chunk once trained."""
    from steplr.training.engines import train_many

    budget: dict[str, Any] = {"max_memory": max_memory} if max_memory is not None and takes_max_memory() else {}
    size = max_batch or len(configs)
    histories: list[History] = []
    for start in range(0, len(configs), size):
        chunk = configs[start : start + size]
        histories += train_many(chunk, data, task=task, engine=engine, device=device, on_epoch=on_epoch, **budget)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return histories


def compare_config(
    base: TrainConfig, name: str, given: Mapping[str, Any] | Collection[str], batches: int
) -> TrainConfig:
    """The config ``compare`` trains for schedule ``name`` (fair defaults, the user's settings winning)."""
    return schedule_config(base, name, given, batches)


def plan_lines(config: TrainConfig, batches: int) -> list[str]:
    """The explain plan of a run config (validates its schedule); a reactive schedule's rule in words."""
    from steplr.schedules.explain import explain, format_plan

    described = config.schedule.describe()
    if config.schedule.reactive:
        factor, patience = config.plateau()
        watched = "validation" if config.validation else "training"
        return [f"{described}, lr {config.lr:g}: x{factor:g} after {patience} epochs without a better {watched} loss"]
    plan = explain(config.build_schedule(batches), config.lr, config.epochs, config.steps_per_epoch(batches))
    return format_plan(f"{described}, lr {config.lr:g}, per {config.interval}", plan)


def compare_figures(out: Any, runs: Mapping[str, list[History]], metric: str = "accuracy") -> dict[str, Any]:
    """The figures of a comparison (or a run) in folder ``out``: LR per iteration, loss and (unless judged on
    ``metric="loss"``, a regression) accuracy per epoch."""
    from steplr.experiments.plots import run_figures

    return dict(run_figures(out, dict(runs), metric))
