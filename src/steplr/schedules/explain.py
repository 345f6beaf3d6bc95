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
:data:`_CHUNK` steps, so memory stays bounded whatever the run's length. Intervals are kept as those pieces and
recomputed when read (:class:`Intervals`). A property test checks every plan against the schedule evaluated at
every step; ``benchmarks/bench_explain.py`` measures time and memory at :data:`MAX_STEPS` (numbers in
``benchmarks/RESULTS.md``).

May import numpy and steplr's schedules, _checks and units modules; never torch or matplotlib.
"""

from __future__ import annotations

import bisect
import math
import numbers
import os
import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from collections.abc import Sequence as SequenceABC
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, overload

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import require_steps
from steplr.schedules.durations import check_positive_int
from steplr.schedules.kinds import (
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
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
_CHUNK = 1 << 18  # steps evaluated at once where the rate changes every step (~25 MB of temporaries for cosine)
_WORKERS = min(2, os.cpu_count() or 1)  # threads evaluating chunks: each more holds ~25 MB and gains little
_AHEAD = _WORKERS + 1  # chunks evaluated or in evaluation before the walk reads them
_EXPLICIT = 256  # decays evaluated one by one where the bisection cannot tell that neighbouring rates differ
# base * gamma**k rounded once, for normal floats: neighbours differ by a factor gamma, so by more than one ulp
# (2**-52 of the larger) whenever |1 - gamma| (or 1 - 1/gamma) exceeds 2**-52; 2**-50 leaves room for the
# 128-bit truncation in steplr.schedules._exact.
_RATIO = 2.0**-50
# A cosine or warm-up step that changes the rate by more than this share of its largest rate changes the computed
# rate too, and in the same direction (their evaluation errors are a few ulps, 2**-52 each): see _strict_zones.
_MARGIN = 2.0**-42
_ZONED = 4096  # shorter cosine half periods are evaluated step by step (their turning points are most of them)
_PERIODIC = 1 << 16  # cosines of t_max up to this, over two periods or more: one period evaluated, then repeated


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


def _check_finite(view: _View) -> None:
    bad = view.first_nonfinite()
    if bad is not None:
        raise SteplrValueError(
            f"the learning rate overflows to {view.value(bad)} at step {view.run_start(bad)}: lower base_lr or gamma"
        )


# --- the run as items: stretches of runs (maximal steps of one rate) that are small, proved monotone, or chunks ---


class _Low(NamedTuple):
    """The runs at or below the floor among an item's runs from some index on."""

    first: int | None  # index of the first low run
    steps: int  # steps in low runs
    stretches: int  # maximal groups of consecutive low runs
    starts_low: bool  # the first run looked at is low
    ends_low: bool  # the item's last run is low


class _View(ABC):
    """Runs ``0..n-1`` of one stretch of the run, in order; a run is a maximal set of steps with one rate."""

    n: int

    def materialize(self) -> _View:
        return self

    @abstractmethod
    def run_start(self, i: int) -> int: ...

    @abstractmethod
    def run_end(self, i: int) -> int:
        """The last step (inclusive) of run ``i``."""

    @abstractmethod
    def value(self, i: int) -> float: ...

    @abstractmethod
    def decays(self) -> int:
        """How many runs have a lower rate than the run before them."""

    @abstractmethod
    def peak(self) -> tuple[int, float]:
        """The first run with the highest rate, and that rate."""

    @abstractmethod
    def low(self, i0: int, floor: float) -> _Low: ...

    @abstractmethod
    def max_from(self, i: int) -> float: ...

    @abstractmethod
    def nonzero_from(self, i: int) -> bool: ...

    @abstractmethod
    def first_nonfinite(self) -> int | None: ...

    @abstractmethod
    def kept(self, edges: NDArray[np.int64]) -> NDArray[np.int64]:
        """Indices of the runs :func:`lr_profile` draws, for buckets ``[edges[i], edges[i + 1])``."""


