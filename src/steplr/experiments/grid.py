"""Grid sweeps over a closed-form schedule's parameters (x base LR) x seeds, trained in batches, against a
constant-LR baseline.

Which parameters a grid may sweep, and how they are checked, comes from the schedule registry
(:mod:`steplr.schedules.registry`): any parameter of any closed-form kind. The default grid is StepLR's
step_size x gamma.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.experiments.compare import DEFAULT_VALIDATION, recipe_config, train_runs
from steplr.experiments.results import BASELINE, GridResult, SeedRun, grid_config, point_label
from steplr.schedules.explain import Plan, explain
from steplr.schedules.registry import KINDS, Param, lookup
from steplr.training.config import History, TrainConfig
from steplr.training.data import TrainData

if TYPE_CHECKING:
    from steplr.training.task import Task

__all__ = [
    "GridResult",
    "grid_sweep",
    "grid_params",
    "check_grid",
    "grid_from_flags",
    "grid_points",
    "grid_plans",
    "point_label",
    "MAX_BATCH",
    "DEFAULT_KIND",
]

MAX_BATCH = 256  # models trained together; bounds memory (benchmarks/RESULTS.md: 256 qwerty models ~ MBs)
DEFAULT_KIND = "step"


def grid_params(kind: str) -> tuple[Param, ...]:
    """The parameters a grid of ``kind`` may sweep (all of its parameters, in the registry's order).

    Raises:
        SteplrValueError: for an unknown kind, a kind that reacts to the loss (no closed form to plan, draw or
            explain per config), or one without parameters.
    """
    entry = lookup(kind, reactive=False)
    if not entry.params:
        swept = ", ".join(k.name for k in KINDS if k.params and not k.reactive)
        raise SteplrValueError(f"schedule {kind!r} has no parameter to sweep; expected one of {swept}")
    return entry.params


def _plural(name: str) -> str:
    return name.replace("_", " ") + "s"


def _check_list(values: Any, name: str, flag: str = "") -> list[Any]:
    """``values`` as a list, refused when empty or repeating a value; errors say ``name`` (or ``flag``)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise SteplrTypeError(f"{flag or name} must be a list of values, got {values!r}")
    if not values:
        raise SteplrValueError(f"{flag or name} must list at least one value")
    if len(set(map(str, values))) != len(values):
        shown = ",".join(map(str, values)) if flag else list(values)
        raise SteplrValueError(f"{flag or name} lists a value twice: {shown}")
    return list(values)


def check_grid(kind: str, grid: Mapping[str, Sequence[Any]], *, flags: bool = False) -> dict[str, list[Any]]:
    """The grid of ``kind``: each swept parameter (registry order) with its values, a list of one value or more.

    Values themselves are checked when the configs are made (:func:`grid_sweep`), each error naming the value.
    ``flags``: errors name the CLI's flags (``--gamma lists a value twice: 0.5,0.5``).

    Raises:
        SteplrValueError: for a kind :func:`grid_params` refuses, a parameter the kind does not read, no parameter,
            or an empty or repeated list (named).
    """
    params = grid_params(kind)
    if not isinstance(grid, Mapping):
        raise SteplrTypeError(f"the grid must map parameter names to lists of values, got {grid!r}")
    names = [p.flag if flags else p.name for p in params]
    for name in grid:
        if lookup(kind).param(name) is None:
            raise SteplrValueError(
                f"schedule {kind!r} has no parameter {name!r} to sweep (it reads {', '.join(names)})"
            )
    if not grid:
        what = f"give one or more of {', '.join(names)}" if flags else f"it reads {', '.join(names)}"
        raise SteplrValueError(f"the grid of schedule {kind!r} names no parameter to sweep ({what})")
    return {
        p.name: _check_list(grid[p.name], _plural(p.name), p.flag if flags else "") for p in params if p.name in grid
    }


def grid_from_flags(kind: str, given: Mapping[str, Sequence[Any] | None]) -> dict[str, list[Any]]:
    """The grid of ``kind`` from the command line: ``given`` maps each parameter name to the list its flag read
    (None: not given). A parameter that is itself a list of times (multistep's milestones) is one value; every
    other flag's list is the values to sweep. Errors name the flags.

    Raises:
        SteplrValueError: as :func:`check_grid` (with flags), or for a flag of a parameter ``kind`` does not read.
    """
    entry = lookup(kind, reactive=False)
    grid: dict[str, list[Any]] = {}
    for name, values in given.items():
        if values is None:
            continue
        param = entry.param(name)
        if param is None:
            flag = "--" + name.replace("_", "-")
            raise SteplrValueError(
                f"{flag} does not apply to schedule {kind!r} (it reads "
                f"{', '.join(p.flag for p in entry.params) or 'none'})"
            )
        grid[name] = [tuple(values)] if param.type == "durations" else list(values)
    return check_grid(kind, grid, flags=True)


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as parameter dicts (the last parameter varying fastest)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _grid_configs(
    base: TrainConfig, kind: str, grid: Mapping[str, Sequence[Any]], lrs: Sequence[float], seeds: Sequence[int]
) -> list[TrainConfig]:
    """Every (point, lr, seed) of the grid, then the constant LR per (lr, seed); each checked when made."""
    configs = [
        grid_config(base, kind, point, lr=lr, seed=seed)
        for point, lr, seed in itertools.product(grid_points(grid), lrs, seeds)
    ]
    return configs + [
        base.with_settings(schedule=BASELINE, lr=lr, seed=seed) for lr, seed in itertools.product(lrs, seeds)
    ]


def grid_plans(
    base: TrainConfig,
    kind: str,
    grid: Mapping[str, Sequence[Any]],
    lrs: Sequence[float],
    steps_per_epoch: int,
) -> list[tuple[str, Plan]]:
    """Every (point, lr) of the grid in words (:func:`point_label`) with its plan over ``base``'s run, in the order
    the sweep trains them: what a command shows warnings of before training. Names a bad value as
    :func:`grid_sweep` does."""
    plans = []
    for point, lr in itertools.product(grid_points(check_grid(kind, grid)), lrs):
        config = grid_config(base, kind, point, lr=lr)
        schedule = config.schedule.build(config.epochs, steps_per_epoch)
        plans.append((point_label(kind, point, lr), explain(schedule, lr, config.epochs, steps_per_epoch)))
    return plans


def _record(result: GridResult, config: TrainConfig, history: History) -> None:
    """Add one finished run to ``result``: its row (results.csv), final metrics and, for a constant LR, its
    validation losses."""
    last = history.epochs[-1]
    params = config.schedule.params if config.schedule.kind == result.schedule else {}
    result.rows.append(
        {
            "schedule": config.schedule.kind,
            **{name: params.get(name, "") for name in result.grid},
            "lr": config.lr,
            "seed": config.seed,
            "val_acc": last.val_acc,
            "val_loss": last.val_loss,
            "test_acc": last.test_acc,
            "test_loss": last.test_loss,
            "train_loss": last.train_loss,
            "train_acc": last.train_acc,
        }
    )
    result.finals.append(SeedRun.of(history))
    if config.schedule.kind == BASELINE:
        result.baseline_val_losses.setdefault(config.lr, []).append(history.column("val_loss"))


def grid_sweep(
    recipe: str,
    data: TrainData,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] | None = None,
    lrs: Sequence[float] | None = None,
    overrides: Mapping[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
    max_batch: int = MAX_BATCH,
    schedule: str = DEFAULT_KIND,
    base: TrainConfig | None = None,
    task: Task | None = None,
    engine: str = "auto",
    device: Any = None,
    max_memory: int | None = None,
    on_run: Callable[[TrainConfig, History], None] | None = None,
) -> GridResult:
    """Train every point of ``grid`` (a parameter of ``schedule`` -> its values) at every base LR of ``lrs``
    (default: the recipe's) on every seed, plus a constant LR per (lr, seed), holding out
    :data:`~steplr.experiments.DEFAULT_VALIDATION` of the training set unless ``overrides`` set ``validation``.
    Parameters the grid leaves out keep the recipe's (when it runs ``schedule``) or the kind's defaults.

    ``base``: the settings to start from in place of the recipe's (a user's model: ``recipe`` is then only its
    label, and ``task`` the model). Chunks of ``max_batch`` models are trained by
    :func:`steplr.training.engines.train_many` (``engine``, ``device``, ``max_memory`` as it takes them);
    ``on_progress`` is called with the size of each chunk once trained; ``on_run`` with every run's config and
    History once all are trained, in the order of the result's rows (the result keeps only final metrics).

    >>> grid_sweep("qwerty", data, grid={"power": [1.0, 2.0]}, seeds=[0, 1], schedule="polynomial")  # doctest: +SKIP

    Raises:
        SteplrValueError: for a kind :func:`grid_params` refuses, a parameter it does not read, an empty or
            repeated list, or a bad value (named) -- all before any training.
    """
    kind = lookup(schedule).name
    grid = check_grid(kind, {} if grid is None else grid)
    overrides = {"validation": DEFAULT_VALIDATION, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    base = recipe_config(recipe, **overrides) if base is None else base.with_settings(**overrides)
    lrs = _check_list(lrs, "learning rates") if lrs else [base.lr]
    seeds = _check_list([] if seeds is None else seeds, "seeds")
    configs = _grid_configs(base, kind, grid, lrs, seeds)
    result = GridResult(recipe, base, kind, grid, lrs, seeds, [])
    histories = train_runs(
        configs,
        data,
        task=task,
        engine=engine,
        device=device,
        max_memory=max_memory,
        max_batch=max_batch,
        on_chunk=on_progress,
    )
    for config, history in zip(configs, histories, strict=True):
        _record(result, config, history)
        if on_run is not None:
            on_run(config, history)
    return result
