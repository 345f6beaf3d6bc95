"""Paired results: one row type for every candidate steplr sets against the constant LR, and the results of
``compare``, the grid sweep and the Optuna confirmation that hold those rows.

A :class:`PairedResult` is one candidate (a compared schedule, a grid config, a confirmed Optuna trial) over its
seeds: who it is, the means and sds of its final accuracies, and the paired statistics of
:mod:`steplr.experiments.paired` against a constant LR trained on the same seeds. Each producer reports the columns
it names (:data:`COMPARE_COLUMNS`, :data:`GRID_COLUMNS`, :data:`OPTUNA_COLUMNS`); the statistics behind them are
computed once, here, by :func:`pair_runs`.

One rule for every producer: a seed whose run diverged (its loss became NaN or infinite) counts as accuracy 0, and
a metric that was never measured (no validation split) is NaN; means and sds leave NaN values out, and a mean or
sd with nothing to average (or an sd of one seed) is NaN.

Imports no torch, directly or through another module: only the standard library, :mod:`steplr.errors`,
:mod:`steplr.experiments.paired`, :mod:`steplr.training.config` and the schedule registry and spec.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from steplr.errors import SteplrValueError
from steplr.experiments.paired import NO_TEST, against_baseline, baseline_notes
from steplr.schedules.registry import lookup
from steplr.schedules.spec import WARMUP_SETTINGS, ScheduleSpec
from steplr.training.config import History, TrainConfig

__all__ = [
    "SeedRun",
    "PairedResult",
    "pair_runs",
    "as_row",
    "jsonable",
    "Comparison",
    "GridResult",
    "Confirmation",
    "BASELINE",
    "BASELINE_VERDICT",
    "COMPARE_COLUMNS",
    "GRID_COLUMNS",
    "OPTUNA_COLUMNS",
    "grid_columns",
    "grid_config",
    "point_label",
]

BASELINE = "none"  # the constant LR every schedule is compared with
BASELINE_VERDICT = "baseline"  # the verdict of the constant LR's own row: it is not compared with itself

_STATISTICS = ("diff_mean", "diff_ci_low", "diff_ci_high", "p", "p_adjusted", "verdict")
# The columns each producer reports, in its order (summary.json, summary.csv and the tables read these).
COMPARE_COLUMNS = (
    "schedule",
    "val_acc_mean",
    "test_acc_mean",
    "test_acc_sd",
    "test_loss_mean",
    "test_loss_sd",
    *_STATISTICS,
    "wins",
    "ties",
    "seeds",
    "diverged",
    "diverged_at",
)
_GRID_TAIL = (
    "lr",
    "val_acc_mean",
    "test_acc_mean",
    "test_acc_sd",
    "test_loss_mean",
    "baseline_val_acc_mean",
    "baseline_test_acc_mean",
    *_STATISTICS,
    "diverged",
)


def grid_columns(swept: Sequence[str]) -> tuple[str, ...]:
    """The grid sweep's columns: the swept parameters (in the registry's order), then lr and the statistics."""
    return (*swept, *_GRID_TAIL)


GRID_COLUMNS = grid_columns(("step_size", "gamma"))  # those of the default grid, StepLR's step_size x gamma
OPTUNA_COLUMNS = (
    "trial",
    "step_size",
    "gamma",
    "lr",
    "trial_val_acc",
    "val_acc_mean",
    "test_acc_mean",
    "test_acc_sd",
    "baseline_test_acc_mean",
    *_STATISTICS,
    "diverged",
    "baseline_diverged",
    "seeds",
)


@dataclass(frozen=True)
class SeedRun:
    """What the statistics read of one finished run: its final metrics and the epoch it diverged in (or None)."""

    val_acc: float
    test_acc: float
    test_loss: float
    diverged_at: int | None

    @classmethod
    def of(cls, history: History) -> SeedRun:
        last = history.epochs[-1]
        return cls(float(last.val_acc), float(last.test_acc), float(last.test_loss), history.diverged_at)

    def accuracy(self, name: str) -> float:
        """The final ``val_acc`` or ``test_acc``: 0 when the run diverged (it classifies nothing right), or for a
        test accuracy that is not a number; a validation accuracy that is not a number (no split held out) stays
        NaN."""
        value = float(getattr(self, name))
        return 0.0 if self.diverged_at is not None or (name == "test_acc" and math.isnan(value)) else value


@dataclass(frozen=True, kw_only=True)
class PairedResult:
    """One candidate over its seeds, paired against the constant LR on the same seeds.

    Identity: ``schedule`` (its kind; ``"none"`` is the constant LR), and where a sweep set them ``step_size``,
    ``gamma`` and ``lr``; a grid row holds every parameter it swept in ``params`` (name -> value; a swept
    ``step_size`` or ``gamma`` also fills its own field); an Optuna row also has its ``trial`` number and
    ``trial_val_acc``, the search trial's own final validation accuracy that ranked it (one run). Accuracies are
    fractions in [0, 1]; ``diff_*`` are points of test accuracy (candidate minus constant LR), ``p_adjusted``
    Holm-adjusted over every candidate paired together. The constant LR's own row has no difference, test, baseline
    or wins (None) and the verdict ``"baseline"``.
    """

    schedule: str
    step_size: int | str | None = None
    gamma: float | None = None
    lr: float | None = None
    trial: int | None = None
    trial_val_acc: float | None = None
    seeds: int
    val_acc_mean: float
    test_acc_mean: float
    test_acc_sd: float  # NaN with one seed: no spread exists
    test_loss_mean: float
    test_loss_sd: float
    baseline_val_acc_mean: float | None
    baseline_test_acc_mean: float | None
    diff_mean: float | None
    diff_ci_low: float | None
    diff_ci_high: float | None
    p: float | None
    p_adjusted: float | None
    verdict: str
    wins: int | None  # seeds where it ended above the constant LR on test accuracy
    ties: int | None
    diverged: int  # seeds whose loss became NaN or infinite
    diverged_at: list[int] = field(default_factory=list)  # the epoch each diverged seed did
    baseline_diverged: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # a grid row's swept schedule parameters


_OWN_FIELDS = ("step_size", "gamma")  # schedule parameters with a field of their own (Optuna tunes StepLR's)


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


def _sd(values: Sequence[float]) -> float:
    """The sample sd of the values that are numbers; NaN for fewer than two (there is none)."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.stdev(finite) if len(finite) > 1 else math.nan