class _Runs(_View):
    """Runs listed one by one: run ``i`` starts at ``starts[i]`` with rate ``values[i]``; the last ends at
    ``end - 1``."""

    def __init__(self, starts: NDArray[np.int64], values: NDArray[np.float64], end: int) -> None:
        self.starts, self.values, self.end = starts, values, end
        self.n = len(starts)

    @classmethod
    def merged(cls, starts: NDArray[np.int64], values: NDArray[np.float64], end: int) -> _Runs:
        """Runs from pieces, neighbours of the same rate joined."""
        keep = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        return cls(starts[keep], values[keep], end)

    def run_start(self, i: int) -> int:
        return int(self.starts[i])

    def run_end(self, i: int) -> int:
        return int(self.starts[i + 1]) - 1 if i + 1 < self.n else self.end - 1

    def value(self, i: int) -> float:
        return float(self.values[i])

    def decays(self) -> int:
        return int(np.count_nonzero(self.values[1:] < self.values[:-1]))

    def peak(self) -> tuple[int, float]:
        i = int(np.argmax(self.values))
        return i, float(self.values[i])

    def low(self, i0: int, floor: float) -> _Low:
        mask = self.values[i0:] <= floor
        if not mask.any():
            return _Low(None, 0, 0, False, False)
        lengths = np.diff(np.append(self.starts[i0:], self.end))
        stretches = int(mask[0]) + int(np.count_nonzero(mask[1:] & ~mask[:-1]))
        return _Low(i0 + int(np.argmax(mask)), int(lengths[mask].sum()), stretches, bool(mask[0]), bool(mask[-1]))

    def max_from(self, i: int) -> float:
        return float(self.values[i:].max())

    def nonzero_from(self, i: int) -> bool:
        return bool(self.values[i:].any())

    def first_nonfinite(self) -> int | None:
        bad = np.flatnonzero(~np.isfinite(self.values))
        return int(bad[0]) if bad.size else None

    def kept(self, edges: NDArray[np.int64]) -> NDArray[np.int64]:
        bucket = np.searchsorted(edges, self.starts, side="right")
        new = np.r_[True, bucket[1:] != bucket[:-1]]
        firsts = np.flatnonzero(new)
        lasts = np.append(firsts[1:] - 1, self.n - 1)
        group = np.cumsum(new) - 1
        found = [firsts, lasts, np.flatnonzero((lasts - firsts)[group] < 4)]
        for reduce in (np.minimum, np.maximum):
            hits = np.flatnonzero(self.values == reduce.reduceat(self.values, firsts)[group])
            found.append(hits[np.r_[True, group[hits][1:] != group[hits][:-1]]])  # the first hit of each bucket
        return np.unique(np.concatenate(found))


@dataclass(frozen=True)
class _Piece:
    """Steps ``[start, end)`` of the run, where the rate is ``schedule``'s at local step ``t - offset``."""

    schedule: Schedule
    offset: int
    start: int
    end: int


@dataclass(frozen=True)
class _Dense:
    """Steps ``[start, end)`` of a piece whose rate may change at every step: evaluated when read."""

    piece: _Piece
    base_lr: float
    start: int
    end: int

    def materialize(self) -> _Runs:
        steps = np.arange(self.start - self.piece.offset, self.end - self.piece.offset, dtype=np.int64)
        values = np.asarray(self.piece.schedule.lr(self.base_lr, steps), dtype=np.float64)
        change = np.empty(values.size, dtype=bool)
        change[0] = True
        np.not_equal(values[1:], values[:-1], out=change[1:])
        if change.all():  # a cosine: every step its own run
            return _Runs(steps + self.piece.offset, values, self.end)
        keep = np.flatnonzero(change)
        return _Runs(keep + self.start, values[keep], self.end)


