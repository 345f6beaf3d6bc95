"""The machinery behind :func:`steplr.schedules.explain.explain`: the run cut into items (blocks of decays, stretches
proved monotone, a repeated cosine period, chunks to evaluate), their runs of equal rates, and the walk that joins
them into intervals and tallies what the warnings need. Private to ``explain``; see its module docstring for the
method. Imports NumPy and steplr's schedule kinds only.
"""

from __future__ import annotations

import math
import os
import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrValueError
from steplr.schedules._checks import require_steps
from steplr.schedules.cycles import CosineWarmRestarts, Cyclic
from steplr.schedules.kinds import (
    Constant,
    ConstantFactor,
    Cosine,
    Exponential,
    Linear,
    MultiStep,
    Schedule,
    StepDecay,
)
from steplr.schedules.kinds import Sequence as Chain

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
        return _Low(
            first,
            head.steps + later * whole.steps,
            head.stretches + later * whole.stretches - joined,
            head.starts_low,
            head.ends_low,
        )

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
                found += runs[:4].tolist() if len(runs) <= 4 else []
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
        if isinstance(inner, ConstantFactor):  # two constant stretches, split where the factor ends
            cut = min(piece.end, max(piece.start, piece.offset + int(require_steps(inner.total_iters, "total_iters"))))
            for start, end in ((piece.start, cut), (cut, piece.end)):
                if start < end:
                    yield from _Blocks(_Piece(inner, piece.offset, start, end), base_lr).items()
            continue
        periodic = _periodic(piece, base_lr)
        if periodic is not None:
            yield from periodic
            continue
        held = piece.end  # a warm-up (a linear factor) ramps, then holds its last rate
        if isinstance(inner, Linear):
            ramp_end = piece.offset + int(require_steps(inner.total_iters, "total_iters"))
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


def _period(schedule: Schedule) -> int | None:
    """The steps after which the schedule's rates repeat exactly (its step reduced modulo them in integers first),
    or None: a cosine's ``2 * t_max``, equal warm restarts' ``t_0``, a triangular cycle's rise and fall."""
    if isinstance(schedule, Cosine) and not isinstance(schedule.t_max, float):
        return 2 * int(require_steps(schedule.t_max, "t_max"))
    if isinstance(schedule, CosineWarmRestarts) and int(schedule.t_mult) == 1:
        return int(require_steps(schedule.t_0, "t_0"))
    if isinstance(schedule, Cyclic) and schedule.mode == "triangular":
        up, down = schedule._sizes()
        return int(up) + int(down)
    return None


def _periodic(piece: _Piece, base_lr: float) -> list[_View | _Dense] | None:
    """A periodic schedule (:func:`_period`) of period at most 2 * :data:`_PERIODIC` steps over at least two
    periods: the steps before its first whole period, one period evaluated and repeated, the steps after. None
    for anything else."""
    length = _period(piece.schedule)
    if length is None:
        return None
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
    if isinstance(schedule, Linear):
        # each step moves the rate by base_lr * |end_factor - start_factor| / total_iters; the largest is base_lr
        # or less (the factors are at most 1)
        slope = abs(float(schedule.end_factor) - float(schedule.start_factor))
        rise = slope / int(require_steps(schedule.total_iters, "total_iters"))
        strict = rise > _MARGIN and base_lr >= sys.float_info.min and stop - first >= 2
        return [(piece.start, end)] if strict else []
    if not isinstance(schedule, Cosine) or isinstance(schedule.t_max, float):
        return []  # a fractional half period (torch's float T_max): its half periods do not start on steps
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
