"""torch's closed-form schedulers, one for one: each takes torch's arguments (plus ``steps_per_epoch`` where a
length may be a duration such as ``"5ep"``) and hands the matching :mod:`steplr.schedules` kind to
:class:`~steplr.lr_scheduler.ScheduleLR`, which does all the writing. Attribute names are torch's (``gamma``,
``T_max``, ``total_iters``, ...), read back from the schedule so that a loaded checkpoint's values show.

Imports torch and steplr's schedules; re-exported by :mod:`steplr.lr_scheduler`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch.optim import Optimizer

from steplr.lr_scheduler._base import ScheduleLR
from steplr.schedules.cycles import CosineWarmRestarts
from steplr.schedules.kinds import (
    ConstantFactor,
    Cosine,
    Exponential,
    Linear,
    MultiStep,
    PolynomialDecay,
    Schedule,
    StepDecay,
)

__all__ = [
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "ConstantLR",
    "LinearLR",
    "PolynomialLR",
    "CosineAnnealingWarmRestarts",
]


class _GammaMixin:
    schedule: Schedule

    @property
    def gamma(self) -> float:
        return float(self.schedule.params()["gamma"])


class StepLR(_GammaMixin, ScheduleLR):
    """Multiply each group's learning rate by ``gamma`` every ``step_size`` steps (torch's signature).

    ``lr = base_lr * gamma ** (last_epoch // step_size)``, correctly rounded. ``step_size`` may be ``"5ep"``
    with ``steps_per_epoch`` (e.g. ``len(train_loader)`` when stepping per batch).

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> sched = StepLR(opt, step_size=10, gamma=0.5)
    >>> for _ in range(25):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.025]
    """

    _REPR_ARGS = ("step_size", "gamma")

    def __init__(
        self,
        optimizer: Optimizer,
        step_size: int | str,
        gamma: float = 0.1,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, StepDecay(step_size, gamma), last_epoch, steps_per_epoch)

    @property
    def step_size(self) -> int:
        return int(self.schedule.params()["step_size"])


class MultiStepLR(_GammaMixin, ScheduleLR):
    """Multiply by ``gamma`` at each milestone (torch's signature); milestones may be durations.

    As in torch, milestones may come in any order, include 0, and repeat (a milestone listed twice decays twice).
    """

    _REPR_ARGS = ("milestones", "gamma")

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int | str],
        gamma: float = 0.1,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, MultiStep(milestones, gamma, counted=True), last_epoch, steps_per_epoch)

    @property
    def milestones(self) -> list[int]:
        return list(self.schedule.params()["milestones"])

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As :meth:`ScheduleLR.load_state_dict`; a checkpoint from a steplr that did not yet take milestones as
        torch does (no ``counted``) holds strictly increasing ones, which mean the same either way."""
        schedule = state_dict.get("schedule") if isinstance(state_dict, dict) else None
        if isinstance(schedule, dict) and schedule.get("type") == "MultiStep" and "counted" not in schedule:
            state_dict = {**state_dict, "schedule": {**schedule, "counted": True}}
        super().load_state_dict(state_dict)


class ExponentialLR(_GammaMixin, ScheduleLR):
    """Multiply by ``gamma`` every step (torch's signature): ``base_lr * gamma ** last_epoch``, rounded once."""

    _REPR_ARGS = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        super().__init__(optimizer, Exponential(gamma), last_epoch)


class CosineAnnealingLR(ScheduleLR):
    """Cosine annealing to ``eta_min`` over ``T_max`` steps (torch's signature), from the closed form."""

    _REPR_ARGS = ("T_max", "eta_min")

    def __init__(
        self,
        optimizer: Optimizer,
        T_max: float | str,
        eta_min: float = 0.0,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, Cosine(T_max, eta_min), last_epoch, steps_per_epoch)

    @property
    def T_max(self) -> int | float:
        t_max = self.schedule.params()["t_max"]
        return t_max if isinstance(t_max, float) else int(t_max)

    @property
    def eta_min(self) -> float:
        return float(self.schedule.params()["eta_min"])


def _param(scheduler: ScheduleLR, name: str) -> Any:
    return scheduler.schedule.params()[name]


class ConstantLR(ScheduleLR):
    """Scale by ``factor`` for the first ``total_iters`` steps, then use the base rate (torch's signature).

    ``lr = base_lr * factor`` for ``last_epoch < total_iters``, else ``base_lr`` exactly (torch divides by
    ``factor`` again at ``total_iters``, which can leave an ulp, and fails for a factor of 0).

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        factor: a number in [0, 1] (default 1/3).
        total_iters: steps at the scaled rate, > 0; a duration such as ``"1ep"`` with ``steps_per_epoch``.
        last_epoch: the last step taken (``-1``: a new run).
        steps_per_epoch: scheduler steps per epoch, for durations.

    Raises:
        SteplrValueError, SteplrTypeError: for a factor outside [0, 1] or a ``total_iters`` that is not a positive
            duration (torch's ``total_iters=0`` keeps the factor forever; pass ``factor=1`` for no scaling).

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> sched = ConstantLR(opt, factor=0.5, total_iters=2)
    >>> rates = []
    >>> for _ in range(4):
    ...     rates.append(sched.get_last_lr()[0]); opt.step(); sched.step()
    >>> rates
    [0.05, 0.05, 0.1, 0.1]
    """

    _REPR_ARGS = ("factor", "total_iters")

    def __init__(
        self,
        optimizer: Optimizer,
        factor: float = 1.0 / 3,
        total_iters: int | str = 5,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, ConstantFactor(factor, total_iters), last_epoch, steps_per_epoch)

    @property
    def factor(self) -> float:
        return float(_param(self, "factor"))

    @property
    def total_iters(self) -> int:
        return int(_param(self, "total_iters"))


class LinearLR(ScheduleLR):
    """Scale by a factor moving in a straight line from ``start_factor`` to ``end_factor`` over ``total_iters``
    steps, then hold ``end_factor`` (torch's signature).

    ``lr = base_lr * (s * (T - m) + e * m) / T`` with ``m = min(last_epoch, T)``: one rounding per step from the
    line, where torch's recursive update drifts by one per step.

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        start_factor: ``s`` in [0, 1] (default 1/3; torch refuses 0, a ramp from zero, which steplr takes).
        end_factor: ``e`` in [0, 1] (default 1).
        total_iters: ``T`` > 0, the steps of the line; a duration such as ``"2ep"`` with ``steps_per_epoch``.
        last_epoch: the last step taken (``-1``: a new run).
        steps_per_epoch: scheduler steps per epoch, for durations.

    Raises:
        SteplrValueError, SteplrTypeError: for a factor outside [0, 1] or a ``total_iters`` that is not a positive
            duration.

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> rates = []
    >>> for _ in range(5):
    ...     rates.append(sched.get_last_lr()[0]); opt.step(); sched.step()
    >>> rates
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    _REPR_ARGS = ("start_factor", "end_factor", "total_iters")

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int | str = 5,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        schedule = Linear(start_factor, end_factor, total_iters)
        super().__init__(optimizer, schedule, last_epoch, steps_per_epoch)

    @property
    def start_factor(self) -> float:
        return float(_param(self, "start_factor"))

    @property
    def end_factor(self) -> float:
        return float(_param(self, "end_factor"))

    @property
    def total_iters(self) -> int:
        return int(_param(self, "total_iters"))


class PolynomialLR(ScheduleLR):
    """Decay to 0 along ``(1 - t / total_iters) ** power``, then hold 0 (torch's signature).

    ``lr = base_lr * (1 - min(last_epoch, T) / T) ** power``, evaluated afresh at each step (torch's recursive
    update multiplies ratios of those powers, and drifts by a rounding per step).

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        total_iters: ``T`` > 0, the step from which the rate is 0; a duration with ``steps_per_epoch``.
        power: a finite number > 0 (default 1: a straight line).
        last_epoch: the last step taken (``-1``: a new run).
        steps_per_epoch: scheduler steps per epoch, for durations.

    Raises:
        SteplrValueError, SteplrTypeError: for a ``total_iters`` that is not a positive duration or a ``power`` that
            is not a finite number > 0.

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = PolynomialLR(opt, total_iters=4, power=2.0)
    >>> rates = []
    >>> for _ in range(6):
    ...     rates.append(sched.get_last_lr()[0]); opt.step(); sched.step()
    >>> rates
    [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]
    """

    _REPR_ARGS = ("total_iters", "power")

    def __init__(
        self,
        optimizer: Optimizer,
        total_iters: int | str = 5,
        power: float = 1.0,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, _polynomial(total_iters, power), last_epoch, steps_per_epoch)

    @property
    def total_iters(self) -> int:
        return int(_param(self, "total"))

    @property
    def power(self) -> float:
        return float(_param(self, "power"))


def _polynomial(total_iters: int | str, power: float) -> PolynomialDecay:
    """The schedule under torch's argument name (``PolynomialDecay`` calls it ``total``)."""
    try:
        return PolynomialDecay(total_iters, power)
    except (TypeError, ValueError) as error:
        raise type(error)(str(error).replace("total ", "total_iters ", 1)) from None


class CosineAnnealingWarmRestarts(ScheduleLR):
    """Cosine annealing from the base rate to ``eta_min`` that restarts every cycle, each ``T_mult`` times as long
    as the one before (SGDR; torch's signature).

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``, where ``T_i`` is the length of the
    cycle holding ``last_epoch`` and ``T_cur`` the step within it, both found in integers from ``last_epoch``.
    ``step(epoch)`` takes an integer step (torch's also takes a fractional epoch). As torch's, it writes that closed
    form whatever the group held (it does not chain with other schedulers or hand-set rates).

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        T_0: the first cycle's length, > 0; a duration such as ``"1ep"`` with ``steps_per_epoch``.
        T_mult: an integer >= 1 (default 1: every cycle ``T_0`` long).
        eta_min: the floor, a finite number >= 0 (default 0).
        last_epoch: the last step taken (``-1``: a new run).
        steps_per_epoch: scheduler steps per epoch, for durations.

    Raises:
        SteplrValueError, SteplrTypeError: for a ``T_0`` that is not a positive duration, a ``T_mult`` that is not
            an integer >= 1, or a negative or non-finite ``eta_min``.

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    >>> rates = []
    >>> for _ in range(7):
    ...     rates.append(round(sched.get_last_lr()[0], 4)); opt.step(); sched.step()
    >>> rates
    [1.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 1.0]
    """

    _REPR_ARGS = ("T_0", "T_mult", "eta_min")
    _overwrites = True

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int | str,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        schedule = _restarts(T_0, T_mult, eta_min)
        super().__init__(optimizer, schedule, last_epoch, steps_per_epoch)

    @property
    def T_0(self) -> int:
        return int(_param(self, "t_0"))

    @property
    def T_mult(self) -> int:
        return int(_param(self, "t_mult"))

    @property
    def eta_min(self) -> float:
        return float(_param(self, "eta_min"))

    @property
    def T_i(self) -> int:
        """The length of the cycle that holds ``last_epoch``."""
        return self._cycle()[1]

    @property
    def T_cur(self) -> int:
        """``last_epoch``'s step within its cycle."""
        return self._cycle()[0]

    def _cycle(self) -> tuple[int, int]:
        schedule = self.schedule
        assert isinstance(schedule, CosineWarmRestarts)  # a loaded state of another kind is refused
        return schedule.cycle(self.last_epoch)


def _restarts(t_0: int | str, t_mult: int, eta_min: float) -> CosineWarmRestarts:
    """The schedule, its errors naming torch's arguments (``T_0``, ``T_mult``)."""
    try:
        return CosineWarmRestarts(t_0, t_mult, eta_min)
    except (TypeError, ValueError) as error:
        message = str(error).replace("t_0", "T_0").replace("t_mult", "T_mult")
        raise type(error)(message) from None