class _Blocks:
    """A piece whose rate is ``base_lr * gamma ** k`` with ``k`` one higher in each block (step decay, multi-step,
    exponential; a constant is one block): block ``j`` has ``k0 + j`` decays and starts where the ``k0 + j``-th
    decay does, in closed form. Rates are monotone in ``j``, which the bisection in :meth:`items` relies on."""

    def __init__(self, piece: _Piece, base_lr: float) -> None:
        self.piece, self.base_lr = piece, base_lr
        schedule = piece.schedule
        first, last = piece.start - piece.offset, piece.end - 1 - piece.offset
        self.gamma, self.k0, self.n = 1.0, 0, 1
        if isinstance(schedule, (StepDecay, MultiStep, Exponential)):
            self.gamma = float(schedule.gamma)
            self.k0 = int(schedule.decays(first))
            self.n = int(schedule.decays(last)) - self.k0 + 1
        if isinstance(schedule, MultiStep):
            self._milestones = np.asarray([0, *schedule.milestones], dtype=np.int64)

    def firsts(self, j: NDArray[np.int64]) -> NDArray[np.int64]:
        """The first step (absolute) of each block ``j``; ``j == n`` gives the piece's end."""
        k = self.k0 + np.asarray(j, dtype=np.int64)
        schedule = self.piece.schedule
        if isinstance(schedule, StepDecay):
            local = k * int(require_steps(schedule.step_size, "step_size"))
        elif isinstance(schedule, Exponential):
            local = k
        elif isinstance(schedule, MultiStep):
            local = self._milestones[np.minimum(k, len(self._milestones) - 1)]
        else:
            local = np.zeros_like(k)
        first = np.maximum(local + self.piece.offset, self.piece.start)
        return np.where(k >= self.k0 + self.n, self.piece.end, first)

    def first(self, j: int) -> int:
        return int(self.firsts(np.asarray(j))[()])

    def values(self, j: NDArray[np.int64]) -> NDArray[np.float64]:
        local = self.firsts(j) - self.piece.offset
        return np.asarray(self.piece.schedule.lr(self.base_lr, local), dtype=np.float64)

    def value(self, j: int) -> float:
        return float(self.piece.schedule.lr(self.base_lr, self.first(j) - self.piece.offset))

    def block_at(self, steps: NDArray[np.int64]) -> NDArray[np.int64]:
        schedule = self.piece.schedule
        if isinstance(schedule, (StepDecay, MultiStep, Exponential)):
            return np.asarray(schedule.decays(steps - self.piece.offset), dtype=np.int64) - self.k0
        return np.zeros_like(steps)

    def items(self) -> Iterator[_View]:
        yield from self._split(0, self.n - 1, self.value(0), self.value(self.n - 1))

    def _split(self, ja: int, jb: int, va: float, vb: float) -> Iterator[_View]:
        if va == vb:  # monotone: every block between has this rate too
            yield _Runs(np.array([self.first(ja)]), np.array([va]), self.first(jb + 1))
        elif self._strict(va, vb):
            yield _Monotone(self, ja, jb, va, vb)
        elif jb - ja < _EXPLICIT:
            j = np.arange(ja, jb + 1, dtype=np.int64)
            yield _Runs.merged(self.firsts(j), self.values(j), self.first(jb + 1))
        else:
            mid = (ja + jb) // 2
            yield from self._split(ja, mid, va, self.value(mid))
            yield from self._split(mid + 1, jb, self.value(mid + 1), vb)

    def _strict(self, va: float, vb: float) -> bool:
        """Whether all rates from ``va`` to ``vb`` differ from their neighbours: normal floats, gamma far from 1."""
        if not (np.isfinite(va) and np.isfinite(vb) and min(abs(va), abs(vb)) >= sys.float_info.min):
            return False
        return 1 - self.gamma >= _RATIO if self.gamma < 1 else 1 - 1 / self.gamma >= _RATIO


class _Ordered(Protocol):
    """Consecutive blocks of steps with one rate each (:class:`_Blocks`, :class:`_Steps`)."""

    def first(self, j: int) -> int: ...

    def value(self, j: int) -> float: ...

    def block_at(self, steps: NDArray[np.int64]) -> NDArray[np.int64]: ...


class _Steps:
    """Steps ``[start, end)`` of a piece, each step a block: a stretch of a cosine or a warm-up ramp whose
    consecutive rates provably differ (:func:`_strict_zones`)."""

    def __init__(self, piece: _Piece, base_lr: float, start: int, end: int) -> None:
        self.piece, self.base_lr, self.start, self.end = piece, base_lr, start, end

    def first(self, j: int) -> int:
        return min(self.start + j, self.end)

    def value(self, j: int) -> float:
        return float(self.piece.schedule.lr(self.base_lr, self.start + j - self.piece.offset))

    def block_at(self, steps: NDArray[np.int64]) -> NDArray[np.int64]:
        return steps - self.start