def _own(runs: Sequence[SeedRun]) -> dict[str, Any]:
    """The statistics of one side alone."""
    acc = [r.accuracy("test_acc") for r in runs]
    losses = [r.test_loss for r in runs if math.isfinite(r.test_loss)]
    diverged = [r.diverged_at for r in runs if r.diverged_at is not None]
    return {
        "seeds": len(runs),
        "val_acc_mean": _mean([r.accuracy("val_acc") for r in runs]),
        "test_acc_mean": statistics.fmean(acc),
        "test_acc_sd": _sd(acc),
        "test_loss_mean": _mean(losses),
        "test_loss_sd": _sd(losses),
        "diverged": len(diverged),
        "diverged_at": diverged,
    }


def pair_runs(
    candidates: Sequence[tuple[Mapping[str, Any], Sequence[SeedRun], Sequence[SeedRun] | None]],
) -> list[PairedResult]:
    """One :class:`PairedResult` per ``(identity, runs, baseline runs)``, in order; seeds in the same order on both
    sides. ``identity`` holds ``schedule`` and any of the other identity fields; a ``None`` baseline marks the
    constant LR's own row. The p-values are Holm-adjusted over every candidate given with a baseline.

    Raises:
        SteplrValueError: for a candidate without runs, or a baseline with another number of seeds.
    """
    empty = [dict(identity) for identity, runs, _ in candidates if not runs]
    if empty:
        raise SteplrValueError(f"candidate {empty[0]!r} has no runs")
    compared = [(runs, baseline) for _, runs, baseline in candidates if baseline is not None]
    tests = iter(
        against_baseline(
            [
                ([r.accuracy("test_acc") for r in runs], [b.accuracy("test_acc") for b in base])
                for runs, base in compared
            ]
        )
    )
    found = []
    for identity, runs, baseline in candidates:
        values: dict[str, Any] = {**identity, **_own(runs)}
        if baseline is None:
            values.update(
                dict.fromkeys(("baseline_val_acc_mean", "baseline_test_acc_mean", "wins", "ties")),
                **dict.fromkeys(_STATISTICS[:-1]),
                verdict=BASELINE_VERDICT,
            )
        else:
            paired = next(tests)
            diffs = [a.accuracy("test_acc") - b.accuracy("test_acc") for a, b in zip(runs, baseline)]
            values.update(
                dataclasses.asdict(paired),
                baseline_val_acc_mean=_mean([b.accuracy("val_acc") for b in baseline]),
                baseline_test_acc_mean=statistics.fmean(b.accuracy("test_acc") for b in baseline),
                wins=sum(d > 0 for d in diffs),
                ties=sum(d == 0 for d in diffs),
                baseline_diverged=sum(b.diverged_at is not None for b in baseline),
            )
        found.append(PairedResult(**values))
    return found


