"""The plan of a schedule over a run: constant intervals, decays, final LR, and warnings for common mistakes.

>>> plan = explain(StepDecay(10, 0.5), base_lr=0.1, epochs=40)
>>> [(i.first_epoch, i.last_epoch, i.lr) for i in plan.intervals]
[(0, 9, 0.1), (10, 19, 0.05), (20, 29, 0.025), (30, 39, 0.0125)]
>>> plan.decays, plan.final_lr, plan.warnings
(3, 0.0125, [])

A plan is computed from the schedule's structure, not step by step. Step, multi-step and exponential decay change
only at their decay steps (``k * step_size``, the milestones, every step), and a stretch of decays whose rates
provably all differ is counted from its two ends and binary searches, never evaluated decay by decay. A cosine or a
warm-up ramp changes at every step, but monotonically, and mostly by far more than its rounding error: such
stretches are handled the same way. A cosine of short period repeats exactly: one period is evaluated and stands
for all. What is left (a cosine's turning points, schedules steplr does not know) is evaluated in chunks of
``_CHUNK`` steps, so memory stays bounded whatever the run's length. That machinery is in
:mod:`steplr.schedules._segments`. Intervals are kept as those pieces and recomputed when read (:class:`Intervals`).
A property test checks every plan against the schedule evaluated at every step; ``benchmarks/bench_explain.py``
measures time and memory at :data:`MAX_STEPS` (numbers in ``benchmarks/RESULTS.md``).

May import numpy and steplr's schedules, _checks and units modules; never torch or matplotlib.
"""

from __future__ import annotations

import bisect
import numbers
from collections.abc import Iterator
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import require_steps
from steplr.schedules._segments import _check_finite, _Entry, _evaluated, _items, _LowTally, _Runs, _View, _Walk
from steplr.schedules.cycles import Cyclic, OneCycle
from steplr.schedules.durations import check_positive_int
from steplr.schedules.kinds import (
    Constant,
    MultiStep,
    Schedule,
    StepDecay,
)
from steplr.schedules.kinds import Sequence as Chain

__all__ = [
    "Interval",
    "Intervals",
    "Plan",
    "explain",
    "lr_profile",
    "format_plan",
    "FLOOR_RATIO",
    "JSON_INTERVALS",
    "MAX_STEPS",
]

MAX_STEPS = 20_000_000  # the longest run explained; its cost is in benchmarks/RESULTS.md ("explain")
FLOOR_RATIO = 0.01  # an LR at or below 1/100 of the start has stopped training in practice
JSON_INTERVALS = 1000  # longer plans list their first and last JSON_INTERVALS // 2 intervals in as_dict()
_MAX_LINES = 24  # longer plans show their head and tail
_TOLERANCE = 1e-9  # relative slack for "at or below" comparisons of rounded LRs


@dataclass(frozen=True)
class Interval:
    """Steps ``first_step..last_step`` (inclusive) all use learning rate ``lr``."""

    first_step: int
    last_step: int
    lr: float
    steps_per_epoch: int

    @property
    def first_epoch(self) -> float | int:
        return _epoch(self.first_step, self.steps_per_epoch)

    @property
    def last_epoch(self) -> float | int:
        return _epoch(self.last_step, self.steps_per_epoch)


def _epoch(step: int, steps_per_epoch: int) -> float | int:
    return step if steps_per_epoch == 1 else step / steps_per_epoch


