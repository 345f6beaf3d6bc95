"""Learning-rate tables: many schedules over one run, one row each, with as few evaluations as possible.

Rows of one closed-form kind whose parameters are all scalars per row (``step_size``, ``gamma``, ``t_max``...) are
stacked into column arrays and evaluated in one broadcast call of the kind's class (rows that differ in a word, a
flag or an unset optional parameter, such as cyclic's ``mode``, are separate calls); rows with a list parameter
(``milestones``) or a warm-up are grouped by equal spec instead, and each group is one call with a column of base
learning rates. Reactive rows (``plateau``) have no closed form and stay NaN. Imports NumPy only.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrValueError
from steplr.schedules.spec import ScheduleSpec

__all__ = ["lr_table"]


def lr_table(
    specs: Sequence[ScheduleSpec], base_lrs: Sequence[float], epochs: int, steps_per_epoch: int
) -> NDArray[np.float64]:
    """The learning rate of every spec at every scheduler step of a run: shape ``(len(specs), steps)``.

    Row ``i`` is ``specs[i].build(epochs, steps_per_epoch).lr(base_lrs[i], t)`` for ``t`` in ``range(steps)``;
    NaN for a reactive spec.

    >>> step = ScheduleSpec("step", {"step_size": 2, "gamma": 0.5})
    >>> lr_table([step, ScheduleSpec("step", {"step_size": 1, "gamma": 0.1}), ScheduleSpec("plateau")],
    ...          [1.0, 1.0, 1.0], epochs=3, steps_per_epoch=1)
    array([[1.  , 1.  , 0.5 ],
           [1.  , 0.1 , 0.01],
           [ nan,  nan,  nan]])
    """
    if len(specs) != len(base_lrs):
        raise SteplrValueError(f"one base lr per spec: {len(specs)} specs, {len(base_lrs)} base lrs")
    steps = np.arange(epochs * steps_per_epoch, dtype=np.int64)
    lrs = np.asarray(base_lrs, dtype=np.float64)
    table = np.full((len(specs), steps.size), np.nan)
    groups: dict[Hashable, list[int]] = {}
    for i, spec in enumerate(specs):
        if not spec.reactive:
            groups.setdefault(_stack_key(spec) if _stackable(spec) else spec, []).append(i)
    for rows in groups.values():
        group = [specs[i] for i in rows]
        table[rows] = _group(group, lrs[rows], epochs, steps_per_epoch, steps)
    return table


def _stackable(spec: ScheduleSpec) -> bool:
    """True when every parameter of the spec is one number or duration (no list), and there is no warm-up."""
    return spec.warmup is None and all(p.type != "durations" for p in spec.entry.params)


def _stack_key(spec: ScheduleSpec) -> Hashable:
    """Rows with equal keys are one call: the kind, and the parameters that cannot be a column of numbers."""
    fixed = tuple(
        (p.name, spec.params[p.name])
        for p in spec.entry.params
        if p.type in ("choice", "flag") or spec.params[p.name] is None
    )
    return (spec.entry.name, fixed)


def _group(
    specs: list[ScheduleSpec], lrs: NDArray[np.float64], epochs: int, steps_per_epoch: int, steps: NDArray[np.int64]
) -> NDArray[np.float64]:
    """One broadcast call for rows of one kind (or of one spec)."""
    built = [spec.build(epochs, steps_per_epoch) for spec in specs]
    if all(spec == specs[0] for spec in specs):
        return np.asarray(built[0].lr(lrs[:, None], steps[None, :]), dtype=np.float64)
    entry = specs[0].entry
    assert entry.schedule is not None  # reactive specs were left out
    fixed = {p.name for p in entry.params if p.type in ("choice", "flag") or getattr(built[0], p.name) is None}
    columns = {
        p.name: getattr(built[0], p.name)
        if p.name in fixed
        else np.asarray([getattr(s, p.name) for s in built])[:, None]
        for p in entry.params
    }
    return np.asarray(entry.schedule(**columns).lr(lrs[:, None], steps[None, :]), dtype=np.float64)