def as_row(result: PairedResult, columns: Sequence[str]) -> dict[str, Any]:
    """The named ``columns`` of ``result``, in that order: its fields, or a swept parameter of ``params`` (lists
    and tuples as new lists)."""
    found = {}
    for name in columns:
        value = result.params[name] if name in result.params else getattr(result, name)
        found[name] = list(value) if isinstance(value, (list, tuple)) else value
    return found


def point_label(kind: str, point: Mapping[str, Any], lr: float) -> str:
    """A config in words, its parameters by their short labels: ``step 2ep, gamma 0.5, lr 0.1``."""
    entry = lookup(kind)
    parts = []
    for name, value in point.items():
        param = entry.param(name)
        label = param.label if param is not None and param.label else name
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        parts.append(f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}")
    return ", ".join([*parts, f"lr {lr:g}"])


def grid_config(base: TrainConfig, kind: str, values: Mapping[str, Any], **settings: Any) -> TrainConfig:
    """``base`` running schedule ``kind`` with the parameters ``values``, and other ``settings`` (``lr``, ``seed``).

    A parameter not in ``values`` keeps the base's own when the base already runs ``kind`` (a recipe's step_size
    when only gamma is swept), else takes the kind's default; the base's warm-up is kept.

    Raises:
        SteplrValueError: for a parameter ``kind`` does not read, or a bad value (each named).
    """
    spec = base.schedule
    kept = spec.settings() if spec.entry is lookup(kind) else {k: spec.settings()[k] for k in WARMUP_SETTINGS}
    return base.with_settings(
        schedule=ScheduleSpec.from_settings(kind, {**kept, **values}, strict=set(values)), **settings
    )


def jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for strict JSON: numbers that are not finite (a metric with no data) become null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _one_seed_note(seeds: Sequence[int]) -> list[str]:
    if len(seeds) > 1:
        return []
    return [f"{NO_TEST}: a difference on a single seed is not evidence; use --seeds 5 or more"]


@dataclass
class Comparison:
    """``compare``'s result: every schedule's runs (one History per seed, same seeds for all) and configs."""

    columns: ClassVar[tuple[str, ...]] = COMPARE_COLUMNS

    recipe: str
    base: TrainConfig
    seeds: list[int]
    configs: dict[str, TrainConfig] = field(default_factory=dict)
    runs: dict[str, list[History]] = field(default_factory=dict)

    def summary(self) -> list[PairedResult]:
        """Final validation and test accuracy per schedule, paired against ``none`` (Holm over the schedules)."""
        baseline = [SeedRun.of(h) for h in self.runs[BASELINE]]
        return pair_runs(
            [
                ({"schedule": name}, [SeedRun.of(h) for h in histories], None if name == BASELINE else baseline)
                for name, histories in self.runs.items()
            ]
        )

    def notes(self) -> list[str]:
        """What a reader must know before trusting the verdicts: a run too short to judge, a reactive schedule
        that never reacted, diverged seeds."""
        found = baseline_notes([h.column("val_loss") for h in self.runs[BASELINE]])
        for name, histories in self.runs.items():
            config = self.configs[name]
            if config.schedule.reactive and all(all(lr == config.lr for lr in h.iteration_lrs) for h in histories):
                found.append(
                    f"plateau never reduced the LR (in any of {len(histories)} seeds): it ran as a constant LR"
                )
            diverged = [(seed, h.diverged_at) for seed, h in zip(self.seeds, histories) if h.diverged_at is not None]
            if diverged:
                where = ", ".join(f"seed {seed} at epoch {epoch}" for seed, epoch in diverged)
                found.append(
                    f"{name} diverged in {len(diverged)} of {len(histories)} seeds ({where}): the loss became NaN or "
                    "infinite; a diverged seed counts as 0 accuracy"
                )
        return found + _one_seed_note(self.seeds)