class Intervals(SequenceABC[Interval]):
    """The plan's constant intervals in order, as a read-only sequence (``len``, indexing, slices, iteration).

    A cosine over millions of steps has millions of intervals: they are not held, but recomputed from the
    schedule, a chunk of steps at a time, when read. Reading the head and the tail is cheap; iterating over all of
    them costs what evaluating the schedule at every step does.
    """

    def __init__(self, entries: list[_Entry], count: int, steps_per_epoch: int) -> None:
        self._entries = entries
        self._firsts = [e.first_index for e in entries]
        self._count = count
        self._steps_per_epoch = steps_per_epoch
        self._cached: tuple[int, _View] | None = None  # the last chunk read: reading in order evaluates each once

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Interval: ...

    @overload
    def __getitem__(self, index: slice) -> list[Interval]: ...

    def __getitem__(self, index: int | slice) -> Interval | list[Interval]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError(f"interval index {index} out of range for {self._count} intervals")
        e = bisect.bisect_right(self._firsts, position) - 1
        entry = self._entries[e]
        return self._interval(entry, self._view(e), position - entry.first_index + entry.skip)

    def __iter__(self) -> Iterator[Interval]:
        for e, entry in enumerate(self._entries):
            view = self._view(e)
            for local in range(entry.skip, view.n):
                yield self._interval(entry, view, local)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SequenceABC):
            return NotImplemented
        return len(other) == len(self) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{self._count} intervals>"

    def _view(self, e: int) -> _View:
        if self._cached is None or self._cached[0] != e:
            self._cached = (e, self._entries[e].item.materialize())
        return self._cached[1]

    def _interval(self, entry: _Entry, view: _View, local: int) -> Interval:
        last = entry.last_step if local == view.n - 1 else view.run_end(local)
        return Interval(view.run_start(local), last, view.value(local), self._steps_per_epoch)


@dataclass
class Plan:
    """What a schedule does over ``epochs`` epochs of ``steps_per_epoch`` scheduler steps each."""

    schedule: Schedule
    base_lr: float
    epochs: int
    steps_per_epoch: int
    intervals: Intervals
    decays: int
    final_lr: float
    warnings: list[str] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``. A plan of more than :data:`JSON_INTERVALS` intervals lists only the first
        and the last ``JSON_INTERVALS // 2``; ``interval_count`` is always the full count and
        ``intervals_omitted`` the number left out between them (0 when the list is complete)."""
        count = len(self.intervals)
        half = JSON_INTERVALS // 2
        shown = list(self.intervals) if count <= JSON_INTERVALS else self.intervals[:half] + self.intervals[-half:]
        return {
            "schedule": self.schedule.params(),
            "base_lr": self.base_lr,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "intervals": [
                {
                    "first_step": i.first_step,
                    "last_step": i.last_step,
                    "first_epoch": i.first_epoch,
                    "last_epoch": i.last_epoch,
                    "lr": i.lr,
                }
                for i in shown
            ],
            "interval_count": count,
            "intervals_omitted": count - len(shown),
            "decays": self.decays,
            "final_lr": self.final_lr,
            "warnings": self.warnings,
        }


def explain(schedule: Schedule, base_lr: float, epochs: int, steps_per_epoch: int = 1) -> Plan:
    """Describe what ``schedule`` does over the run, from its structure (see the module docstring).

    Args:
        schedule: the schedule (scalar parameters); epoch durations are resolved with ``steps_per_epoch``.
        base_lr: the initial learning rate, > 0.
        epochs: the run's length in epochs, > 0.
        steps_per_epoch: scheduler steps per epoch (1 when the scheduler is stepped per epoch).

    Raises:
        ValueError, TypeError: for non-positive ``base_lr``, ``epochs`` or ``steps_per_epoch``, a run longer than
            :data:`MAX_STEPS` steps, array parameters, or a learning rate that overflows.
    """
    resolved, base_lr, epochs, steps_per_epoch = _checked(schedule, base_lr, epochs, steps_per_epoch)
    total = epochs * steps_per_epoch
    walk = _Walk(base_lr * FLOOR_RATIO * (1 + _TOLERANCE))
    for item, view in _evaluated(_items(resolved, base_lr, total)):
        walk.add(item, view)
    assert walk.last is not None  # every run has a step
    intervals = Intervals(walk.entries, walk.count, steps_per_epoch)
    plan = Plan(resolved, base_lr, epochs, steps_per_epoch, intervals, walk.decays, walk.last)
    plan.warnings = _warnings(plan, walk.low)
    return plan


def lr_profile(
    schedule: Schedule, base_lr: float, epochs: int, steps_per_epoch: int = 1, buckets: int = 750
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Change points to draw the run's learning rate with: ``(first_steps, lrs)``, at most ``4 * buckets``.

    The run is cut into ``buckets`` equal stretches of steps; from each, every interval that starts in it is kept
    when there are at most three, otherwise the first, the last, the lowest and the highest. Each kept point is an
    interval's exact first step and rate, so drawn "steps-post" (each rate held until the next point) the figure
    shows the real steps wherever they are wide enough to see, and the full range of a curve that changes faster
    than the figure can resolve. Validation and errors as in :func:`explain`.
    """
    resolved, base_lr, epochs, steps_per_epoch = _checked(schedule, base_lr, epochs, steps_per_epoch)
    buckets = check_positive_int(buckets, "buckets")
    total = epochs * steps_per_epoch
    edges = np.unique(np.linspace(0, total, buckets + 1).round().astype(np.int64))
    starts: list[NDArray[np.int64]] = []
    values: list[NDArray[np.float64]] = []
    for _, view in _evaluated(_items(resolved, base_lr, total)):
        _check_finite(view)
        kept = view.kept(edges)
        starts.append(np.array([view.run_start(int(i)) for i in kept], dtype=np.int64))
        values.append(np.array([view.value(int(i)) for i in kept], dtype=np.float64))
    # Points that continue the rate before them (where one item takes over from another) are no change points.
    points = _Runs.merged(np.concatenate(starts), np.concatenate(values), total)
    kept = points.kept(edges)  # each item kept up to four a bucket; now the whole run does
    return points.starts[kept], points.values[kept]


