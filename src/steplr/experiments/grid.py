"""Grid sweeps over step_size x gamma (x base LR) x seeds, trained in batches, against a constant-LR baseline."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from steplr.experiments.compare import DEFAULT_VALIDATION, recipe_config
from steplr.experiments.paired import NO_TEST, against_baseline, baseline_notes
from steplr.training.config import TrainConfig
from steplr.training.train import TrainData

__all__ = ["GridResult", "ConfigSummary", "grid_sweep", "MAX_BATCH"]

MAX_BATCH = 256  # models trained together; bounds memory (benchmarks/RESULTS.md: 256 qwerty models ~ MBs)


@dataclass(frozen=True)
class ConfigSummary:
    """One (step_size, gamma, lr) over its seeds, paired against a constant LR at the same lr and seeds.

    Accuracies are fractions; ``diff_*`` are points of test accuracy; the verdict is Holm-adjusted over every
    config of the sweep.
    """

    step_size: Any
    gamma: float
    lr: float
    val_acc_mean: float
    test_acc_mean: float
    test_acc_sd: float
    test_loss_mean: float
    baseline_val_acc_mean: float
    baseline_test_acc_mean: float
    diff_mean: float
    diff_ci_low: float | None
    diff_ci_high: float | None
    p: float | None
    p_adjusted: float | None
    verdict: str
    diverged: int  # seeds whose loss became NaN or infinite


@dataclass
class GridResult:
    recipe: str
    base: TrainConfig
    step_sizes: list[Any]
    gammas: list[float]
    lrs: list[float]
    seeds: list[int]
    rows: list[dict[str, Any]]  # one per (config, seed), baselines included (schedule "none")
    baseline_val_losses: dict[float, list[list[float]]] = field(default_factory=dict)  # lr -> per seed, per epoch

    def summaries(self) -> list[ConfigSummary]:
        """Per (step_size, gamma, lr), over seeds; best validation accuracy first (that is the choice; the test
        columns are reported, never ranked on). Diverged seeds count as accuracy 0."""
        baseline: dict[float, list[dict[str, Any]]] = {}
        groups: dict[tuple[Any, float, float], list[dict[str, Any]]] = {}
        for row in self.rows:
            if row["schedule"] == "none":
                baseline.setdefault(row["lr"], []).append(row)
            else:
                groups.setdefault((row["step_size"], row["gamma"], row["lr"]), []).append(row)
        keys = list(groups)
        tests = against_baseline([(_column(groups[k], "test_acc"), _column(baseline[k[2]], "test_acc")) for k in keys])
        found = []
        for (step_size, gamma, lr), paired in zip(keys, tests):
            rows, base = groups[(step_size, gamma, lr)], baseline[lr]
            acc = _column(rows, "test_acc")
            losses = [r["test_loss"] for r in rows if math.isfinite(r["test_loss"])]
            found.append(ConfigSummary(
                step_size, gamma, lr, statistics.fmean(_column(rows, "val_acc")), statistics.fmean(acc),
                statistics.stdev(acc) if len(acc) > 1 else math.nan, statistics.fmean(losses) if losses else math.nan,
                statistics.fmean(_column(base, "val_acc")), statistics.fmean(_column(base, "test_acc")),
                paired.diff_mean, paired.diff_ci_low, paired.diff_ci_high, paired.p, paired.p_adjusted,
                paired.verdict, sum(not math.isfinite(r["test_loss"]) for r in rows),
            ))
        return sorted(found, key=lambda s: s.val_acc_mean, reverse=True)

    def notes(self) -> list[str]:
        """Baselines still improving at the end (the run may be too short for decay to pay off); diverged runs."""
        found = []
        for lr, curves in self.baseline_val_losses.items():
            found += baseline_notes(curves, f"at lr {lr:g} " if len(self.baseline_val_losses) > 1 else "")
        diverged = [r for r in self.rows if not math.isfinite(r["test_loss"])]
        if diverged:
            found.append(f"{len(diverged)} of {len(self.rows)} runs diverged (loss NaN or infinite); they count as "
                         "0 accuracy")
        if len(self.seeds) < 2:
            found.append(f"{NO_TEST}: a difference on a single seed is not evidence; use --seeds 5 or more")
        return found


def _column(rows: Sequence[dict[str, Any]], name: str) -> list[float]:
    """Accuracies per seed, NaN (no data, or a diverged run) as 0."""
    return [0.0 if not math.isfinite(r["test_loss"]) or math.isnan(r[name]) else float(r[name]) for r in rows]


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
            if config.schedule.kind == "none":
                baseline_val_losses.setdefault(config.lr, []).append(history.column("val_loss"))
        if on_progress is not None:
            on_progress(len(chunk))
    return GridResult(recipe, base, list(step_sizes), list(gammas), lrs, list(seeds), rows, baseline_val_losses)
