"""Grid sweeps over step_size x gamma (x base LR) x seeds, trained in batches, against a constant-LR baseline."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .experiments import recipe_config
from .train import TrainConfig, TrainData

__all__ = ["GridResult", "ConfigSummary", "grid_sweep", "MAX_BATCH"]

MAX_BATCH = 256  # models trained together; bounds memory (benchmarks/RESULTS.md: 256 qwerty models ~ MBs)


@dataclass(frozen=True)
class ConfigSummary:
    step_size: Any
    gamma: float
    lr: float
    test_acc_mean: float
    test_acc_sd: float
    test_loss_mean: float
    baseline_acc: float  # mean final test accuracy of a constant LR at this base LR, same seeds
    diverged: int  # seeds whose loss became NaN or infinite

    @property
    def margin(self) -> float:
        return self.test_acc_mean - self.baseline_acc


@dataclass
class GridResult:
    recipe: str
    base: TrainConfig
    step_sizes: list[Any]
    gammas: list[float]
    lrs: list[float]
    seeds: list[int]
    rows: list[dict[str, Any]]  # one per (config, seed), baselines included (schedule "none")

    def summaries(self) -> list[ConfigSummary]:
        """Per (step_size, gamma, lr), over seeds; best first (diverged seeds count as accuracy 0)."""
        baseline: dict[float, list[float]] = {}
        for row in self.rows:
            if row["schedule"] == "none":
                baseline.setdefault(row["lr"], []).append(_acc(row))
        groups: dict[tuple[Any, float, float], list[dict[str, Any]]] = {}
        for row in self.rows:
            if row["schedule"] == "step":
                groups.setdefault((row["step_size"], row["gamma"], row["lr"]), []).append(row)
        found = []
        for (step_size, gamma, lr), rows in groups.items():
            acc = [_acc(r) for r in rows]
            losses = [r["test_loss"] for r in rows if math.isfinite(r["test_loss"])]
            found.append(ConfigSummary(
                step_size, gamma, lr, statistics.fmean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0,
                statistics.fmean(losses) if losses else math.nan, statistics.fmean(baseline[lr]),
                sum(not math.isfinite(r["test_loss"]) for r in rows),
            ))
        return sorted(found, key=lambda s: s.test_acc_mean, reverse=True)


def _acc(row: dict[str, Any]) -> float:
    return float(row["test_acc"]) if math.isfinite(row["test_loss"]) else 0.0


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
    """Train every (step_size, gamma, lr) on every seed with StepLR, plus a constant LR per (lr, seed).

    Raises:
        ValueError: for an empty or repeated grid value, or a bad step size / gamma (named).
    """
    base = recipe_config(recipe, **(overrides or {}))
    lrs = list(lrs) if lrs else [base.lr]
    for values, name in ((step_sizes, "step sizes"), (gammas, "gammas"), (lrs, "learning rates"), (seeds, "seeds")):
        _check_list(values, name)
    configs = [
        dataclasses.replace(base, schedule="step", step_size=s, gamma=g, lr=lr, seed=seed)
        for s, g, lr, seed in itertools.product(step_sizes, gammas, lrs, seeds)
    ] + [dataclasses.replace(base, schedule="none", lr=lr, seed=seed) for lr, seed in itertools.product(lrs, seeds)]
    from .schedules import StepDecay

    for step_size, gamma in itertools.product(step_sizes, gammas):
        StepDecay(step_size, gamma)  # validate before any training, naming the bad value
    from .sweep import train_batched

    rows: list[dict[str, Any]] = []
    for start in range(0, len(configs), max_batch):
        chunk = configs[start : start + max_batch]
        histories = train_batched(chunk, data)
        for config, history in zip(chunk, histories):
            last = history.epochs[-1]
            rows.append({
                "schedule": config.schedule,
                "step_size": config.step_size if config.schedule == "step" else "",
                "gamma": config.gamma if config.schedule == "step" else "",
                "lr": config.lr,
                "seed": config.seed,
                "test_acc": last.test_acc,
                "test_loss": last.test_loss,
                "train_loss": last.train_loss,
                "train_acc": last.train_acc,
            })
        if on_progress is not None:
            on_progress(len(chunk))
    return GridResult(recipe, base, list(step_sizes), list(gammas), lrs, list(seeds), rows)