class _Monotone(_View):
    """Blocks ``ja..jb``, each its own run, rates strictly falling or rising (proved, not seen): what the plan
    needs is read off the two ends and found by binary search, so millions of decays cost a few evaluations."""

    def __init__(self, blocks: _Ordered, ja: int, jb: int, va: float, vb: float) -> None:
        self.blocks, self.ja, self.jb, self.va, self.vb = blocks, ja, jb, va, vb
        self.n = jb - ja + 1
        self.falling = vb < va
        self.end = blocks.first(jb + 1)

    def run_start(self, i: int) -> int:
        return self.blocks.first(self.ja + i)

    def run_end(self, i: int) -> int:
        return self.blocks.first(self.ja + i + 1) - 1

    def value(self, i: int) -> float:
        return self.va if i == 0 else self.vb if i == self.n - 1 else self.blocks.value(self.ja + i)

    def decays(self) -> int:
        return self.n - 1 if self.falling else 0

    def peak(self) -> tuple[int, float]:
        return (0, self.va) if self.falling else (self.n - 1, self.vb)

    def low(self, i0: int, floor: float) -> _Low:
        if self.falling:
            if self.vb > floor:
                return _Low(None, 0, 0, False, False)
            lo, hi = i0, self.n - 1  # the first run at or below the floor
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if self.value(mid) <= floor else (mid + 1, hi)
            return _Low(lo, self.end - self.run_start(lo), 1, lo == i0, True)
        if self.value(i0) > floor:
            return _Low(None, 0, 0, False, False)
        lo, hi = i0, self.n - 1  # the last run at or below the floor
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.value(mid) <= floor else (lo, mid - 1)
        return _Low(i0, self.run_end(lo) + 1 - self.run_start(i0), 1, True, lo == self.n - 1)

    def max_from(self, i: int) -> float:
        return self.value(i) if self.falling else self.vb

    def nonzero_from(self, i: int) -> bool:
        return self.value(i) != 0 or self.vb != 0  # monotone: all zero only if both ends are

    def first_nonfinite(self) -> int | None:
        return None

    def kept(self, edges: NDArray[np.int64]) -> NDArray[np.int64]:
        start = self.run_start(0)
        lo, hi = np.clip(edges[:-1], start, self.end), np.clip(edges[1:], start, self.end)
        inside = lo < hi
        first = self.blocks.block_at(lo[inside]) - self.ja
        last = self.blocks.block_at(hi[inside] - 1) - self.ja
        # Monotone: the lowest and highest runs starting in a bucket are its last one and the first one (or the
        # next, when the first began in the bucket before); up to four are all kept.
        found = [last] + [(first + d)[first + d <= last] for d in range(4)]
        return np.unique(np.concatenate(found))


