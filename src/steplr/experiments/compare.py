"""The recipes of the reference notes, and comparisons of schedules on them (paired over seeds).

Knows nothing about argument parsing: the CLI turns flags into ``overrides``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from steplr.experiments.paired import NO_TEST, against_baseline, baseline_notes
from steplr.training.config import History, TrainConfig
from steplr.training.train import TrainData

__all__ = [
    "RECIPES",
    "COMPARE_SCHEDULES",
    "recipe_config",
    "schedule_config",
    "compare",
    "Comparison",
    "SummaryRow",
    "BASELINE",
    "DEFAULT_VALIDATION",
]

BASELINE = "none"  # the constant LR every schedule is compared with
DEFAULT_VALIDATION = 1 / 6  # compare and sweep hold out this share of the training set to choose on

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


def schedule_config(base: TrainConfig, schedule: str, given: Collection[str] = ()) -> TrainConfig:
    """``base`` switched to ``schedule`` with defaults that make each schedule a fair contender.

    ``step`` keeps the recipe's step_size and gamma; ``multistep`` decays by gamma at 50% and 75% of the run;
    ``exponential`` decays 100x over the run; ``cosine`` anneals over the whole run (after any warm-up);
    ``plateau`` halves the LR after 2 epochs without a better validation loss. A setting named in ``given`` (the
    ones the user set) is kept instead of the fair default. ``plateau`` takes no warm-up.
    """
    if schedule not in COMPARE_SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(COMPARE_SCHEDULES)}")
    # plateau takes no warm-up: dropped in the same replace, since a config checks itself on creation.
    config = dataclasses.replace(base, schedule=schedule, warmup=None if schedule == "plateau" else base.warmup)
    if schedule == "multistep" and "milestones" not in given:
        half, three_quarters = max(1, base.epochs // 2), max(1, (3 * base.epochs) // 4)
        marks = sorted({half, three_quarters}) if three_quarters > half else [half]
        config = dataclasses.replace(config, milestones=tuple(f"{m}ep" for m in marks))
    elif schedule == "exponential" and "gamma" not in given:
        # gamma is per scheduler step: 100x over the run's epochs here; compare() redoes it per iteration
        # for per-iteration recipes, once the number of batches is known.
        config = dataclasses.replace(config, gamma=0.01 ** (1 / base.epochs))
    elif schedule == "plateau":
        config = dataclasses.replace(
            config,
            gamma=base.gamma if "gamma" in given else 0.5,
            plateau_patience=base.plateau_patience if "plateau_patience" in given else 2,
        )
    return config


@dataclass(frozen=True)
class SummaryRow:
    """One schedule over its seeds, paired against the constant LR (``none``) on the same seeds.

    Accuracies are fractions in [0, 1]; ``diff_*`` are points of test accuracy (schedule minus constant LR). The
    baseline's own row has no difference, test or verdict (``verdict == "baseline"``).
    """

    schedule: str
    val_acc_mean: float
    test_acc_mean: float
    test_acc_sd: float
    test_loss_mean: float
    test_loss_sd: float
    diff_mean: float | None
    diff_ci_low: float | None
    diff_ci_high: float | None
    p: float | None
    p_adjusted: float | None
    verdict: str
    wins: int | None  # seeds where it ended above the constant LR on test accuracy
    ties: int | None
    seeds: int
    diverged: int  # seeds whose loss became NaN or infinite
    diverged_at: list[int] = field(default_factory=list)  # the epoch each diverged seed did


@dataclass
class Comparison:
    recipe: str
    base: TrainConfig
    seeds: list[int]
    configs: dict[str, TrainConfig] = field(default_factory=dict)
    runs: dict[str, list[History]] = field(default_factory=dict)

    def summary(self) -> list[SummaryRow]:
        """Final validation and test accuracy per schedule, paired against ``none`` (Holm over the schedules)."""
        baseline = self.runs[BASELINE]
        base_acc = _final(baseline, "test_acc")
        others = [name for name in self.runs if name != BASELINE]
        tests = dict(zip(others, against_baseline([(_final(self.runs[name], "test_acc"), base_acc) for name in others])))
        rows = []
        for name, histories in self.runs.items():
            acc = _final(histories, "test_acc")
            losses = [v for v in _final(histories, "test_loss") if math.isfinite(v)]
            diverged = [h.diverged_at for h in histories if h.diverged_at is not None]
            paired = tests.get(name)
            wins = ties = None
            if paired is not None:
                diffs = [a - b for a, b in zip(_zeroed(acc), _zeroed(base_acc))]
                wins, ties = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
            rows.append(SummaryRow(
                name,
                _mean(_final(histories, "val_acc")),
                statistics.fmean(_zeroed(acc)),
                _sd(_zeroed(acc)),
                _mean(losses),
                _sd(losses),
                None if paired is None else paired.diff_mean,
                None if paired is None else paired.diff_ci_low,
                None if paired is None else paired.diff_ci_high,
                None if paired is None else paired.p,
                None if paired is None else paired.p_adjusted,
                "baseline" if paired is None else paired.verdict,
                wins,
                ties,
                len(histories),
                len(diverged),
                diverged,
            ))
        return rows

    def notes(self) -> list[str]:
        """What a reader must know before trusting the verdicts: a run too short to judge, a reactive schedule
        that never reacted, diverged seeds."""
        found = baseline_notes([h.column("val_loss") for h in self.runs[BASELINE]])
        for name, histories in self.runs.items():
            config = self.configs[name]
            if config.schedule == "plateau" and all(
                all(lr == config.lr for lr in h.iteration_lrs) for h in histories
            ):
                found.append(f"plateau never reduced the LR (in any of {len(histories)} seeds): it ran as a constant LR")
            diverged = [(seed, h.diverged_at) for seed, h in zip(self.seeds, histories) if h.diverged_at is not None]
            if diverged:
                where = ", ".join(f"seed {seed} at epoch {epoch}" for seed, epoch in diverged)
                found.append(
                    f"{name} diverged in {len(diverged)} of {len(histories)} seeds ({where}): the loss became NaN or "
                    "infinite; a diverged seed counts as 0 accuracy"
                )
        if len(self.seeds) < 2:
            found.append(f"{NO_TEST}: a difference on a single seed is not evidence; use --seeds 5 or more")
        return found


def _final(histories: Sequence[History], name: str) -> list[float]:
    return [float(getattr(h.epochs[-1], name)) for h in histories]


def _zeroed(values: Sequence[float]) -> list[float]:
    """Accuracies with NaN (a diverged model) as 0."""
    return [0.0 if math.isnan(v) else v for v in values]


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _sd(values: Sequence[float]) -> float:
    """The sample sd; NaN for fewer than two values (there is none)."""
    return statistics.stdev(values) if len(values) > 1 else math.nan


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
    base = recipe_config(recipe, **overrides)
    if not schedules:
        raise ValueError("schedules must name at least one schedule")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    names = [BASELINE, *[s for s in schedules if s != BASELINE]]
    result = Comparison(recipe, base, list(seeds))
    from steplr.training.data import split_validation

    batches = math.ceil(split_validation(data, base.validation).x_train.shape[0] / base.batch_size)
    configs = []
    for name in names:
        result.configs[name] = config = compare_config(base, name, set(overrides), batches)
        configs += [dataclasses.replace(config, seed=seed) for seed in seeds]
    size = max_batch or len(configs)
    histories: list[History] = []
    for start in range(0, len(configs), size):
        histories += train_batched(configs[start : start + size], data, on_epoch=on_epoch)
    for index, name in enumerate(names):
        result.runs[name] = histories[index * len(seeds) : (index + 1) * len(seeds)]
    return result


def compare_config(base: TrainConfig, name: str, given: Collection[str], batches: int) -> TrainConfig:
    """The config ``compare`` trains for schedule ``name`` (fair defaults, the user's settings winning)."""
    config = schedule_config(base, name, given)
    if name == "exponential" and config.interval == "iteration" and "gamma" not in given:
        config = dataclasses.replace(config, gamma=0.01 ** (1 / (base.epochs * batches)))
    return config
