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

**What a comparison is judged on.** A classification is judged on accuracy (above); a regression (a model trained
with ``loss="mse"`` on float targets, or any run that measures no accuracy) on **loss**, lower being better. The
metric is decided once per comparison or sweep, by :attr:`Comparison.judged_on` / :attr:`GridResult.judged_on`:
the caller's ``metric`` (``"accuracy"`` or ``"loss"``) when it set one, else :func:`metric_of` the runs --
``"loss"`` when every run that did not diverge ended with a NaN test accuracy (it never classified anything),
``"accuracy"`` otherwise (also when every run diverged: nothing tells, and accuracy is what steplr always did).
Every row then carries it (:attr:`PairedResult.metric`), and the report and figures read it from there.

Judged on loss (:func:`pair_runs` with ``metric="loss"``):

* ``val_loss_mean``, ``test_loss_mean``, ``test_loss_sd``: final losses over the seeds that did not diverge;
* ``diff_*``: the paired difference of final test loss, candidate minus constant LR (negative = lower = better),
  in the loss's own units, with its 95% CI (paired t), ``p`` and Holm's ``p_adjusted`` as for accuracy (when
  every seed shows the same difference, to within 1e-9 of the largest loss, the exact sign-flip p instead);
* ``verdict``: ``better`` when the adjusted p is below 0.05 and the mean difference is negative, ``worse`` when
  it is positive, else ``no detectable difference``; ``1 seed: no test`` with a single seed to pair, and no
  difference at all (None, verdict ``no detectable difference``) when diverged seeds leave none to pair;
* **diverged seeds**: a diverged run has no loss to average or pair (its loss is NaN or infinite), so it is left
  out of the means, and a seed where *either* side diverged is left out of the paired test (the test is over the
  seeds both finished); ``diverged`` counts the candidate's. Because leaving out a seed the candidate diverged on
  flatters it, **a candidate with a diverged seed is never called better**: such a verdict reads ``no
  detectable difference`` (it can still be ``worse``), and on validation it is chosen only if every candidate
  diverged somewhere. ``wins`` counts seeds it ended below the constant LR (a seed only the constant LR diverged
  on is a win, one the candidate diverged on never is).

Imports no torch, directly or through another module: only the standard library, :mod:`steplr.errors`,
:mod:`steplr.experiments.paired`, :mod:`steplr.training.config` and the schedule registry and spec.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from steplr.errors import SteplrValueError
from steplr.experiments.paired import ALPHA, NO_TEST, against_baseline, baseline_notes, holm, verdict_word
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
    "metric_of",
    "METRICS",
    "Confirmation",
    "BASELINE",
    "BASELINE_VERDICT",
    "COMPARE_COLUMNS",
    "GRID_COLUMNS",
    "OPTUNA_COLUMNS",
    "grid_columns",
    "LOSS_COMPARE_COLUMNS",
    "grid_config",
    "point_label",
]