class _Periodic(_View):
    """``count`` copies of one period's runs, back to back: a cosine repeats exactly every ``2 * t_max`` steps (its
    step is reduced modulo the period in integers before anything else), so one period tells the rest. The first
    and last runs of the period differ, so no run joins two periods."""

    def __init__(self, period: _Runs, count: int) -> None:
        self.period, self.count = period, count
        self.start = period.run_start(0)
        self.length = period.end - self.start
        self.m = period.n
        self.n = self.m * count

    def run_start(self, i: int) -> int:
        copy, k = divmod(i, self.m)
        return self.period.run_start(k) + copy * self.length

    def run_end(self, i: int) -> int:
        copy, k = divmod(i, self.m)
        return self.period.run_end(k) + copy * self.length

    def value(self, i: int) -> float:
        return self.period.value(i % self.m)

    def decays(self) -> int:
        across = int(self.period.value(0) < self.period.value(self.m - 1))  # from one copy into the next
        return self.count * self.period.decays() + (self.count - 1) * across

    def peak(self) -> tuple[int, float]:
        return self.period.peak()  # its first copy comes first

    def low(self, i0: int, floor: float) -> _Low:
        copy, k = divmod(i0, self.m)
        head, whole = self.period.low(k, floor), self.period.low(0, floor)
        later = self.count - copy - 1 if whole.first is not None else 0  # copies after the one i0 is in
        if head.first is None and not later:
            return _Low(None, 0, 0, False, False)
        first = copy * self.m + head.first if head.first is not None else (copy + 1) * self.m + int(whole.first or 0)
        joined = later * int(whole.starts_low and whole.ends_low)  # a stretch through the end of a copy goes on
        return _Low(first, head.steps + later * whole.steps, head.stretches + later * whole.stretches - joined,
                    head.starts_low, head.ends_low)

    def max_from(self, i: int) -> float:
        copy, k = divmod(i, self.m)
        rest = self.period.max_from(k)
        return max(rest, self.period.max_from(0)) if copy < self.count - 1 else rest

    def nonzero_from(self, i: int) -> bool:
        copy, k = divmod(i, self.m)
        return self.period.nonzero_from(k) or (copy < self.count - 1 and self.period.nonzero_from(0))

    def first_nonfinite(self) -> int | None:
        return self.period.first_nonfinite()

    def _run_at(self, step: int) -> int:
        copy, into = divmod(step - self.start, self.length)
        return copy * self.m + int(np.searchsorted(self.period.starts, self.start + into, side="right")) - 1

    def kept(self, edges: NDArray[np.int64]) -> NDArray[np.int64]:
        end = self.start + self.count * self.length
        lo, hi = np.clip(edges[:-1], self.start, end), np.clip(edges[1:], self.start, end)
        lowest, highest = int(np.argmin(self.period.values)), int(np.argmax(self.period.values))
        found: list[int] = []
        for a, b in zip(lo[lo < hi].tolist(), hi[lo < hi].tolist()):
            first, last = self._run_at(a), self._run_at(b - 1)
            found += [first, min(first + 1, last), last]
            if last - first + 1 >= self.m:  # a whole period of runs: its lowest and highest are in the bucket
                found += [first + (lowest - first) % self.m, first + (highest - first) % self.m]
            else:
                runs = np.arange(first, last + 1)
                values = self.period.values[runs % self.m]
                found += [int(runs[np.argmin(values)]), int(runs[np.argmax(values)])]
                found += runs[: 4].tolist() if len(runs) <= 4 else []
        return np.unique(np.asarray(found, dtype=np.int64))


def _pieces(schedule: Schedule, offset: int, start: int, end: int) -> Iterator[_Piece]:
    """The run's steps ``[start, end)`` cut where a :class:`~steplr.schedules.Sequence` hands over."""
    if not isinstance(schedule, Chain):
        yield _Piece(schedule, offset, start, end)
        return
    bounds = [0, *(int(b) for b in schedule.boundaries)]
    for i, inner in enumerate(schedule.schedules):
        lo = offset + bounds[i]
        hi = offset + bounds[i + 1] if i + 1 < len(bounds) else end
        if max(lo, start) < min(hi, end):
            yield from _pieces(inner, lo, max(lo, start), min(hi, end))


def _items(schedule: Schedule, base_lr: float, total: int) -> Iterator[_View | _Dense]:
    """The whole run as items, in order: blocks of decays where the schedule's structure is known, stretches whose
    rates provably change monotonically at every step, and chunks of steps to evaluate for the rest."""
    for piece in _pieces(schedule, 0, 0, total):
        inner = piece.schedule
        if isinstance(inner, (StepDecay, MultiStep, Exponential, Constant)):
            yield from _Blocks(piece, base_lr).items()
            continue
        periodic = _periodic(piece, base_lr)
        if periodic is not None:
            yield from periodic
            continue
        held = piece.end  # a warm-up ramps, then holds the base rate
        if isinstance(inner, LinearWarmup):
            ramp_end = piece.offset + int(require_steps(inner.warmup_steps, "warmup_steps"))
            held = min(piece.end, max(piece.start, ramp_end))
        at = piece.start
        for start, end in _strict_zones(piece, base_lr, held):
            steps = _Steps(piece, base_lr, start, end)
            first, last = steps.value(0), steps.value(end - start - 1)
            if first == last or not np.isfinite(first) or not np.isfinite(last):
                continue  # not what the bounds promised: evaluate the zone like any other steps
            yield from _dense(piece, base_lr, at, start)
            yield _Monotone(steps, 0, end - start - 1, first, last)
            at = end
        yield from _dense(piece, base_lr, at, held)
        if held < piece.end:
            yield from _Blocks(_Piece(inner, piece.offset, held, piece.end), base_lr).items()


