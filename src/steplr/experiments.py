"""The recipes of the reference notes, and comparisons of schedules on them (paired over seeds).

Knows nothing about argument parsing: the CLI turns flags into ``overrides``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .train import History, TrainConfig, TrainData

__all__ = [
    "RECIPES",
    "COMPARE_SCHEDULES",
    "recipe_config",
    "schedule_config",
    "compare",
    "Comparison",
    "SummaryRow",
]

RECIPES: dict[str, dict[str, Any]] = {
    # 2-8-3 MLP, SGD 0.01, batch 32, 20 epochs, StepLR per iteration every 5 epochs of batches, gamma 0.5.
    "qwerty": dict(dataset="qwerty", model="qwerty", optimizer="sgd", lr=0.01, batch_size=32, epochs=20,
                   schedule="step", step_size="5ep", gamma=0.5, interval="iteration"),
    # The notes' MNIST protocol: linear model, Adam 1e-3, batch 64, 5 epochs, StepLR(2, 0.1) per epoch.
    "mnist": dict(dataset="mnist", model="linear", optimizer="adam", lr=1e-3, batch_size=64, epochs=5,
                  schedule="step", step_size="2ep", gamma=0.1, interval="epoch"),
    "fashion-mnist": dict(dataset="fashion-mnist", model="linear", optimizer="adam", lr=1e-3, batch_size=64,
                          epochs=5, schedule="step", step_size="2ep", gamma=0.1, interval="epoch"),
    "digits": dict(dataset="digits", model="linear", optimizer="adam", lr=1e-3, batch_size=64, epochs=5,
                   schedule="step", step_size="2ep", gamma=0.1, interval="epoch"),
}

COMPARE_SCHEDULES = ("none", "step", "multistep", "exponential", "cosine", "plateau")


def recipe_config(recipe: str, **overrides: Any) -> TrainConfig:
    """The recipe's settings with ``overrides`` applied (None values are ignored).

    Raises:
        ValueError: for an unknown recipe or setting.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    settings = {"recipe": recipe, **RECIPES[recipe]}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(f"unknown setting {key!r}")
        if value is not None:
            settings[key] = value
    if isinstance(settings.get("milestones"), list):
        settings["milestones"] = tuple(settings["milestones"])
    return TrainConfig(**settings)


def schedule_config(base: TrainConfig, schedule: str) -> TrainConfig:
    """``base`` switched to ``schedule`` with defaults that make each schedule a fair contender.

    ``step`` keeps the recipe's step_size and gamma; ``multistep`` decays by gamma at 50% and 75% of the run;
    ``exponential`` decays 100x over the run; ``cosine`` anneals over the whole run; ``plateau`` halves the LR
    after 2 epochs without a better test loss.
    """
    if schedule not in COMPARE_SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(COMPARE_SCHEDULES)}")
    if schedule in ("none", "step"):
        return dataclasses.replace(base, schedule=schedule)
    if schedule == "multistep":
        half, three_quarters = max(1, base.epochs // 2), max(1, (3 * base.epochs) // 4)
        marks = sorted({half, three_quarters}) if three_quarters > half else [half]
        return dataclasses.replace(base, schedule="multistep", milestones=tuple(f"{m}ep" for m in marks))
    if schedule == "exponential":
        # gamma is per scheduler step: 100x over the run's epochs here; compare() redoes it per iteration
        # for per-iteration recipes, once the number of batches is known.
        return dataclasses.replace(base, schedule="exponential", gamma=0.01 ** (1 / base.epochs))
    if schedule == "cosine":
        return dataclasses.replace(base, schedule="cosine", t_max=f"{base.epochs}ep")
    return dataclasses.replace(base, schedule="plateau", gamma=0.5, plateau_patience=2)


@dataclass(frozen=True)
class SummaryRow:
    schedule: str
    test_acc_mean: float
    test_acc_sd: float
    test_loss_mean: float
    test_loss_sd: float
    wins: int | None  # seeds where it beat "none" on final test accuracy
    ties: int | None
    p_value: float | None  # paired t-test of the final test accuracy against "none"
    mean_diff: float | None


@dataclass
class Comparison:
    recipe: str
    base: TrainConfig
    seeds: list[int]
    configs: dict[str, TrainConfig] = field(default_factory=dict)
    runs: dict[str, list[History]] = field(default_factory=dict)

    def summary(self) -> list[SummaryRow]:
        """Final test accuracy and loss per schedule, with wins and a paired test against ``none``."""
        rows = []
        baseline = self.runs.get("none")
        for name, histories in self.runs.items():
            acc = [h.epochs[-1].test_acc for h in histories]
            loss = [h.epochs[-1].test_loss for h in histories]
            wins = ties = None
            p_value = mean_diff = None
            if baseline is not None and name != "none":
                base_acc = [h.epochs[-1].test_acc for h in baseline]
                diffs = [a - b for a, b in zip(acc, base_acc)]
                wins = sum(d > 0 for d in diffs)
                ties = sum(d == 0 for d in diffs)
                mean_diff = statistics.fmean(diffs)
                p_value = _paired_p_value(acc, base_acc)
            rows.append(SummaryRow(name, statistics.fmean(acc), _sd(acc), statistics.fmean(loss), _sd(loss),
                                   wins, ties, p_value, mean_diff))
        return rows


def _sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _paired_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2:
        return None
    diffs = [x - y for x, y in zip(a, b)]
    if all(d == diffs[0] for d in diffs):
        return None if diffs[0] != 0 else 1.0  # no spread: a t-test is undefined
    from scipy import stats

    return float(stats.ttest_rel(a, b).pvalue)


def compare(
    recipe: str,
    data: TrainData,
    schedules: Sequence[str],
    seeds: Sequence[int],
    overrides: dict[str, Any] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> Comparison:
    """Train every schedule on every seed, all in one batch (see :mod:`steplr.sweep`): the same seeds (so the
    same initial weights and batch orders) for every schedule, so differences are paired."""
    from .sweep import train_batched

    base = recipe_config(recipe, **(overrides or {}))
    if not schedules:
        raise ValueError("schedules must name at least one schedule")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    result = Comparison(recipe, base, list(seeds))
    batches = math.ceil(data.x_train.shape[0] / base.batch_size)
    configs = []
    for name in schedules:
        config = schedule_config(base, name)
        if name == "exponential" and config.interval == "iteration":
            config = dataclasses.replace(config, gamma=0.01 ** (1 / (base.epochs * batches)))
        result.configs[name] = config
        configs += [dataclasses.replace(config, seed=seed) for seed in seeds]
    histories = train_batched(configs, data, on_epoch=on_epoch)
    for index, name in enumerate(schedules):
        result.runs[name] = histories[index * len(seeds) : (index + 1) * len(seeds)]
    return result
