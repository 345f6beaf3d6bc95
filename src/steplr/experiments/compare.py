"""The recipes of the reference notes, and comparisons of schedules on them (paired over seeds).

Knows nothing about argument parsing: the CLI turns flags into ``overrides``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from steplr.errors import SteplrValueError
from steplr.experiments.results import BASELINE, Comparison
from steplr.schedules.registry import RunShape, compared, lookup
from steplr.schedules.spec import SETTINGS, ScheduleSpec
from steplr.training.config import History, TrainConfig
from steplr.training.train import TrainData

__all__ = [
    "RECIPES",
    "recipe_config",
    "schedule_config",
    "compare",
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
) -> Comparison:
    """Train every schedule on every seed (the same seeds, so the same initial weights and batch orders: the
    differences are paired), in batches of up to ``max_batch`` models (see :mod:`steplr.training.batched`).

    The constant LR (``none``) is always trained: every verdict is against it. ``overrides`` are the user's
    settings; they win over each schedule's fair default (:func:`schedule_config`). Unless ``overrides`` set
    ``validation``, :data:`DEFAULT_VALIDATION` of the training set is held out.
    """
    from steplr.training.batched import train_batched

    overrides = {"validation": DEFAULT_VALIDATION, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    schedule_settings = {k: v for k, v in overrides.items() if k in SETTINGS}
    base = recipe_config(recipe, **{k: v for k, v in overrides.items() if k not in SETTINGS})
    if not schedules:
        raise SteplrValueError("schedules must name at least one schedule")
    if not seeds:
        raise SteplrValueError("seeds must name at least one seed")
    names = [BASELINE, *[s for s in schedules if s != BASELINE]]
    result = Comparison(recipe, base, list(seeds))
    from steplr.training.data import split_validation

    batches = math.ceil(split_validation(data, base.validation).x_train.shape[0] / base.batch_size)
    configs = []
    for name in names:
        result.configs[name] = config = compare_config(base, name, schedule_settings, batches)
        configs += [dataclasses.replace(config, seed=seed) for seed in seeds]
    size = max_batch or len(configs)
    histories: list[History] = []
    for start in range(0, len(configs), size):
        histories += train_batched(
            configs[start : start + size],
            data,
            on_epoch=None if on_epoch is None else lambda records: on_epoch(records[0].epoch),
        )
    for index, name in enumerate(names):
        result.runs[name] = histories[index * len(seeds) : (index + 1) * len(seeds)]
    return result


def compare_config(
    base: TrainConfig, name: str, given: Mapping[str, Any] | Collection[str], batches: int
) -> TrainConfig:
    """The config ``compare`` trains for schedule ``name`` (fair defaults, the user's settings winning)."""
    return schedule_config(base, name, given, batches)