def _periodic(piece: _Piece, base_lr: float) -> list[_View | _Dense] | None:
    """A cosine of period at most 2 * :data:`_PERIODIC` steps over at least two periods: the steps before its
    first whole period, one period evaluated and repeated, the steps after. None for anything else."""
    schedule = piece.schedule
    if not isinstance(schedule, Cosine):
        return None
    length = 2 * int(require_steps(schedule.t_max, "t_max"))
    first = -(-(piece.start - piece.offset) // length) * length + piece.offset  # the first period's first step
    count = (piece.end - first) // length
    if length > 2 * _PERIODIC or count < 2:
        return None
    period = _Dense(piece, base_lr, first, first + length).materialize()
    if period.values[0] == period.values[-1]:
        return None  # a run would join two periods: no shortcut
    after = first + count * length
    head, tail = _dense(piece, base_lr, piece.start, first), _dense(piece, base_lr, after, piece.end)
    return [*head, _Periodic(period, count), *tail]


def _dense(piece: _Piece, base_lr: float, start: int, end: int) -> Iterator[_Dense]:
    for chunk in range(start, end, _CHUNK):
        yield _Dense(piece, base_lr, chunk, min(chunk + _CHUNK, end))


def _strict_zones(piece: _Piece, base_lr: float, end: int) -> list[tuple[int, int]]:
    """Stretches ``[start, stop)`` of steps below ``end`` where a cosine or a warm-up ramp changes monotonically
    by more than :data:`_MARGIN` of its largest rate at every step: more than their evaluation error (cosine is
    tested within 8 ulps of the exact value, the linear ramp rounds 3 times), so the computed rates also differ
    and run one way there. Near a cosine's turning points the change is smaller: those steps are evaluated."""
    schedule, offset = piece.schedule, piece.offset
    first, stop = piece.start - offset, end - offset  # local steps
    if isinstance(schedule, LinearWarmup):
        # each step adds base_lr * (1 - start_factor) / warmup_steps; the largest rate is base_lr
        rise = (1 - float(schedule.start_factor)) / int(require_steps(schedule.warmup_steps, "warmup_steps"))
        strict = rise > _MARGIN and base_lr >= sys.float_info.min and stop - first >= 2
        return [(piece.start, end)] if strict else []
    if not isinstance(schedule, Cosine):
        return []
    t_max, eta_min = int(require_steps(schedule.t_max, "t_max")), float(schedule.eta_min)
    top = max(base_lr, eta_min)
    if t_max < _ZONED or base_lr == eta_min or top < sys.float_info.min:
        return []
    # Steps u and u + 1 of a half period differ by |base_lr - eta_min| sin(pi / 2T) sin(pi (2u + 1) / 2T), which
    # is at least _MARGIN * top for u from ``edge`` to T - edge - 2.
    bound = _MARGIN * top / (abs(base_lr - eta_min) * math.sin(math.pi / (2 * t_max)))
    if bound >= 1:
        return []
    edge = math.ceil(t_max * math.asin(bound) / math.pi) + 2
    zones = []
    for half in range(first // t_max, (stop - 1) // t_max + 1):
        start, end_ = max(first, half * t_max + edge), min(stop, (half + 1) * t_max - edge)
        if end_ - start >= 2:
            zones.append((start + offset, end_ + offset))
    return zones


def _evaluated(items: Iterator[_View | _Dense]) -> Iterator[tuple[_View | _Dense, _View]]:
    """Each item with its view, in order. Chunks are evaluated ahead on worker threads (NumPy releases the GIL
    in its loops), at most :data:`_AHEAD` at a time, so memory stays bounded."""
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        pending: deque[tuple[_View | _Dense, Future[_Runs] | _View]] = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(item.materialize) if isinstance(item, _Dense) else item))
                while len(pending) > _AHEAD:
                    yield _ready(pending.popleft())
            while pending:
                yield _ready(pending.popleft())
        finally:
            for _, waiting in pending:
                if isinstance(waiting, Future):
                    waiting.cancel()


