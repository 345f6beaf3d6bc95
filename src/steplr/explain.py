"""The plan of a schedule over a run: constant intervals, decays, final LR, and warnings for common mistakes.

>>> plan = explain(StepDecay(10, 0.5), base_lr=0.1, epochs=40)
>>> [(i.first_epoch, i.last_epoch, i.lr) for i in plan.intervals]
[(0, 9, 0.1), (10, 19, 0.05), (20, 29, 0.025), (30, 39, 0.0125)]
>>> plan.decays, plan.final_lr, plan.warnings
(3, 0.0125, [])
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .schedules import Constant, Schedule, StepDecay
from .units import check_positive_int

__all__ = ["Interval", "Plan", "explain", "format_plan", "FLOOR_RATIO", "MAX_STEPS"]

MAX_STEPS = 20_000_000  # a plan is tabulated step by step: 160 MB of float64 at this size
FLOOR_RATIO = 0.01  # an LR at or below 1/100 of the start has stopped training in practice
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


@dataclass
class Plan:
    """What a schedule does over ``epochs`` epochs of ``steps_per_epoch`` scheduler steps each."""

    schedule: Schedule
    base_lr: float
    epochs: int
    steps_per_epoch: int
    intervals: list[Interval]
    decays: int
    final_lr: float
    warnings: list[str] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
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
                for i in self.intervals
            ],
            "decays": self.decays,
            "final_lr": self.final_lr,
            "warnings": self.warnings,
        }


def explain(schedule: Schedule, base_lr: float, epochs: int, steps_per_epoch: int = 1) -> Plan:
    """Evaluate ``schedule`` at every step of the run and describe it.

    Args:
        schedule: the schedule; epoch durations are resolved with ``steps_per_epoch``.
        base_lr: the initial learning rate, > 0.
        epochs: the run's length in epochs, > 0.
        steps_per_epoch: scheduler steps per epoch (1 when the scheduler is stepped per epoch).

    Raises:
        ValueError, TypeError: for non-positive ``base_lr``, ``epochs`` or ``steps_per_epoch``.
    """
    epochs = check_positive_int(epochs, "epochs")
    steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a steplr Schedule, got {schedule!r}")
    if isinstance(base_lr, bool) or not isinstance(base_lr, numbers.Real) or not base_lr > 0:
        raise ValueError(f"base_lr must be a number > 0, got {base_lr!r}")
    base_lr = float(base_lr)
    if not np.isfinite(base_lr):
        raise ValueError(f"base_lr must be finite, got {base_lr!r}")
    total = epochs * steps_per_epoch
    if total > MAX_STEPS:
        raise ValueError(
            f"epochs x steps_per_epoch = {total:,} steps is more than steplr tabulates ({MAX_STEPS:,}); "
            "describe the run in epochs (steps_per_epoch=1) or fewer iterations"
        )
    resolved = schedule.resolve(steps_per_epoch)
    lrs = resolved.lr(base_lr, np.arange(total, dtype=np.int64))
    if not np.isfinite(lrs).all():
        first = int(np.flatnonzero(~np.isfinite(lrs))[0])
        raise ValueError(f"the learning rate overflows to {lrs[first]} at step {first}: lower base_lr or gamma")
    changes = np.flatnonzero(lrs[1:] != lrs[:-1]) + 1
    starts = np.concatenate([[0], changes])
    ends = np.concatenate([changes - 1, [total - 1]])
    intervals = [
        Interval(int(s), int(e), float(lrs[s]), steps_per_epoch) for s, e in zip(starts.tolist(), ends.tolist())
    ]
    decays = int(np.count_nonzero(lrs[1:] < lrs[:-1]))
    plan = Plan(resolved, base_lr, epochs, steps_per_epoch, intervals, decays, float(lrs[-1]))
    plan.warnings = _warnings(plan, lrs)
    return plan


def _warnings(plan: Plan, lrs: np.ndarray) -> list[str]:
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
    if len(plan.intervals) == 1 and not isinstance(plan.schedule, Constant):
        reason = ""
        if isinstance(plan.schedule, StepDecay):
            step_size = params["step_size"]
            reason = f" (step_size {_in_units(step_size, plan.steps_per_epoch)} >= the run's {plan.epochs} epochs)"
            if gamma == 1.0:
                reason = " (gamma is 1)"
        found.append(f"the learning rate never changes within the run{reason}: this schedule is a constant LR")
    low = _low_lr_warning(plan, lrs)
    if low:
        found.append(low)
    return found


def _low_lr_warning(plan: Plan, lrs: np.ndarray) -> str | None:
    """Say where, and for how much of the run, the LR is at or below the floor; counted, not assumed to stay."""
    floor = plan.base_lr * FLOOR_RATIO * (1 + _TOLERANCE)
    peak = int(np.argmax(lrs))  # a warm-up that starts low is not a collapse: look from the peak on
    low = np.flatnonzero(lrs[peak:] <= floor) + peak
    if not low.size:
        return None
    first = int(low[0])
    where = _epoch_named(first, plan.steps_per_epoch)
    stays = low.size == plan.total_steps - first  # one stretch, from ``first`` to the last step
    if stays and not lrs[first:].any():
        return f"the learning rate reaches 0 at {where}: the rest of the run does not train"
    lead = (
        f"falls to {lrs[first]:.3g} (1/{plan.base_lr / lrs[first]:.0f} of its start or lower)"
        if lrs[first] > 0
        else "reaches 0"
    )
    share = low.size / plan.total_steps
    amount = f"{'under 1%' if share < 0.005 else f'{share:.0%}'} of the run ({_count(low.size, plan)})"
    if stays:
        # a periodic cosine sampled coarsely can climb a little within the floor: then "that rate" would be false
        rate = "that rate or lower" if lrs[first:].max() <= lrs[first] else "1/100 of its start or lower"
        return f"the learning rate {lead} at {where}, and {amount} trains at {rate}: little learning happens there"
    stretches = 1 + int(np.count_nonzero(np.diff(low) > 1))
    return (
        f"the learning rate {lead} at {where} and rises again: {amount} trains at or below 1/100 of its start"
        + (f", in {stretches} stretches" if stretches > 1 else "")
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
    rows = [f"  {_span(plan, i.first_step, i.last_step)}: lr {i.lr:.6g}" for i in plan.intervals]
    if len(rows) > _MAX_LINES:
        rows = rows[:10] + [f"  ... {len(rows) - 15} more intervals ..."] + rows[-5:]
    lines += rows
    lines.append(f"{plan.decays} decay{'s' if plan.decays != 1 else ''}; final lr {plan.final_lr:.6g}")
    lines += [f"warning: {w}" for w in plan.warnings]
    return lines