BASELINE = "none"  # the constant LR every schedule is compared with
BASELINE_VERDICT = "baseline"  # the verdict of the constant LR's own row: it is not compared with itself
METRICS = ("accuracy", "loss")  # what a comparison can be judged on (see the module docstring)
# Paired loss differences whose spread is within this share of the largest loss are one difference seen through
# rounding: no spread for a t-test to use (the exact sign-flip p is used instead, as paired.py does for accuracy).
_SAME_LOSS = 1e-9

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
# The same columns for a comparison judged on loss: the losses instead of the accuracies.
LOSS_COMPARE_COLUMNS = (
    "schedule",
    "val_loss_mean",
    "test_loss_mean",
    "test_loss_sd",
    *_STATISTICS,
    "wins",
    "ties",
    "seeds",
    "diverged",
    "diverged_at",
)
_LOSS_GRID_TAIL = (
    "lr",
    "val_loss_mean",
    "test_loss_mean",
    "test_loss_sd",
    "baseline_val_loss_mean",
    "baseline_test_loss_mean",
    *_STATISTICS,
    "diverged",
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


def grid_columns(swept: Sequence[str], metric: str = "accuracy") -> tuple[str, ...]:
    """The grid sweep's columns: the swept parameters (in the registry's order), then lr and the statistics (of
    accuracy or of loss, by ``metric``)."""
    return (*swept, *(_LOSS_GRID_TAIL if metric == "loss" else _GRID_TAIL))


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
    val_loss: float = math.nan  # NaN without a validation split

    @classmethod
    def of(cls, history: History) -> SeedRun:
        last = history.epochs[-1]
        return cls(
            float(last.val_acc), float(last.test_acc), float(last.test_loss), history.diverged_at, float(last.val_loss)
        )

    def loss(self, name: str) -> float:
        """The final ``val_loss`` or ``test_loss`` when the run did not diverge and it is finite, else NaN (a
        diverged run has no loss to average or pair)."""
        value = float(getattr(self, name))
        return value if self.diverged_at is None and math.isfinite(value) else math.nan

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

    A row with ``metric == "loss"`` (a regression) holds NaN accuracies, its losses in ``val_loss_mean``,
    ``test_loss_mean`` and ``test_loss_sd`` (and the constant LR's in ``baseline_*_loss_mean``), and ``diff_*`` in
    units of test loss (negative = lower than the constant LR = better); see the module docstring.
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
    metric: str = "accuracy"  # what diff_* and the verdict are about: "accuracy" or "loss" (module docstring)
    val_loss_mean: float = math.nan  # over the seeds that did not diverge (filled when judged on loss)
    baseline_val_loss_mean: float | None = None
    baseline_test_loss_mean: float | None = None


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


Candidates = Sequence[tuple[Mapping[str, Any], Sequence[SeedRun], Sequence[SeedRun] | None]]


def pair_runs(candidates: Candidates, metric: str = "accuracy") -> list[PairedResult]:
    """One :class:`PairedResult` per ``(identity, runs, baseline runs)``, in order; seeds in the same order on both
    sides. ``identity`` holds ``schedule`` and any of the other identity fields; a ``None`` baseline marks the
    constant LR's own row. The p-values are Holm-adjusted over every candidate given with a baseline. ``metric``:
    what the candidates are judged on, final test ``"accuracy"`` or ``"loss"`` (see the module docstring).

    Raises:
        SteplrValueError: for a candidate without runs, a baseline with another number of seeds, or another
            ``metric``.
    """
    _check_metric(metric)
    empty = [dict(identity) for identity, runs, _ in candidates if not runs]
    if empty:
        raise SteplrValueError(f"candidate {empty[0]!r} has no runs")
    if metric == "loss":
        return _pair_losses(candidates)
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


def _check_metric(metric: str | None, allow_none: bool = False) -> None:
    if not (metric in METRICS or (allow_none and metric is None)):
        raise SteplrValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {metric!r}")


def metric_of(runs: Iterable[SeedRun]) -> str:
    """What runs are judged on: ``"loss"`` when every run that did not diverge ended without a test accuracy (NaN:
    a regression has no classes), ``"accuracy"`` otherwise, also when every run diverged (nothing tells)."""
    finished = [run for run in runs if run.diverged_at is None]
    return "loss" if finished and all(math.isnan(run.test_acc) for run in finished) else "accuracy"


def _finished_pairs(runs: Sequence[SeedRun], baseline: Sequence[SeedRun]) -> list[tuple[float, float]]:
    """The final test losses (candidate, constant LR) of the seeds where neither side diverged.

    Raises:
        SteplrValueError: for sides of different lengths.
    """
    if len(runs) != len(baseline):
        raise SteplrValueError(
            f"a paired comparison needs the same seeds on both sides, got {len(runs)} and {len(baseline)}"
        )
    pairs = [(a.loss("test_loss"), b.loss("test_loss")) for a, b in zip(runs, baseline)]
    return [(a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b))]


def _loss_test(pairs: Sequence[tuple[float, float]]) -> tuple[float | None, float | None, float | None, float | None]:
    """(mean difference, CI low, CI high, p) of the paired test-loss differences; None where there is none."""
    if not pairs:
        return None, None, None, None
    diffs = [a - b for a, b in pairs]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, None, None, None
    rounding = _SAME_LOSS * max(abs(v) for pair in pairs for v in pair)
    if max(diffs) - min(diffs) <= rounding:  # zero spread: the exact sign-flip p, as for accuracy
        return mean, mean, mean, (1.0 if abs(mean) <= rounding else 2.0 / 2 ** len(diffs))
    from scipy import stats

    result = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs])
    interval = result.confidence_interval(1 - ALPHA)
    return mean, float(interval.low), float(interval.high), float(result.pvalue)


