"""Grid sweeps over step_size x gamma (x base LR) x seeds, trained in batches, against a constant-LR baseline."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from steplr.experiments.compare import DEFAULT_VALIDATION, recipe_config
from steplr.experiments.results import GridResult, SeedRun
from steplr.training.train import TrainData

__all__ = ["GridResult", "grid_sweep", "MAX_BATCH"]

MAX_BATCH = 256  # models trained together; bounds memory (benchmarks/RESULTS.md: 256 qwerty models ~ MBs)


def _check_list(values: Sequence[Any], name: str) -> None:
    if not values:
        raise ValueError(f"{name} must list at least one value")
    if len(set(map(str, values))) != len(values):
        raise ValueError(f"{name} lists a value twice: {list(values)}")


def grid_sweep(
    recipe: str,
    data: TrainData,
    step_sizes: Sequence[Any],
    gammas: Sequence[float],
    seeds: Sequence[int],
    lrs: Sequence[float] | None = None,
    overrides: dict[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
    max_batch: int = MAX_BATCH,
) -> GridResult:
    """Train every (step_size, gamma, lr) on every seed with StepLR, plus a constant LR per (lr, seed), holding out
    :data:`~steplr.experiments.DEFAULT_VALIDATION` of the training set unless ``overrides`` set ``validation``.

    Raises:
        ValueError: for an empty or repeated grid value, or a bad step size / gamma (named).
    """
    overrides = {"validation": DEFAULT_VALIDATION, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    base = recipe_config(recipe, **overrides)
    lrs = list(lrs) if lrs else [base.lr]
    for values, name in ((step_sizes, "step sizes"), (gammas, "gammas"), (lrs, "learning rates"), (seeds, "seeds")):
        _check_list(values, name)
    configs = [
        base.with_settings(schedule="step", step_size=s, gamma=g, lr=lr, seed=seed)  # checked here, naming a bad value
        for s, g, lr, seed in itertools.product(step_sizes, gammas, lrs, seeds)
    ] + [base.with_settings(schedule="none", lr=lr, seed=seed) for lr, seed in itertools.product(lrs, seeds)]
    from steplr.training.batched import train_batched

    rows: list[dict[str, Any]] = []
    finals: list[SeedRun] = []
    baseline_val_losses: dict[float, list[list[float]]] = {}
    for start in range(0, len(configs), max_batch):
        chunk = configs[start : start + max_batch]
        histories = train_batched(chunk, data)
        for config, history in zip(chunk, histories):
            last = history.epochs[-1]
            rows.append({
                "schedule": config.schedule.kind,
                "step_size": config.schedule.params.get("step_size", ""),
                "gamma": config.schedule.params["gamma"] if config.schedule.kind == "step" else "",
                "lr": config.lr,
                "seed": config.seed,
                "val_acc": last.val_acc,
                "val_loss": last.val_loss,
                "test_acc": last.test_acc,
                "test_loss": last.test_loss,
                "train_loss": last.train_loss,
                "train_acc": last.train_acc,
            })
            finals.append(SeedRun.of(history))
            if config.schedule.kind == "none":
                baseline_val_losses.setdefault(config.lr, []).append(history.column("val_loss"))
        if on_progress is not None:
            on_progress(len(chunk))
    return GridResult(recipe, base, list(step_sizes), list(gammas), lrs, list(seeds), rows, baseline_val_losses,
                      finals)