@dataclass
class GridResult:
    """The grid sweep's result: one row per (config, seed), baselines included (schedule ``"none"``), with the
    final metrics the statistics read (``finals``, in the order of ``rows``). ``grid`` maps each swept parameter
    of ``schedule`` to its values, in the registry's order; a row names its config by those parameters and lr."""

    recipe: str
    base: TrainConfig
    schedule: str  # the swept kind
    grid: dict[str, list[Any]]
    lrs: list[float]
    seeds: list[int]
    rows: list[dict[str, Any]]  # results.csv
    baseline_val_losses: dict[float, list[list[float]]] = field(default_factory=dict)  # lr -> per seed, per epoch
    finals: list[SeedRun] = field(default_factory=list)

    @property
    def columns(self) -> tuple[str, ...]:
        """summary.json's columns: the swept parameters, lr, then the statistics."""
        return grid_columns(list(self.grid))

    def config(self, row: PairedResult) -> TrainConfig:
        """The config a summary row stands for (seed 0)."""
        return grid_config(self.base, self.schedule, row.params, lr=row.lr)

    def summaries(self) -> list[PairedResult]:
        """Per (swept parameters, lr), over seeds; best validation accuracy first (that is the choice; the test
        columns are reported, never ranked on). Diverged seeds count as accuracy 0."""
        baseline: dict[float, list[SeedRun]] = {}
        groups: dict[tuple[tuple[Any, ...], float], list[SeedRun]] = {}
        for row, final in zip(self.rows, self.finals, strict=True):
            if row["schedule"] == BASELINE:
                baseline.setdefault(row["lr"], []).append(final)
            else:
                groups.setdefault((tuple(row[name] for name in self.grid), row["lr"]), []).append(final)
        candidates = []
        for (values, lr), runs in groups.items():
            params = dict(zip(self.grid, values))
            own = {name: value for name, value in params.items() if name in _OWN_FIELDS}
            candidates.append(({"schedule": self.schedule, **own, "lr": lr, "params": params}, runs, baseline[lr]))
        return sorted(pair_runs(candidates), key=lambda s: s.val_acc_mean, reverse=True)

    def notes(self) -> list[str]:
        """Baselines still improving at the end (the run may be too short for decay to pay off); diverged runs."""
        found = []
        for lr, curves in self.baseline_val_losses.items():
            found += baseline_notes(curves, f"at lr {lr:g} " if len(self.baseline_val_losses) > 1 else "")
        diverged = sum(final.diverged_at is not None for final in self.finals)
        if diverged:
            found.append(
                f"{diverged} of {len(self.rows)} runs diverged (loss NaN or infinite); they count as 0 accuracy"
            )
        return found + _one_seed_note(self.seeds)


@dataclass(frozen=True)
class Confirmation:
    """The Optuna search's best configs retrained on ``seeds`` beside a constant LR (same lr, same seeds): rows in
    the study's order (best ``trial_val_acc`` first, ties by trial number)."""

    columns: ClassVar[tuple[str, ...]] = OPTUNA_COLUMNS

    rows: list[PairedResult]
    seeds: list[int]
    base: TrainConfig  # the study's recipe settings (epochs, validation); schedule and lr vary by row
    batches: int  # batches per epoch of the training part of the split
    still_falling: dict[float, float]  # base LR -> how much the constant LR's validation loss still fell at the end
