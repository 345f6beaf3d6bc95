"""A schedule as a piecewise-constant lookup: the first step of each stretch of equal rates, and that rate.

The Keras and JAX adapters (:mod:`steplr.keras`, :mod:`steplr.optax`) evaluate a schedule inside a compiled graph,
where steplr's exact arithmetic (128-bit powers, integer-reduced cosines) is not available and float32
``gamma ** k`` drifts from the correctly rounded value. So they do not compute: they look up. This module makes the
table they look up in, from the schedule's own ``lr`` (one formula, one place):

- where the rate changes only at known steps (step decay, multi-step, constant, constant factor, and those pieces
  of a :func:`~steplr.schedules.join`), the table holds one entry per decay, not per step;
- elsewhere (exponential, cosine, polynomial, linear ramps, cycles) it holds one entry per step up to the horizon
  ``max_steps``, or up to the step from which the rate provably stays constant, if that comes first.

Neighbouring entries of equal rate are merged. Evaluating at step ``t`` is ``values[searchsorted(starts, t,
"right") - 1]``: the exact rate for every ``t`` from 0 to ``max_steps``. After the horizon the rate of step
``max_steps`` is held; when the schedule provably stays constant from some step at or before the horizon on (a
multi-step's last milestone, the end of a ramp or of a one-cycle, a decay that has reached 0.0), that is the exact
rate for every step, however large (:attr:`Piecewise.settled`).

Imports NumPy and steplr's schedule modules only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import require_steps
from steplr.schedules._exact import PowerSeries
from steplr.schedules._segments import _Blocks, _pieces
from steplr.schedules.cycles import OneCycle
from steplr.schedules.kinds import (
    Constant,
    ConstantFactor,
    Exponential,
    Linear,
    MultiStep,
    PolynomialDecay,
    Schedule,
    StepDecay,
)
from steplr.schedules.kinds import Sequence as Chain

__all__ = ["DEFAULT_MAX_STEPS", "MAX_ENTRIES", "Piecewise", "piecewise"]

DEFAULT_MAX_STEPS = 1_000_000  # a per-step table of this many float32 rates is 4 MB
_WALKED = 64  # longer runs of consecutive decays walk the power
MAX_ENTRIES = 1 << 25  # the most entries a table may hold (~400 MB while it is built): max_steps beyond this fails


@dataclass(frozen=True)
class Piecewise:
    """A schedule's rates over steps ``0..horizon`` as stretches: stretch ``i`` starts at ``starts[i]`` (``starts[0]
    == 0``, strictly increasing) and has rate ``values[i]`` (``schedule.lr(base_lr, starts[i])``, float64; no two
    neighbours equal). ``settled``: True when the last rate holds for every step after the horizon too."""

    starts: NDArray[np.int64]
    values: NDArray[np.float64]
    horizon: int
    settled: bool

    def lr(self, t: int | NDArray[np.integer]) -> NDArray[np.float64]:
        """The rate at step(s) ``t`` >= 0 as the adapters compute it (steps after the horizon: its rate)."""
        index = np.searchsorted(self.starts, np.asarray(t, dtype=np.int64), side="right") - 1
        return np.asarray(self.values[index], dtype=np.float64)

    def float32(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """``(starts, values)`` with each rate rounded once to float32 and neighbours equal after that merged: what a
        float32 framework looks up in."""
        values = self.values.astype(np.float32)
        keep = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        return self.starts[keep], values[keep]


def piecewise(schedule: Schedule, base_lr: float, max_steps: int = DEFAULT_MAX_STEPS) -> Piecewise:
    """The lookup table of ``schedule`` for ``base_lr``, exact for steps ``0..max_steps`` (see the module docstring).

    Args:
        schedule: one schedule (scalar parameters) with durations in steps (``schedule.resolve(steps_per_epoch)``
            converts epochs).
        base_lr: the initial learning rate, a finite number > 0.
        max_steps: the horizon, an int >= 0 (default :data:`DEFAULT_MAX_STEPS`). A schedule that changes at every
            step costs one entry per step up to it.

    Raises:
        SteplrTypeError, SteplrValueError: for a bad ``schedule``, ``base_lr`` or ``max_steps``, a duration still in
            epochs, a table of more than :data:`MAX_ENTRIES` entries, or a rate that overflows.

    >>> table = piecewise(StepDecay(10, 0.5), 0.1, max_steps=10**9)
    >>> table.starts[:4].tolist(), table.values[:4].tolist(), table.settled
    ([0, 10, 20, 30], [0.1, 0.05, 0.025, 0.0125], True)
    >>> len(table.starts), int(table.starts[-1]), float(table.values[-1])  # 0.0 from step 10720 on, for good
    (1073, 10720, 0.0)
    """
    if not isinstance(schedule, Schedule):
        raise SteplrTypeError(f"schedule must be a steplr Schedule, got {schedule!r}")
    if not schedule.is_scalar:
        raise SteplrValueError(f"one schedule, not a table of them (array parameters): {schedule!r}")
    if isinstance(base_lr, bool) or not isinstance(base_lr, numbers.Real) or not (0 < base_lr < math.inf):
        raise SteplrValueError(f"base_lr must be a finite number > 0, got {base_lr!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 0:
        raise SteplrValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
    base_lr, horizon = float(base_lr), int(max_steps)
    schedule.lr(base_lr, 0)  # raises for a duration still in epochs
    settled_at = _settled(schedule, base_lr)
    end = horizon + 1 if settled_at is None else min(horizon, settled_at) + 1  # steps [0, end) are enumerated
    pairs = list(_changes(schedule, base_lr, end))
    starts = np.concatenate([p[0] for p in pairs])
    values = np.concatenate([p[1] for p in pairs])
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise SteplrValueError(
            f"the learning rate overflows to {values[bad[0]]} at step {starts[bad[0]]}: lower base_lr or gamma"
        )
    keep = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return Piecewise(starts[keep], values[keep], horizon, settled_at is not None and settled_at <= horizon)


def _changes(schedule: Schedule, base_lr: float, end: int) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float64]]]:
    """Steps below ``end`` where the rate may change (every real change, maybe more; the first is 0), in order,
    with the rate from each on: one pair of arrays per piece of the schedule."""
    total = 0
    for piece in _pieces(schedule, 0, 0, end):
        inner = piece.schedule
        if isinstance(inner, (StepDecay, MultiStep, Constant)):
            blocks = _Blocks(piece, base_lr)
            total += blocks.n
            _check_entries(total, schedule, end)
            steps = blocks.firsts(np.arange(blocks.n, dtype=np.int64))
        elif isinstance(inner, ConstantFactor):
            cut = piece.offset + int(require_steps(inner.total_iters, "total_iters"))
            steps = np.asarray([piece.start, *([cut] if piece.start < cut < piece.end else [])], dtype=np.int64)
        else:  # may change at every step until it settles
            local_end = _settled(inner, base_lr)
            stop = piece.end if local_end is None else min(piece.end, max(piece.start, piece.offset + local_end) + 1)
            total += stop - piece.start
            _check_entries(total, schedule, end)
            steps = np.arange(piece.start, stop, dtype=np.int64)
        yield steps, _rates(inner, base_lr, steps - piece.offset)


def _rates(schedule: Schedule, base_lr: float, steps: NDArray[np.int64]) -> NDArray[np.float64]:
    """``schedule.lr(base_lr, steps)``. A long run of decays one at a time (exponential, step decay) walks the
    power with :class:`~steplr.schedules._exact.PowerSeries`, the drop-in schedulers' kernel: the same correctly
    rounded values, many times faster than one exact power per step."""
    if isinstance(schedule, (StepDecay, Exponential)) and steps.size > _WALKED:
        decays = np.asarray(schedule.decays(steps), dtype=np.int64)
        if np.array_equal(np.diff(decays), np.ones(decays.size - 1, dtype=np.int64)):
            at = PowerSeries(float(schedule.gamma), [base_lr]).values
            return np.fromiter((at(k)[0] for k in range(int(decays[0]), int(decays[-1]) + 1)), np.float64, decays.size)
    return np.asarray(schedule.lr(base_lr, steps), dtype=np.float64)


def _check_entries(total: int, schedule: Schedule, end: int) -> None:
    if total > MAX_ENTRIES:
        raise SteplrValueError(
            f"{schedule!r} needs more than {MAX_ENTRIES:,} table entries up to step {end - 1:,}: lower max_steps"
        )


def _settled(schedule: Schedule, base_lr: float) -> int | None:
    """A step from which the rate never changes again (not necessarily the first), or None when unknown."""
    if isinstance(schedule, Constant):
        return 0
    if isinstance(schedule, (ConstantFactor, Linear)):
        return int(require_steps(schedule.total_iters, "total_iters"))
    if isinstance(schedule, PolynomialDecay):
        return int(require_steps(schedule.total, "total"))
    if isinstance(schedule, OneCycle):  # holds the rate of its last step
        return max(int(require_steps(schedule.total_steps, "total_steps")) - 1, 0)
    if isinstance(schedule, MultiStep):
        return max((int(require_steps(m, "milestones")) for m in schedule.milestones), default=0)
    if isinstance(schedule, (StepDecay, Exponential)):
        zero = _first_zero_decay(base_lr, float(schedule.gamma))
        if zero is None:
            return None
        return zero * int(require_steps(schedule.step_size, "step_size")) if isinstance(schedule, StepDecay) else zero
    if isinstance(schedule, Chain):
        last = _settled(schedule.schedules[-1], base_lr)
        offset = int(require_steps(schedule.boundaries[-1], "boundaries")) if schedule.boundaries else 0
        return None if last is None else offset + last
    return None


def _first_zero_decay(base_lr: float, gamma: float) -> int | None:
    """The fewest decays ``k`` after which ``base_lr * gamma ** k`` (rounded once) is 0.0 and stays so; 0 for
    ``gamma == 1`` (constant); None when it never settles (``gamma > 1``, or so close to 1 that the search would not
    end)."""
    if gamma == 1.0:
        return 0
    if gamma > 1.0:
        return None
    # below 2**-1075 the rounded value is 0.0: an upper bound on k, then a binary search (the rates fall with k)
    hi = math.ceil((math.log2(base_lr) + 1076) / -math.log2(gamma))
    if hi > 1 << 62:
        return None
    probe = Exponential(gamma)
    if probe.lr(base_lr, hi) != 0.0:
        return None
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if probe.lr(base_lr, mid) == 0.0 else (mid + 1, hi)
    return lo