def _loss_verdict(mean: float | None, p_adjusted: float | None, seeds: int, diverged: int) -> str:
    """The verdict on test loss (lower is better); never ``better`` for a candidate with a diverged seed."""
    if mean is None:  # no seed on which both finished
        return NO_TEST if seeds < 2 else "no detectable difference"
    word = verdict_word(-mean, p_adjusted)  # verdict_word calls a positive difference better
    return "no detectable difference" if word == "better" and diverged else word


def _losses(runs: Sequence[SeedRun]) -> dict[str, Any]:
    """One side's statistics when judged on loss: no accuracies, the losses of the seeds that did not diverge."""
    test = [r.loss("test_loss") for r in runs]
    return {
        "val_acc_mean": math.nan,
        "test_acc_mean": math.nan,
        "test_acc_sd": math.nan,
        "val_loss_mean": _mean([r.loss("val_loss") for r in runs]),
        "test_loss_mean": _mean(test),
        "test_loss_sd": _sd(test),
        "metric": "loss",
    }


def _pair_losses(candidates: Candidates) -> list[PairedResult]:
    """:func:`pair_runs` judged on final test loss (the rules are the module docstring's)."""
    tests = [None if base is None else _loss_test(_finished_pairs(runs, base)) for _, runs, base in candidates]
    adjusted = holm([None if test is None else test[3] for test in tests])
    found = []
    for (identity, runs, baseline), test, p_adjusted in zip(candidates, tests, adjusted):
        values: dict[str, Any] = {**identity, **_own(runs), **_losses(runs)}
        if baseline is None or test is None:
            values.update(
                dict.fromkeys(("baseline_val_acc_mean", "baseline_test_acc_mean", "wins", "ties")),
                **dict.fromkeys(_STATISTICS[:-1]),
                verdict=BASELINE_VERDICT,
            )
        else:
            mean, low, high, p = test
            ours, theirs = [r.loss("test_loss") for r in runs], [b.loss("test_loss") for b in baseline]
            values.update(
                diff_mean=mean,
                diff_ci_low=low,
                diff_ci_high=high,
                p=p,
                p_adjusted=p_adjusted,
                verdict=_loss_verdict(mean, p_adjusted, len(runs), values["diverged"]),
                baseline_val_acc_mean=math.nan,
                baseline_test_acc_mean=math.nan,
                baseline_val_loss_mean=_mean([b.loss("val_loss") for b in baseline]),
                baseline_test_loss_mean=_mean(theirs),
                wins=sum(not math.isnan(a) and (math.isnan(b) or a < b) for a, b in zip(ours, theirs)),
                ties=sum(a == b for a, b in zip(ours, theirs)),  # NaN equals nothing
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


def _diverged_counts(metric: str) -> str:
    if metric == "loss":
        return "a diverged seed is left out of the loss means and of the paired test, and cannot be called better"
    return "a diverged seed counts as 0 accuracy"


@dataclass
class Comparison:
    """``compare``'s result: every schedule's runs (one History per seed, same seeds for all) and configs.

    ``metric``: what the schedules are judged on, ``"accuracy"`` or ``"loss"``; None (the default) decides it
    from the runs (:func:`metric_of`), see :attr:`judged_on`.

    Raises:
        SteplrValueError: for another ``metric``.
    """

    recipe: str
    base: TrainConfig
    seeds: list[int]
    configs: dict[str, TrainConfig] = field(default_factory=dict)
    runs: dict[str, list[History]] = field(default_factory=dict)
    metric: str | None = None

    def __post_init__(self) -> None:
        _check_metric(self.metric, allow_none=True)

    @property
    def judged_on(self) -> str:
        """``"accuracy"`` or ``"loss"``: the caller's ``metric``, else decided from the runs."""
        if self.metric is not None:
            return self.metric
        return metric_of(SeedRun.of(h) for histories in self.runs.values() for h in histories)

    @property
    def columns(self) -> tuple[str, ...]:
        """summary.json's and summary.csv's columns (those of accuracy or of loss)."""
        return LOSS_COMPARE_COLUMNS if self.judged_on == "loss" else COMPARE_COLUMNS

    def summary(self) -> list[PairedResult]:
        """Final validation and test accuracy (or loss, see :attr:`judged_on`) per schedule, paired against
        ``none`` (Holm over the schedules)."""
        baseline = [SeedRun.of(h) for h in self.runs[BASELINE]]
        return pair_runs(
            [
                ({"schedule": name}, [SeedRun.of(h) for h in histories], None if name == BASELINE else baseline)
                for name, histories in self.runs.items()
            ],
            self.judged_on,
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
                    f"infinite; {_diverged_counts(self.judged_on)}"
                )
        return found + _one_seed_note(self.seeds)


@dataclass
class GridResult:
    """The grid sweep's result: one row per (config, seed), baselines included (schedule ``"none"``), with the
    final metrics the statistics read (``finals``, in the order of ``rows``). ``grid`` maps each swept parameter
    of ``schedule`` to its values, in the registry's order; a row names its config by those parameters and lr.
    ``metric`` as for :class:`Comparison` (None: decided from ``finals``).

    Raises:
        SteplrValueError: for another ``metric``.
    """

    recipe: str
    base: TrainConfig
    schedule: str  # the swept kind
    grid: dict[str, list[Any]]
    lrs: list[float]
    seeds: list[int]
    rows: list[dict[str, Any]]  # results.csv
    baseline_val_losses: dict[float, list[list[float]]] = field(default_factory=dict)  # lr -> per seed, per epoch
    finals: list[SeedRun] = field(default_factory=list)
    metric: str | None = None

    def __post_init__(self) -> None:
        _check_metric(self.metric, allow_none=True)

    @property
    def judged_on(self) -> str:
        """``"accuracy"`` or ``"loss"``: the caller's ``metric``, else decided from the runs' final metrics."""
        return self.metric if self.metric is not None else metric_of(self.finals)

    @property
    def columns(self) -> tuple[str, ...]:
        """summary.json's columns: the swept parameters, lr, then the statistics."""
        return grid_columns(list(self.grid), self.judged_on)

    def config(self, row: PairedResult) -> TrainConfig:
        """The config a summary row stands for (seed 0)."""
        return grid_config(self.base, self.schedule, row.params, lr=row.lr)

    def summaries(self) -> list[PairedResult]:
        """Per (swept parameters, lr), over seeds; best validation accuracy first (that is the choice; the test
        columns are reported, never ranked on). Diverged seeds count as accuracy 0.

        Judged on loss: lowest mean validation loss first, configs with a diverged seed after every config
        without one (then those without a validation loss)."""
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
        metric = self.judged_on
        if metric == "loss":
            return sorted(pair_runs(candidates, metric), key=_validation_rank)
        return sorted(pair_runs(candidates), key=lambda s: s.val_acc_mean, reverse=True)

    def notes(self) -> list[str]:
        """Baselines still improving at the end (the run may be too short for decay to pay off); diverged runs."""
        found = []
        for lr, curves in self.baseline_val_losses.items():
            found += baseline_notes(curves, f"at lr {lr:g} " if len(self.baseline_val_losses) > 1 else "")
        diverged = sum(final.diverged_at is not None for final in self.finals)
        if diverged and self.judged_on == "loss":
            found.append(
                f"{diverged} of {len(self.rows)} runs diverged (loss NaN or infinite); they are left out of the loss "
                "means and of the paired tests, and a config with one cannot be called better"
            )
        elif diverged:
            found.append(
                f"{diverged} of {len(self.rows)} runs diverged (loss NaN or infinite); they count as 0 accuracy"
            )
        return found + _one_seed_note(self.seeds)


def _validation_rank(row: PairedResult) -> tuple[bool, bool, float]:
    """Sort key of the choice on validation loss: no diverged seed first, then a validation loss, lowest first."""
    missing = math.isnan(row.val_loss_mean)
    return row.diverged > 0, missing, 0.0 if missing else row.val_loss_mean


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