def _checked(schedule: Schedule, base_lr: float, epochs: int, steps_per_epoch: int) -> tuple[Schedule, float, int, int]:
    epochs = check_positive_int(epochs, "epochs")
    steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch")
    if not isinstance(schedule, Schedule):
        raise SteplrTypeError(f"schedule must be a steplr Schedule, got {schedule!r}")
    if isinstance(base_lr, bool) or not isinstance(base_lr, numbers.Real) or not base_lr > 0:
        raise SteplrValueError(f"base_lr must be a number > 0, got {base_lr!r}")
    base_lr = float(base_lr)
    if not np.isfinite(base_lr):
        raise SteplrValueError(f"base_lr must be finite, got {base_lr!r}")
    total = epochs * steps_per_epoch
    if total > MAX_STEPS:
        raise SteplrValueError(
            f"epochs x steps_per_epoch = {total:,} steps is more than steplr tabulates ({MAX_STEPS:,}); "
            "describe the run in epochs (steps_per_epoch=1) or fewer iterations"
        )
    if not schedule.is_scalar:
        raise SteplrValueError(f"explain takes one schedule, not a table of them (array parameters): {schedule!r}")
    resolved = schedule.resolve(steps_per_epoch)
    resolved.lr(base_lr, 0)  # raises for a duration still in epochs
    return resolved, base_lr, epochs, steps_per_epoch


# --- warnings ---


def _warnings(plan: Plan, low: _LowTally) -> list[str]:
    found: list[str] = []
    params = plan.schedule.params()
    gamma = params.get("gamma")
    growing = sorted({g for g in _gammas(params) if g > 1})
    if growing:
        found.append(f"gamma {', '.join(f'{g:g}' for g in growing)} > 1: the learning rate grows instead of decaying")
    rising = sorted({e for e in _eta_mins(params) if e > plan.base_lr})
    if rising:
        found.append(
            f"eta_min {', '.join(f'{e:g}' for e in rising)} is above the base lr {plan.base_lr:g}: "
            "the learning rate rises instead of decaying"
        )
    unused = _unused_milestones(plan.schedule, 0, plan.total_steps)
    if unused:
        named = ", ".join(_duration_named(m, plan.steps_per_epoch) for m in unused)
        run = f"the {plan.epochs}-epoch run" + (f" ({plan.total_steps} iterations)" if plan.steps_per_epoch > 1 else "")
        found.append(
            f"milestones {named} are past the end of {run}: they never apply"
            if len(unused) > 1
            else f"milestone {named} is past the end of {run}: it never applies"
        )
    if len(plan.intervals) == 1 and not isinstance(plan.schedule, Constant):
        reason = ""
        if isinstance(plan.schedule, StepDecay):
            step_size = params["step_size"]
            reason = f" (step_size {_in_units(step_size, plan.steps_per_epoch)} >= the run's {plan.epochs} epochs)"
            if gamma == 1.0:
                reason = " (gamma is 1)"
        found.append(f"the learning rate never changes within the run{reason}: this schedule is a constant LR")
    found += _cyclic_warnings(plan.schedule, plan.base_lr)
    short = _short_cycles(plan.schedule, 0, plan.total_steps)
    found += [
        f"total_steps {_in_units(steps, plan.steps_per_epoch)} ends before the run: from "
        f"{_epoch_named(end - 1, plan.steps_per_epoch)} on the rate stays at the cycle's final lr"
        for steps, end in short
    ]
    warning = None if _ends_a_one_cycle(plan.schedule, 0, plan.total_steps, low) else _low_lr_warning(plan, low)
    if warning:
        found.append(warning)
    return found