def _ready(pair: tuple[_View | _Dense, Future[_Runs] | _View]) -> tuple[_View | _Dense, _View]:
    item, waiting = pair
    return item, waiting.result() if isinstance(waiting, Future) else waiting


@dataclass
class _Entry:
    """An item that holds intervals of the plan: index of its first one, whether its first run continues the
    interval before it (``skip``), and the last step of its last interval (later items may continue it)."""

    item: _View | _Dense
    first_index: int
    skip: int
    last_step: int


@dataclass
class _LowTally:
    """From the first step of the highest rate on: the steps at or below the floor."""

    first: int | None = None
    value: float = 0.0
    steps: int = 0
    stretches: int = 0
    ends_low: bool = False
    max_after: float = -np.inf  # of every rate from ``first`` on
    nonzero_after: bool = False


class _Walk:
    """One pass over the items in order: interval count, decays, the last rate, the low-LR tally, entries."""

    def __init__(self, floor: float) -> None:
        self.floor = floor
        self.count = 0
        self.decays = 0
        self.last: float | None = None
        self.peak = -np.inf
        self.low = _LowTally()
        self.entries: list[_Entry] = []

    def add(self, item: _View | _Dense, view: _View) -> None:
        _check_finite(view)
        first = view.value(0)
        merged = self.last is not None and first == self.last
        if self.last is not None and first < self.last:
            self.decays += 1
        if merged:
            self.entries[-1].last_step = view.run_end(0)
        if view.n > merged:
            self.entries.append(_Entry(item, self.count, int(merged), view.run_end(view.n - 1)))
        self.count += view.n - merged
        self.decays += view.decays()
        i, highest = view.peak()
        if highest > self.peak:  # the low-LR tally counts from the first step of the highest rate on
            self.peak, self.low = highest, _LowTally()
            self._tally(view, i)
        else:
            self._tally(view, 0)
        self.last = view.value(view.n - 1)

    def _tally(self, view: _View, i0: int) -> None:
        part, low = view.low(i0, self.floor), self.low
        if low.first is not None:
            low.max_after = max(low.max_after, view.max_from(i0))
            low.nonzero_after = low.nonzero_after or view.nonzero_from(i0)
        elif part.first is not None:
            low.first, low.value = view.run_start(part.first), view.value(part.first)
            low.max_after, low.nonzero_after = view.max_from(part.first), view.nonzero_from(part.first)
        low.steps += part.steps
        low.stretches += part.stretches - int(low.ends_low and part.starts_low)
        low.ends_low = part.ends_low


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
    warning = _low_lr_warning(plan, low)
    if warning:
        found.append(warning)
    return found


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
    return (
        f"the learning rate {lead} at {where} and rises again: {amount} trains at or below 1/100 of its start"
        + (f", in {low.stretches} stretches" if low.stretches > 1 else "")
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
    """Every gamma in a schedule's parameters, nested schedules included."""
    found = [params["gamma"]] if isinstance(params.get("gamma"), float) else []
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
    lines = [f"{label}, {plan.epochs} epochs" + (f" x {plan.steps_per_epoch} steps" if plan.steps_per_epoch > 1 else "")]
    count = len(plan.intervals)
    shown = plan.intervals[:] if count <= _MAX_LINES else plan.intervals[:10] + plan.intervals[-5:]
    rows = [f"  {_span(plan, i.first_step, i.last_step)}: lr {i.lr:.6g}" for i in shown]
    if count > _MAX_LINES:
        rows = rows[:10] + [f"  ... {count - 15} more intervals ..."] + rows[10:]
    lines += rows
    lines.append(f"{plan.decays} decay{'s' if plan.decays != 1 else ''}; final lr {plan.final_lr:.6g}")
    lines += [f"warning: {w}" for w in plan.warnings]
    return lines
