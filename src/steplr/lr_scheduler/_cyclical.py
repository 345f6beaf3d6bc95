"""torch's cyclical schedulers, ``OneCycleLR`` and ``CyclicLR``: the rate from a ``steplr.schedules.cycles``
kind and, as torch's, the momentum (``momentum``, or ``betas[0]``) cycled the other way at every step.

Imports torch and steplr's schedules; re-exported by ``steplr.lr_scheduler``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.lr_scheduler._base import ScheduleLR, _check_last_epoch
from steplr.lr_scheduler._dropins import _param
from steplr.lr_scheduler._rates import _CyclicRates, _OneCycleRates
from steplr.schedules.cycles import Cyclic, OneCycle
from steplr.schedules.durations import check_positive_int

__all__ = ["OneCycleLR", "CyclicLR"]


class _CycledMomentum(ScheduleLR):
    """What torch's cyclical schedulers do to the momentum (``momentum``, or ``betas[0]``): one value per group at
    every step, written with the rate (also from ``get_lr()``, which Ignite's handler calls alone), and its
    settings kept in the state dict. The rates' blocks form the values (see ``set_momentum``)."""

    _momentum: tuple[bool, list[float], list[float]] | None = None  # (use_beta1, base, max) when cycled

    @staticmethod
    def _momentum_settings(
        optimizer: Optimizer, cycle_momentum: object, base_momentum: object, max_momentum: object
    ) -> tuple[bool, list[float], list[float]] | None:
        """The checked settings (nothing written yet)."""
        if not isinstance(cycle_momentum, bool):
            raise SteplrTypeError(f"cycle_momentum must be True or False, got {cycle_momentum!r}")
        if not cycle_momentum:
            return None
        if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise SteplrValueError(
                "cycle_momentum=True needs an optimizer with momentum or betas; pass cycle_momentum=False"
            )
        count = len(optimizer.param_groups)
        bases = _per_group(base_momentum, "base_momentum", count)
        peaks = _per_group(max_momentum, "max_momentum", count)
        return "betas" in optimizer.defaults, bases, peaks

    def _start_momentum(self, momentum: tuple[bool, list[float], list[float]] | None) -> None:
        self._momentum = momentum
        if momentum is not None:  # the keys torch's schedulers keep in each group
            for group, low, high in zip(self.optimizer.param_groups, momentum[1], momentum[2]):
                group["max_momentum"], group["base_momentum"] = high, low
        self._write_momentum()

    @property
    def cycle_momentum(self) -> bool:
        return self._momentum is not None

    @property
    def use_beta1(self) -> bool:
        return self._momentum is not None and self._momentum[0]

    def _write_momentum(self) -> None:
        momentum = self._momentum
        if momentum is None:
            return
        # the rates' blocks hold each step's momentum too; a new rates object (a load), a copy (which starts its
        # rates afresh) or new settings tell them the settings again
        rates: _OneCycleRates | _CyclicRates = self._rates  # type: ignore[assignment]  # refused on load otherwise
        if rates.momentum_of is not momentum:
            rates.set_momentum(momentum, momentum[1], momentum[2])
        t = self.last_epoch
        if t < 0:
            t = 0
        groups = self.optimizer.param_groups
        if len(groups) == 1 == len(momentum[1]):  # the usual single group: one float, no list
            group = groups[0]
            if momentum[0]:
                group["betas"] = (rates.one_momentum(t), *group["betas"][1:])
            else:
                group["momentum"] = rates.one_momentum(t)
            return
        values = rates.momentum(t)
        for group, value in zip(groups, values):
            if momentum[0]:
                group["betas"] = (value, *group["betas"][1:])
            else:
                group["momentum"] = value

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        momentum = self._momentum
        if momentum is None:
            return
        rates: _OneCycleRates | _CyclicRates = self._rates  # type: ignore[assignment]
        groups = self.optimizer.param_groups
        if rates.momentum_of is momentum and not momentum[0] and len(groups) == 1 == len(momentum[1]):
            groups[0]["momentum"] = rates.one_momentum(self.last_epoch)  # one SGD group: the float, no call between
            return
        self._write_momentum()

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The closed-form rates of step ``last_epoch``; like torch's, this also sets that step's momentum, since
        Ignite's handler drives a scheduler through ``get_lr()`` alone."""
        self._write_momentum()
        return super().get_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        super()._update_lr(epoch)
        self._write_momentum()

    def state_dict(self) -> dict[str, Any]:
        """``ScheduleLR.state_dict`` and ``momentum``: None, or ``use_beta1``, ``base`` and ``max`` per group."""
        state = super().state_dict()
        if self._momentum is None:
            state["momentum"] = None
        else:
            use_beta1, bases, peaks = self._momentum
            state["momentum"] = {"use_beta1": use_beta1, "base": list(bases), "max": list(peaks)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``ScheduleLR.load_state_dict``, and the momentum settings saved with it (kept if absent)."""
        momentum = state_dict.get("momentum", self._momentum) if isinstance(state_dict, dict) else None
        if isinstance(momentum, dict):
            count = len(self.optimizer.param_groups)
            try:
                use_beta1 = momentum["use_beta1"]
                bases = _per_group(momentum["base"], "checkpoint momentum base", count)
                peaks = _per_group(momentum["max"], "checkpoint momentum max", count)
            except (KeyError, TypeError) as error:
                raise SteplrValueError(f"checkpoint momentum must hold use_beta1, base and max: {error}") from None
            momentum = (bool(use_beta1), bases, peaks)
        super().load_state_dict(state_dict)
        self._momentum = momentum
        self._write_momentum()


class OneCycleLR(_CycledMomentum):
    """The one-cycle policy (torch's signature): up from ``max_lr / div_factor`` to ``max_lr``, then down to
    ``max_lr / div_factor / final_div_factor``, with the momentum cycled the other way.

    The rate of step ``t`` is ``OneCycle``'s closed form with ``max_lr`` as its base, the
    momentum (``momentum``, or ``betas[0]`` for Adam-like optimizers) its ``momentum(t, ...)``; both are written
    whatever the group held, as torch's are. What differs from torch: ``base_lrs`` (and each
    group's ``initial_lr``) are the peaks ``max_lr``, the base the schedule scales (torch keeps
    ``max_lr / div_factor`` there); steps past ``total_steps`` hold the last rate (torch raises); and torch's
    ``OneCycleLR`` state dicts are not read (they do not hold ``max_lr``).

    Args:
        optimizer: the optimizer whose learning rates (and momentum) this scheduler sets.
        max_lr: the peak rate, one number or one per param group.
        total_steps: the cycle's length in steps (or a duration such as ``"5ep"`` with ``steps_per_epoch``); if
            None, ``epochs * steps_per_epoch``.
        epochs: with ``steps_per_epoch``, the cycle's length when ``total_steps`` is None.
        steps_per_epoch: scheduler steps per epoch.
        pct_start: the share of the cycle spent rising, in [0, 1] (default 0.3).
        anneal_strategy: ``"cos"`` (default) or ``"linear"``.
        cycle_momentum: cycle the momentum between ``max_momentum`` and ``base_momentum`` (default True).
        base_momentum: the momentum at the peak rate, one number or one per group (default 0.85).
        max_momentum: the momentum at the start and the end, one number or one per group (default 0.95).
        div_factor: the start is ``max_lr / div_factor``, > 0 (default 25).
        final_div_factor: the end is the start divided by this, > 0 (default 1e4).
        three_phase: come back down to the start before falling to the end (default False).
        last_epoch: the last step taken (``-1``: a new run).

    Raises:
        SteplrValueError, SteplrTypeError: for a bad argument (named), a list of another length than the param
            groups, neither ``total_steps`` nor ``epochs`` and ``steps_per_epoch``, or ``cycle_momentum`` with an
            optimizer that has neither ``momentum`` nor ``betas``.

    Examples:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> sched = OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.5, anneal_strategy="linear", div_factor=10)
        >>> seen = []
        >>> for _ in range(5):
        ...     seen.append((round(opt.param_groups[0]["lr"], 6), round(opt.param_groups[0]["momentum"], 6)))
        ...     opt.step(); sched.step()
        >>> seen
        [(0.1, 0.95), (0.325, 0.925), (0.55, 0.9), (0.775, 0.875), (1.0, 0.85)]
    """

    _REPR_ARGS = ("max_lrs", "total_steps")
    _overwrites = True

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | str | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise SteplrTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        _check_last_epoch(last_epoch)  # every check before the groups get torch's OneCycleLR keys
        groups = optimizer.param_groups
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise SteplrValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
            total_steps = check_positive_int(epochs, "epochs") * check_positive_int(steps_per_epoch, "steps_per_epoch")
        schedule = OneCycle(total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, three_phase)
        max_lrs = _per_group(max_lr, "max_lr", len(groups))
        momentum = self._momentum_settings(optimizer, cycle_momentum, base_momentum, max_momentum)
        for group, peak in zip(groups, max_lrs):  # the keys torch's OneCycleLR keeps, but initial_lr is the peak
            group["initial_lr"] = peak
            group["max_lr"] = peak
            group["min_lr"] = peak / float(schedule.div_factor) / float(schedule.final_div_factor)
        super().__init__(optimizer, schedule, last_epoch, steps_per_epoch)
        self._start_momentum(momentum)

    @property
    def max_lrs(self) -> list[float]:
        return list(self.base_lrs)

    @property
    def total_steps(self) -> int:
        return int(_param(self, "total_steps"))


class CyclicLR(_CycledMomentum):
    """Rates cycling between ``base_lr`` and ``max_lr`` (torch's signature), the momentum cycled the other way.

    The rate of step ``t`` is ``Cyclic``'s closed form from each group's ``base_lr``: the
    position in the cycle comes from integer division, so cycles repeat exactly however long the run (torch forms
    it from ``t / cycle_length`` in floating point). The momentum (``momentum``, or ``betas[0]``) is
    ``max_momentum - (max_momentum - base_momentum) * h * s``, the same curve. Both are written whatever the group
    held, as torch's are. What differs from torch: one ``max_lr`` for all groups (a list must repeat one value);
    no custom ``scale_fn`` (it could not be saved as data); torch's ``CyclicLR`` state dicts are not read.

    Args:
        optimizer: the optimizer whose learning rates (and momentum) this scheduler sets.
        base_lr: the low end of the cycle, one number or one per param group; written as each group's rate and
            ``initial_lr``, as torch writes it.
        max_lr: the high end, one number (or a list of one repeated value).
        step_size_up: steps of the rise, > 0 (default 2000); a duration with ``steps_per_epoch``.
        step_size_down: steps of the fall, > 0, or None for ``step_size_up``.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: ``exp_range``'s factor per step, > 0 (default 1).
        scale_fn: must be None.
        scale_mode: ``"cycle"`` or ``"iterations"``; as in torch, the mode decides it when ``scale_fn`` is None.
        cycle_momentum: cycle the momentum between ``max_momentum`` and ``base_momentum`` (default True).
        base_momentum: the momentum at ``max_lr``, one number or one per group (default 0.8).
        max_momentum: the momentum at ``base_lr``, one number or one per group (default 0.9).
        last_epoch: the last step taken (``-1``: a new run).
        steps_per_epoch: scheduler steps per epoch, for durations.

    Raises:
        SteplrValueError, SteplrTypeError: for a bad argument (named), lists of another length than the param
            groups, differing ``max_lr`` values, a ``scale_fn``, or ``cycle_momentum`` with an optimizer that has
            neither ``momentum`` nor ``betas``.

    Examples:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5, momentum=0.9)
        >>> sched = CyclicLR(opt, base_lr=0.25, max_lr=1.0, step_size_up=2, mode="triangular2")
        >>> seen = []
        >>> for _ in range(6):
        ...     seen.append((opt.param_groups[0]["lr"], round(opt.param_groups[0]["momentum"], 6)))
        ...     opt.step(); sched.step()
        >>> seen
        [(0.25, 0.9), (0.625, 0.85), (1.0, 0.8), (0.625, 0.85), (0.25, 0.9), (0.4375, 0.875)]
    """

    _REPR_ARGS = ("base_lrs", "max_lrs", "mode")
    _overwrites = True

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr: float | Sequence[float],
        max_lr: float | Sequence[float],
        step_size_up: int | str = 2000,
        step_size_down: int | str | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Any = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.8,
        max_momentum: float | Sequence[float] = 0.9,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise SteplrTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        _check_last_epoch(last_epoch)  # every check before the groups get their base_lr
        if scale_fn is not None:
            raise SteplrValueError(
                "CyclicLR takes no scale_fn: a function cannot be saved as data; use mode='triangular', "
                "'triangular2' or 'exp_range', or ScheduleLR with a Schedule of your own"
            )
        if scale_mode not in ("cycle", "iterations"):
            raise SteplrValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        count = len(optimizer.param_groups)
        base_lrs = _per_group(base_lr, "base_lr", count)
        peaks = set(_per_group(max_lr, "max_lr", count))
        if len(peaks) != 1:
            raise SteplrValueError(
                f"max_lr must be one value for all param groups in steplr's CyclicLR, got {sorted(peaks)}"
            )
        schedule = Cyclic(peaks.pop(), step_size_up, step_size_down, mode, gamma)
        momentum = self._momentum_settings(optimizer, cycle_momentum, base_momentum, max_momentum)
        for group, low in zip(optimizer.param_groups, base_lrs):
            group["initial_lr"] = low
        super().__init__(optimizer, schedule, last_epoch, steps_per_epoch)
        self._start_momentum(momentum)

    @property
    def max_lrs(self) -> list[float]:
        return [float(_param(self, "max_lr"))] * len(self.base_lrs)

    @property
    def mode(self) -> str:
        return str(_param(self, "mode"))

    @property
    def gamma(self) -> float:
        return float(_param(self, "gamma"))


def _per_group(value: object, name: str, count: int) -> list[float]:
    """One finite number for every param group (a single number is every group's), as torch spreads its lists."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    if len(values) != count:
        raise SteplrValueError(f"{name} must be one number or {count} (one per param group), got {len(values)}")
    checked = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise SteplrValueError(f"{name} must hold finite numbers, got {v!r}")
        checked.append(float(v))
    return checked