def _each(schedule: Schedule, offset: int = 0) -> Iterator[tuple[Schedule, int]]:
    """Every schedule in ``schedule`` (nested ones included) with the step of the whole run it starts at."""
    if isinstance(schedule, Chain):
        starts = [0, *(int(b) for b in schedule.boundaries)]
        for start, inner in zip(starts, schedule.schedules):
            yield from _each(inner, offset + start)
    else:
        yield schedule, offset


def _cyclic_warnings(schedule: Schedule, base_lr: float) -> list[str]:
    """A cyclic schedule whose max_lr is below the LR dips instead of rising; exp_range's gamma above 1 grows the
    cycles."""
    found = []
    for inner, _ in _each(schedule):
        if not isinstance(inner, Cyclic):
            continue
        gamma, max_lr = float(inner.gamma), float(inner.max_lr)
        if max_lr < base_lr:
            found.append(
                f"max_lr {max_lr:g} is below the base lr {base_lr:g}: each cycle dips below the LR instead of rising"
            )
        # Another mode ignores gamma, as torch does, without a word: a recipe's decay factor carried over to
        # cyclic would otherwise warn on every run.
        if inner.mode == "exp_range" and gamma > 1.0:
            found.append(f"gamma {gamma:g} > 1: the cycles grow instead of shrinking")
    return found


def _short_cycles(schedule: Schedule, offset: int, total: int) -> list[tuple[int, int]]:
    """Each one-cycle schedule that ends before the run does: its total_steps and the run's step it ends at."""
    found = []
    for inner, start in _each(schedule, offset):
        if isinstance(inner, OneCycle):
            steps = int(require_steps(inner.total_steps, "total_steps"))
            if start + steps < total:
                found.append((steps, start + steps))
    return found


def _ends_a_one_cycle(schedule: Schedule, offset: int, total: int, low: _LowTally) -> bool:
    """Whether the low rates come from the final fall of a one-cycle schedule that lasts to the end of the run:
    there they are the policy's design (final_div_factor), not a mistake to warn about."""
    for inner, start in _each(schedule, offset):
        if isinstance(inner, OneCycle) and low.first is not None and low.first >= start:
            return start + int(require_steps(inner.total_steps, "total_steps")) >= total
    return False


def _unused_milestones(schedule: Schedule, offset: int, total: int) -> list[int]:
    """Milestones (as steps of the whole run) at or after its last step, nested schedules included."""
    if isinstance(schedule, MultiStep):
        steps = [offset + int(require_steps(m, "milestones")) for m in schedule.milestones]
        return [m for m in steps if m >= total]
    if isinstance(schedule, Chain):
        starts = [0, *(int(b) for b in schedule.boundaries)]
        return [m for s, inner in zip(starts, schedule.schedules) for m in _unused_milestones(inner, offset + s, total)]
    return []


def _duration_named(step: int, steps_per_epoch: int) -> str:
    """A step as the command line reads it: ``90ep`` when on an epoch boundary, else ``2300it``."""
    return f"{step // steps_per_epoch}ep" if step % steps_per_epoch == 0 else f"{step}it"


