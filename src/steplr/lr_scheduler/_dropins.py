"""torch's closed-form schedulers, one for one: each takes torch's arguments (plus ``steps_per_epoch`` where a
length may be a duration such as ``"5ep"``) and hands the matching ``steplr.schedules`` kind to
``ScheduleLR``, which does all the writing. Attribute names are torch's (``gamma``,
``T_max``, ``total_iters``, ...), read back from the schedule so that a loaded checkpoint's values show.

Imports torch and steplr's schedules; re-exported by ``steplr.lr_scheduler``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch.optim import Optimizer

from steplr.errors import SteplrValueError
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

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        step_size: scheduler steps between decays: an int > 0, ``"230it"``, or ``"5ep"`` with ``steps_per_epoch``.
        gamma: the factor applied at each decay, a finite number > 0 (default 0.1).
        last_epoch: the last step already taken; ``-1`` (default) starts a new run at step 0. With ``L >= 0``
            each group must hold ``"initial_lr"`` and the optimizer gets the learning rate of step ``L``.
        steps_per_epoch: scheduler steps per epoch, needed for durations in epochs such as ``"5ep"``.

    Raises:
        SteplrValueError, SteplrTypeError: for a ``step_size`` of 0, negative, fractional or not a duration, and a
            ``gamma`` that is not a finite number > 0 (each named with its value).

    Examples:
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

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        milestones: the steps at which to decay, ints >= 0 or durations such as ``"30ep"``.
        gamma: the factor applied at each milestone, a finite number > 0 (default 0.1).
        last_epoch: the last step already taken; ``-1`` (default) starts a new run at step 0. With ``L >= 0``
            each group must hold ``"initial_lr"`` and the optimizer gets the learning rate of step ``L``.
        steps_per_epoch: scheduler steps per epoch, needed for durations in epochs such as ``"5ep"``.

    Raises:
        SteplrValueError, SteplrTypeError: for a milestone that is negative, fractional or not a duration, and a
            ``gamma`` that is not a finite number > 0.

    Examples:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
        >>> rates = []
        >>> for _ in range(5):
        ...     rates.append(sched.get_last_lr()[0]); opt.step(); sched.step()
        >>> rates
        [1.0, 1.0, 0.5, 0.5, 0.25]
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
        """As ``ScheduleLR.load_state_dict``; a checkpoint from a steplr that did not yet take milestones as
        torch does (no ``counted``) holds strictly increasing ones, which mean the same either way."""
        schedule = state_dict.get("schedule") if isinstance(state_dict, dict) else None
        if isinstance(schedule, dict) and schedule.get("type") == "MultiStep" and "counted" not in schedule:
            state_dict = {**state_dict, "schedule": {**schedule, "counted": True}}
        super().load_state_dict(state_dict)


class ExponentialLR(_GammaMixin, ScheduleLR):
    """Multiply by ``gamma`` every step (torch's signature): ``base_lr * gamma ** last_epoch``, rounded once.

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        gamma: the factor applied every step, a finite number > 0.
        last_epoch: the last step already taken; ``-1`` (default) starts a new run at step 0. With ``L >= 0``
            each group must hold ``"initial_lr"`` and the optimizer gets the learning rate of step ``L``.

    Raises:
        SteplrValueError, SteplrTypeError: for a ``gamma`` that is not a finite number > 0.

    Examples:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = ExponentialLR(opt, gamma=0.5)
        >>> for _ in range(3):
        ...     opt.step(); sched.step()
        >>> sched.get_last_lr()
        [0.125]
    """

    _REPR_ARGS = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        super().__init__(optimizer, Exponential(gamma), last_epoch)


class CosineAnnealingLR(ScheduleLR):
    """Cosine annealing to ``eta_min`` over ``T_max`` steps (torch's signature), from the closed form.

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2``, evaluated afresh at each step
    (torch's recursive form drifts); past ``T_max`` the curve climbs back up, as torch's does.

    Args:
        optimizer: the optimizer whose learning rates this scheduler sets.
        T_max: half the period, > 0: an int, a positive float (as torch takes it), or a duration such as
            ``"10ep"`` with ``steps_per_epoch``.
        eta_min: the floor, a finite number >= 0 (default 0).
        last_epoch: the last step already taken; ``-1`` (default) starts a new run at step 0. With ``L >= 0``
            each group must hold ``"initial_lr"`` and the optimizer gets the learning rate of step ``L``.
        steps_per_epoch: scheduler steps per epoch, needed for durations in epochs such as ``"5ep"``.

    Raises:
        SteplrValueError, SteplrTypeError: for a ``T_max`` that is not a positive duration, or an ``eta_min`` that is
            negative, non-finite or not a number.

    Examples:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = CosineAnnealingLR(opt, T_max=4)
        >>> rates = []
        >>> for _ in range(5):
        ...     rates.append(round(sched.get_last_lr()[0], 6)); opt.step(); sched.step()
        >>> rates
        [1.0, 0.853553, 0.5, 0.146447, 0.0]
    """

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

    Examples:
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

    Examples:
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

    Examples:
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
    As torch's, it writes that closed form whatever the group held (it does not chain with other schedulers or
    hand-set rates).

    As torch's, ``step(epoch)`` also takes a fractional epoch, a finite float >= 0 such as ``epoch + i / iters``
    stepped once per batch: ``T_i`` is the cycle holding ``floor(epoch)`` (found in integers), ``T_cur`` the
    place in it plus ``epoch``'s fractional part, and the rate the formula above (within 1e-12 of torch's).
    As in torch, ``last_epoch`` becomes ``floor(epoch)``, ``T_cur`` is fractional, ``get_last_lr()`` and
    ``get_lr()`` give the fractional epoch's rates, and a following ``step()`` without ``epoch`` moves one whole
    epoch on, keeping the fraction; a whole-number epoch (``3`` or ``3.0``) takes the exact integer path and drops
    it. ``state_dict()`` keeps the fraction as ``epoch_fraction`` (0.0 for whole steps), and ``load_state_dict``
    restores it (from torch's state, from its fractional ``T_cur``) and writes that epoch's rates.

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

    Examples:
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
    _fraction: float = 0.0  # of the last fractional step(epoch); 0.0 after a whole step

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
    def T_cur(self) -> int | float:
        """``last_epoch``'s step within its cycle, plus the fraction of the last fractional ``step(epoch)``."""
        place = self._cycle()[0]
        return place + self._fraction if self._fraction else place

    def _cycle(self) -> tuple[int, int]:
        schedule = self.schedule
        assert isinstance(schedule, CosineWarmRestarts)  # a loaded state of another kind is refused
        return schedule.cycle(self.last_epoch)

    def step(self, epoch: float | None = None) -> None:
        """Advance one step, or go to ``epoch``: a step (an integer) or a fractional epoch (a finite float >= 0).

        Raises:
            SteplrValueError: for a negative, non-finite or non-numeric ``epoch``.
        """
        if epoch is None:
            if not self._fraction:
                super().step()
                return
            whole, fraction = self.last_epoch + 1, self._fraction
        elif isinstance(epoch, float):
            if not math.isfinite(epoch) or epoch < 0:
                raise SteplrValueError(f"epoch must be a finite number >= 0, got {epoch!r}")
            whole = math.floor(epoch)
            fraction = epoch - whole
            if not fraction:
                self._fraction = 0.0
                super().step(whole)
                return
        else:
            self._fraction = 0.0
            super().step(epoch)  # anything but an integer is refused there
            return
        if self._order_hook is not None and self._step_count:
            self._check_call_order()
        self.last_epoch = whole
        self._step_count += 1
        self._write_fraction(whole, fraction)

    def _write_fraction(self, whole: int, fraction: float) -> None:
        """Write the rates of epoch ``whole + fraction`` (``0 < fraction < 1``)."""
        self._write(self._fractional_lrs(whole, fraction), whole)
        self._fraction = fraction
        self._rates.reset()  # the next whole step writes its values whatever step the rates last gave

    def _fractional_lrs(self, whole: int, fraction: float) -> list[float]:
        schedule = self.schedule
        assert isinstance(schedule, CosineWarmRestarts)
        return _restart_lrs(schedule, self.base_lrs, whole, fraction)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The learning rates of ``last_epoch`` (plus the fraction of a fractional ``step(epoch)``).

        Returns:
            One learning rate per group.
        """
        if self._fraction:
            return self._fractional_lrs(self.last_epoch, self._fraction)
        return super().get_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        self._fraction = 0.0
        super()._update_lr(epoch)

    def _initial_step(self) -> None:
        self._fraction = 0.0
        super()._initial_step()

    def state_dict(self) -> dict[str, Any]:
        """``ScheduleLR.state_dict`` and ``epoch_fraction``: the fraction of the last fractional epoch stepped
        to (0.0 after a whole step)."""
        state = super().state_dict()
        state["epoch_fraction"] = self._fraction
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``ScheduleLR.load_state_dict``, then the fraction: steplr's ``epoch_fraction`` (0 if absent), or
        the fractional part of ``T_cur`` in torch's state; with one, that epoch's rates are written.

        Raises:
            SteplrValueError: as ``ScheduleLR.load_state_dict``, or for a fraction outside [0, 1).
        """
        fraction = _fraction_in(state_dict)
        self._fraction = 0.0
        super().load_state_dict(state_dict)
        if fraction:
            self._write_fraction(self.last_epoch, fraction)


def _restart_lrs(schedule: CosineWarmRestarts, bases: list[float], whole: int, fraction: float) -> list[float]:
    """The rates of the fractional epoch ``whole + fraction``: the cycle from the whole step, in integers (torch
    finds it with a logarithm for ``T_mult > 1``, which agrees but for rounding at a restart), then the cosine at
    the fractional place, in the operations torch uses, so the two differ by an ulp or so of ``T_cur``."""
    place, length = schedule.cycle(whole)
    eta_min = float(schedule.params()["eta_min"])
    weight = (1 + math.cos(math.pi * (place + fraction) / length)) / 2
    return [eta_min + (base - eta_min) * weight for base in bases]


def _fraction_in(state_dict: object) -> float:
    """The epoch fraction a steplr or torch CosineAnnealingWarmRestarts state holds (0.0 if none)."""
    if not isinstance(state_dict, dict):
        return 0.0  # the base class says what is wrong with it
    if "format" in state_dict:
        fraction = state_dict.get("epoch_fraction", 0.0)
    else:
        t_cur = state_dict.get("T_cur", 0)
        fraction = t_cur - math.floor(t_cur) if isinstance(t_cur, float) and math.isfinite(t_cur) else 0.0
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise SteplrValueError(f"checkpoint epoch_fraction must be a number in [0, 1), got {fraction!r}")
    return float(fraction)


def _restarts(t_0: int | str, t_mult: int, eta_min: float) -> CosineWarmRestarts:
    """The schedule, its errors naming torch's arguments (``T_0``, ``T_mult``)."""
    try:
        return CosineWarmRestarts(t_0, t_mult, eta_min)
    except (TypeError, ValueError) as error:
        message = str(error).replace("t_0", "T_0").replace("t_mult", "T_mult")
        raise type(error)(message) from None