def _low_lr_warning(plan: Plan, low: _LowTally) -> str | None:
    """Say where, and for how much of the run, the LR is at or below the floor; counted, not assumed to stay."""
    if low.first is None:
        return None
    first = low.first
    where = _epoch_named(first, plan.steps_per_epoch)
    stays = low.steps == plan.total_steps - first  # one stretch, from ``first`` to the last step
    if stays and not low.nonzero_after:
        return f"the learning rate reaches 0 at {where}: the rest of the run does not train"
    lead = (
        f"falls to {low.value:.3g} (1/{plan.base_lr / low.value:.0f} of its start or lower)"
        if low.value > 0
        else "reaches 0"
    )
    share = low.steps / plan.total_steps
    amount = f"{'under 1%' if share < 0.005 else f'{share:.0%}'} of the run ({_count(low.steps, plan)})"
    if stays:
        # a periodic cosine sampled coarsely can climb a little within the floor: then "that rate" would be false
        rate = "that rate or lower" if low.max_after <= low.value else "1/100 of its start or lower"
        return f"the learning rate {lead} at {where}, and {amount} trains at {rate}: little learning happens there"
    return f"the learning rate {lead} at {where} and rises again: {amount} trains at or below 1/100 of its start" + (
        f", in {low.stretches} stretches" if low.stretches > 1 else ""
    )


def _epoch_named(step: int, steps_per_epoch: int) -> str:
    """Epochs count from 0 as in the plan lines; the training log counts from 1, so name both."""
    epoch = step // steps_per_epoch
    named = f"epoch {epoch} (the {_ordinal(epoch + 1)} epoch)"
    return named if step % steps_per_epoch == 0 else f"iteration {step}, in {named}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(steps: int, plan: Plan) -> str:
    if plan.steps_per_epoch == 1:
        return f"{steps} of {plan.epochs} epochs"
    return f"{steps} of {plan.total_steps} iterations = {steps / plan.steps_per_epoch:.3g} of {plan.epochs} epochs"


def _gammas(params: dict[str, Any]) -> list[float]:
    """Every decay factor gamma in a schedule's parameters, nested schedules included (cyclic's gamma scales its
    cycles' height instead: :func:`_cyclic_warnings`)."""
    decays = isinstance(params.get("gamma"), float) and params["type"] != "Cyclic"
    found = [params["gamma"]] if decays else []
    for inner in params.get("schedules", []):
        found += _gammas(inner)
    return found


def _eta_mins(params: dict[str, Any]) -> list[float]:
    """Every eta_min in a schedule's parameters, nested schedules included (each sees the same base_lr)."""
    found = [params["eta_min"]] if isinstance(params.get("eta_min"), float) else []
    for inner in params.get("schedules", []):
        found += _eta_mins(inner)
    return found


def _in_units(steps: int, steps_per_epoch: int) -> str:
    if steps_per_epoch == 1:
        return f"{steps} epochs"
    return f"{steps} iterations = {steps / steps_per_epoch:g} epochs"


def _span(plan: Plan, first: int, last: int) -> str:
    spe = plan.steps_per_epoch
    if spe == 1:
        return f"epochs {first}-{last}" if first != last else f"epoch {first}"
    iters = f"iterations {first}-{last}" if first != last else f"iteration {first}"
    if first % spe == 0 and (last + 1) % spe == 0:
        a, b = first // spe, (last + 1) // spe - 1
        return f"{iters} (epochs {a}-{b})" if a != b else f"{iters} (epoch {a})"
    return f"{iters} (epochs {first / spe:.2f} to {(last + 1) / spe:.2f})"


def format_plan(label: str, plan: Plan) -> list[str]:
    """The plan as the lines ``steplr explain`` prints: "epochs 0-9: lr 0.1", ..., decays, warnings."""
    steps = f" x {plan.steps_per_epoch} steps" if plan.steps_per_epoch > 1 else ""
    lines = [f"{label}, {plan.epochs} epochs{steps}"]
    count = len(plan.intervals)
    shown = plan.intervals[:] if count <= _MAX_LINES else plan.intervals[:10] + plan.intervals[-5:]
    rows = [f"  {_span(plan, i.first_step, i.last_step)}: lr {i.lr:.6g}" for i in shown]
    if count > _MAX_LINES:
        rows = [*rows[:10], f"  ... {count - 15} more intervals ...", *rows[10:]]
    lines += rows
    lines.append(f"{plan.decays} decay{'s' if plan.decays != 1 else ''}; final lr {plan.final_lr:.6g}")
    lines += [f"warning: {w}" for w in plan.warnings]
    return lines
