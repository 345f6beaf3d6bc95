"""Learning-rate schedules as pure functions of the step: the math, defined once.

Every schedule answers ``schedule.lr(base_lr, t)``: the learning rate at 0-based scheduler step ``t`` for a param
group whose initial learning rate is ``base_lr``. ``t`` may be a Python int or a NumPy integer array, and the
schedule's own parameters may be NumPy arrays too; they all broadcast, so one call gives a configs x steps table:

Examples:
    >>> import numpy as np
    >>> StepDecay(step_size=10, gamma=0.5).lr(0.1, 25)
    0.025
    >>> StepDecay(step_size=np.array([[1], [2]]), gamma=0.5).lr(1.0, np.arange(4))
    array([[1.   , 0.5  , 0.25 , 0.125],
           [1.   , 1.   , 0.5  , 0.5  ]])

This module imports NumPy only (no torch), so planning and plotting start fast.
"""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable
from collections.abc import Sequence as SequenceABC
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import (
    Param,
    Steps,
    check_duration,
    check_fraction,
    check_gamma,
    check_period,
    check_real,
    check_step,
    jsonable,
    require_steps,
    resolve_value,
)
from steplr.schedules._exact import (
    ScalarMath,
    cosine_weights,
    fractional_cosine_weights,
    scaled_power,
    scaled_power_array,
)
from steplr.schedules.durations import Duration

__all__ = [
    "Schedule",
    "StepDecay",
    "MultiStep",
    "Exponential",
    "Cosine",
    "Constant",
    "LinearWarmup",
    "Linear",
    "ConstantFactor",
    "Sequence",
    "PolynomialDecay",
    "join",
    "schedule_from_params",
]


class Schedule(ABC):
    """A learning rate as a pure function of the scheduler step.

    Every kind below is a subclass: it checks its parameters once, when made, and answers
    [`lr`][steplr.schedules.kinds.Schedule.lr] for any step from the closed form alone (no state, no running
    product). Two schedules with the same [`params`][steplr.schedules.kinds.Schedule.params] are equal.

    Examples:
        >>> s = StepDecay(step_size="2ep", gamma=0.5)
        >>> s.params()
        {'type': 'StepDecay', 'step_size': '2ep', 'gamma': 0.5}
        >>> s.resolve(steps_per_epoch=3).lr(1.0, [0, 5, 6, 12])
        array([1.  , 1.  , 0.5 , 0.25])
    """

    def lr(self, base_lr: Param, t: Steps) -> Any:
        """The learning rate at step ``t`` for a group whose initial learning rate is ``base_lr``.

        Args:
            base_lr: the initial learning rate, a finite number (or a NumPy array of them, which broadcasts).
            t: the 0-based scheduler step, an int >= 0 or a NumPy integer array of them.

        Returns:
            A Python float when every input (and every parameter of the schedule) is a scalar, otherwise a
            float64 NumPy array of the broadcast shape.

        Raises:
            ValueError: for negative steps, or for durations in epochs that were never given steps_per_epoch.

        Examples:
            >>> Exponential(0.5).lr(0.1, 2)
            0.025
            >>> Exponential(0.5).lr(0.1, [0, 1, 2])
            array([0.1  , 0.05 , 0.025])
        """
        steps = check_step(t)
        base = check_real(base_lr, "base_lr")
        self._check_resolved()
        if isinstance(steps, int) and isinstance(base, float) and self.is_scalar:
            return float(self._lr_scalar(base, steps))
        return np.asarray(self._lr_array(np.asarray(base, dtype=np.float64), np.asarray(steps)), dtype=np.float64)

    @abstractmethod
    def _lr_scalar(self, base_lr: float, t: int) -> float: ...

    @abstractmethod
    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]: ...

    def segment(self, t: int) -> Hashable:
        """A key equal for two steps whenever their learning rates are equal (for caching).

        Args:
            t: a 0-based scheduler step.

        Returns:
            A hashable key; the default is ``t`` itself (every step its own segment).
        """
        return t

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The schedule's parameters as plain data (JSON- and ``weights_only``-safe), with a ``"type"`` key.

        Returns:
            A dict that [`schedule_from_params`][steplr.schedules.kinds.schedule_from_params] turns back into
            an equal schedule.

        Examples:
            >>> MultiStep(["10ep", "20ep"], 0.1).params()
            {'type': 'MultiStep', 'milestones': ['10ep', '20ep'], 'gamma': 0.1}
        """

    def resolve(self, steps_per_epoch: int | None) -> Schedule:
        """A copy with every epoch duration converted to steps.

        Args:
            steps_per_epoch: scheduler steps per epoch (``len(train_loader)`` when stepping per batch, 1 when
                stepping per epoch); None when the schedule holds no duration in epochs.

        Returns:
            The same kind of schedule with step counts only (the schedule itself when it has nothing to convert).

        Raises:
            SteplrValueError: for a duration in epochs with ``steps_per_epoch`` None or not a positive integer.

        Examples:
            >>> StepDecay("5ep", 0.5).resolve(steps_per_epoch=23)
            StepDecay(step_size=115, gamma=0.5)
        """
        return self

    def _check_resolved(self) -> None:  # noqa: B027
        """Raise if a duration is still in epochs (a schedule without durations has nothing to check)."""

    @property
    def is_scalar(self) -> bool:
        """True when no parameter is an array (one schedule, not a table of them)."""
        return all(not isinstance(v, np.ndarray) for v in vars(self).values())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k != "type")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.params() == other.params()

    def __hash__(self) -> int:
        return hash(repr(self))


class _PowerDecay(Schedule):
    """Schedules of the form ``base_lr * gamma ** k(t)``, evaluated with one rounding."""

    gamma: Param

    @abstractmethod
    def decays(self, t: Any) -> Any:
        """``k(t)``: how many times the learning rate has been multiplied by gamma at step ``t``."""

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        return scaled_power(base_lr, float(self.gamma), int(self.decays(t)))

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        return scaled_power_array(base_lr, self.gamma, self.decays(t))

    def segment(self, t: int) -> Hashable:
        return int(self.decays(t))


class StepDecay(_PowerDecay):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    $$
    \mathrm{lr}(t) = \mathrm{base\_lr} \cdot \gamma^{\lfloor t / \mathrm{step\_size} \rfloor}
    $$

    Args:
        step_size: steps between decays: an int > 0, ``"230it"``, or ``"5ep"`` (needs steps_per_epoch).
            An integer array broadcasts.
        gamma: the factor, finite and > 0 (usually < 1). An array broadcasts.

    Raises:
        TypeError, ValueError: for step sizes that are not positive integers or durations, and bad gammas.

    Examples:
        >>> [StepDecay(10, 0.5).lr(0.1, t) for t in (0, 9, 10, 20, 30)]
        [0.1, 0.1, 0.05, 0.025, 0.0125]
    """

    def __init__(self, step_size: Any, gamma: Any = 0.1) -> None:
        self.step_size = check_duration(step_size, "step_size")
        self.gamma = check_gamma(gamma)

    def decays(self, t: Any) -> Any:
        return t // require_steps(self.step_size, "step_size")

    def params(self) -> dict[str, Any]:
        return {"type": "StepDecay", "step_size": jsonable(self.step_size), "gamma": jsonable(self.gamma)}

    def resolve(self, steps_per_epoch: int | None) -> StepDecay:
        return StepDecay(resolve_value(self.step_size, steps_per_epoch, "step_size"), self.gamma)

    def _check_resolved(self) -> None:
        require_steps(self.step_size, "step_size")


class MultiStep(_PowerDecay):
    r"""Multiply the learning rate by ``gamma`` at each milestone.

    $$
    \mathrm{lr}(t) = \mathrm{base\_lr} \cdot \gamma^{\#\{m \in \mathrm{milestones} : m \le t\}}
    $$

    Args:
        milestones: strictly increasing steps > 0 (ints or durations such as ``"30ep"``); with ``counted``,
            steps >= 0 in any order, a step listed ``k`` times decaying ``k`` times (torch's ``MultiStepLR``
            takes its milestones so, as a ``Counter``).
        gamma: the factor, finite and > 0.
        counted: take the milestones as torch does (the drop-in ``MultiStepLR`` sets it).

    Raises:
        SteplrValueError, SteplrTypeError: for milestones that are not a list of positive steps or durations, not
            strictly increasing (without ``counted``), and a bad ``gamma``.

    Examples:
        >>> [MultiStep([2, 5], 0.1).lr(1.0, t) for t in (0, 2, 5)]
        [1.0, 0.1, 0.010000000000000002]
    """

    def __init__(self, milestones: Iterable[Any], gamma: Any = 0.1, *, counted: bool = False) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise SteplrTypeError(f"milestones must be a list of steps, got {milestones!r}")
        self.counted = counted is True
        parsed = [check_duration(m, f"milestones[{i}]", allow_zero=self.counted) for i, m in enumerate(milestones)]
        if any(isinstance(m, np.ndarray) for m in parsed):
            raise SteplrTypeError("milestones must be a list of ints or durations, not arrays")
        if self.counted and all(isinstance(m, int) for m in parsed):
            parsed.sort()  # durations are sorted once resolved
        self.milestones: list[int | Duration] = parsed  # type: ignore[assignment]
        if not self.counted:
            self._check_order()
        self.gamma = check_gamma(gamma)

    def _check_order(self) -> None:
        if all(isinstance(m, int) for m in self.milestones):
            for a, b in pairwise(self.milestones):
                if not a < b:  # type: ignore[operator]
                    raise SteplrValueError(f"milestones must be strictly increasing, got {self._shown()!r}")

    def _shown(self) -> list[Any]:
        return [jsonable(m) for m in self.milestones]

    def decays(self, t: Any) -> Any:
        if isinstance(t, np.ndarray):
            return np.searchsorted(np.asarray(self.milestones, dtype=np.int64), t, side="right")
        return bisect.bisect_right(self.milestones, t)

    def params(self) -> dict[str, Any]:
        params = {"type": "MultiStep", "milestones": self._shown(), "gamma": jsonable(self.gamma)}
        return {**params, "counted": True} if self.counted else params

    def resolve(self, steps_per_epoch: int | None) -> MultiStep:
        resolved = [resolve_value(m, steps_per_epoch, f"milestones[{i}]") for i, m in enumerate(self.milestones)]
        return MultiStep(resolved, self.gamma, counted=self.counted)

    def _check_resolved(self) -> None:
        for i, m in enumerate(self.milestones):
            require_steps(m, f"milestones[{i}]")


class Exponential(_PowerDecay):
    r"""Multiply the learning rate by ``gamma`` every step: \(\mathrm{base\_lr} \cdot \gamma^t\).

    Args:
        gamma: the factor, finite and > 0. An array broadcasts.

    Raises:
        SteplrValueError, SteplrTypeError: for a ``gamma`` that is not a finite number > 0.

    Examples:
        >>> Exponential(0.5).lr(1.0, 3)
        0.125
    """

    def __init__(self, gamma: Any) -> None:
        self.gamma = check_gamma(gamma)

    def decays(self, t: Any) -> Any:
        return t

    def params(self) -> dict[str, Any]:
        return {"type": "Exponential", "gamma": jsonable(self.gamma)}


class Constant(Schedule):
    """The base learning rate at every step.

    Examples:
        >>> Constant().lr(0.1, 1000)
        0.1
    """

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        return base_lr

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.broadcast_to(base_lr, np.broadcast_shapes(base_lr.shape, t.shape)).copy()

    def segment(self, t: int) -> Hashable:
        return 0

    def params(self) -> dict[str, Any]:
        return {"type": "Constant"}


class Cosine(Schedule):
    r"""Cosine annealing from ``base_lr`` to ``eta_min`` over ``t_max`` steps (and back up, periodically).

    $$
    \mathrm{lr}(t) = \eta_{min} + (\mathrm{base\_lr} - \eta_{min})
    \frac{1 + \cos(\pi t / t_{max})}{2}
    $$

    Evaluated as ``base_lr * (1 + cos x) / 2 + eta_min * (1 - cos x) / 2`` with ``t`` reduced modulo the period
    in integers and the angle folded so that no digits cancel: the value stays within a few ulps of the exact one
    at every step, exactly ``base_lr`` at the peaks and ``eta_min`` at the floor, also near the floor and after
    millions of steps, where evaluating ``1 + cos(pi * t / t_max)`` as written (or torch's recursive form) loses
    digits.

    Args:
        t_max: half the period, > 0 (int, duration, or a positive finite real as torch takes).
        eta_min: the floor, a finite number >= 0 (default 0); above ``base_lr`` the curve rises instead.

    Raises:
        ValueError, TypeError: for a ``t_max`` that is not a positive duration, or an ``eta_min`` that is
            negative, non-finite or not a number (a negative learning rate makes the optimizer climb the loss).

    Examples:
        >>> [Cosine(10).lr(1.0, t) for t in (0, 5, 10, 15, 20)]
        [1.0, 0.5, 0.0, 0.5, 1.0]
    """

    def __init__(self, t_max: Any, eta_min: Any = 0.0) -> None:
        self.t_max = check_period(t_max, "t_max")
        self.eta_min = self._check_eta_min(eta_min)

    @staticmethod
    def _check_eta_min(eta_min: object) -> Param:
        expected = "eta_min must be a finite number >= 0"
        try:
            value = check_real(eta_min, "eta_min")
        except TypeError:
            raise SteplrTypeError(f"{expected}, got {eta_min!r}") from None
        except ValueError:
            raise SteplrValueError(f"{expected}, got {eta_min!r}") from None
        if isinstance(value, float):
            if value < 0.0:
                raise SteplrValueError(f"{expected}, got {value!r}")
        elif (value < 0.0).any():
            raise SteplrValueError(f"{expected}, got {float(value[value < 0.0].flat[0])!r} in {eta_min!r}")
        return value

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        t_max = require_steps(self.t_max, "t_max")
        eta_min = float(self.eta_min)
        if isinstance(t_max, float):
            high, low = fractional_cosine_weights(t, t_max)
            return float(base_lr * high + eta_min * low)
        high, low = cosine_weights(t, t_max, ScalarMath)
        return float(base_lr * high + eta_min * low)

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        eta_min = np.asarray(self.eta_min, dtype=np.float64)
        if isinstance(self.t_max, float):
            pairs = [fractional_cosine_weights(int(s), self.t_max) for s in np.asarray(t).flat]
            shape = np.shape(t)
            high = np.array([h for h, _ in pairs], dtype=np.float64).reshape(shape)
            low = np.array([lo for _, lo in pairs], dtype=np.float64).reshape(shape)
        else:
            t_max = np.asarray(require_steps(self.t_max, "t_max"), dtype=np.int64)
            high, low = cosine_weights(t, t_max)
        result: NDArray[np.float64] = base_lr * high + eta_min * low
        return result

    def params(self) -> dict[str, Any]:
        return {"type": "Cosine", "t_max": jsonable(self.t_max), "eta_min": jsonable(self.eta_min)}

    def resolve(self, steps_per_epoch: int | None) -> Cosine:
        return Cosine(resolve_value(self.t_max, steps_per_epoch, "t_max"), self.eta_min)

    def _check_resolved(self) -> None:
        require_steps(self.t_max, "t_max")


class PolynomialDecay(Schedule):
    r"""Decay from ``base_lr`` to ``end_lr`` along a power of the steps left, then hold ``end_lr``.

    $$
    \mathrm{lr}(t) = (\mathrm{base\_lr} - \mathrm{end\_lr})
    \left(1 - \frac{\min(t, T)}{T}\right)^{p} + \mathrm{end\_lr}
    $$

    With ``end_lr = 0`` this is the closed form of torch's ``PolynomialLR(total_iters=T, power=p)``, to the last
    bit (the same operations on the same floats). ``power = 1`` is a straight line.

    Args:
        total: ``T``, the step at which ``end_lr`` is reached, > 0 (int or duration).
        power: ``p``, a finite number > 0.
        end_lr: the rate from step ``T`` on, a finite number >= 0 (default 0).

    Raises:
        SteplrValueError, SteplrTypeError: for a ``total`` that is not a positive duration, a ``power`` that is not
            a finite number > 0, or an ``end_lr`` that is negative, non-finite or not a number.

    Examples:
        >>> [PolynomialDecay(4, 2.0).lr(1.0, t) for t in (0, 1, 2, 4, 9)]
        [1.0, 0.5625, 0.25, 0.0, 0.0]
    """

    def __init__(self, total: Any, power: Any = 1.0, end_lr: Any = 0.0) -> None:
        self.total = check_duration(total, "total")
        self.power = check_gamma(power, "power")
        self.end_lr = check_real(end_lr, "end_lr")
        if np.any(np.asarray(self.end_lr) < 0.0):
            raise SteplrValueError(f"end_lr must be a finite number >= 0, got {end_lr!r}")

    # One power function for both paths: numpy's vectorised pow may differ from C's pow in the last bit, and a
    # table row must equal the scalar rate (and torch's closed form) exactly.
    _pow = np.frompyfunc(math.pow, 2, 1)

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        total = int(require_steps(self.total, "total"))
        left = 1.0 - min(t, total) / total
        end_lr = float(self.end_lr)
        return (base_lr - end_lr) * math.pow(left, float(self.power)) + end_lr

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        total = np.asarray(require_steps(self.total, "total"), dtype=np.int64)
        left = 1.0 - np.minimum(t, total) / total
        end_lr = np.asarray(self.end_lr, dtype=np.float64)
        factor = np.asarray(self._pow(left, np.asarray(self.power, dtype=np.float64)), dtype=np.float64)
        result: NDArray[np.float64] = (base_lr - end_lr) * factor + end_lr
        return result

    def segment(self, t: int) -> Hashable:
        return min(t, int(require_steps(self.total, "total")))

    def params(self) -> dict[str, Any]:
        return {
            "type": "PolynomialDecay",
            "total": jsonable(self.total),
            "power": jsonable(self.power),
            "end_lr": jsonable(self.end_lr),
        }

    def resolve(self, steps_per_epoch: int | None) -> PolynomialDecay:
        return PolynomialDecay(resolve_value(self.total, steps_per_epoch, "total"), self.power, self.end_lr)

    def _check_resolved(self) -> None:
        require_steps(self.total, "total")


class Linear(Schedule):
    r"""Scale ``base_lr`` by a factor moving linearly from ``start_factor`` to ``end_factor`` over ``total_iters``
    steps, then hold ``end_factor * base_lr``: torch's ``LinearLR``.

    $$
    \mathrm{lr}(t) = \mathrm{base\_lr} \, \frac{s (T - \min(t, T)) + e \min(t, T)}{T}
    $$

    The two weights are formed in integers, so the factor is ``s`` at step 0 and ``e`` from ``T`` on up to the
    rounding of one product and one division (torch's closed form ``s + (e - s) min(t, T) / T`` is the same
    line, its recursive steps drift from it by a rounding per step).

    Args:
        start_factor: ``s``, a number in [0, 1] (torch's default 1/3).
        end_factor: ``e``, a number in [0, 1] (torch's default 1).
        total_iters: ``T`` > 0, an int or a duration (torch's default 5 steps).

    Raises:
        SteplrValueError, SteplrTypeError: for a factor outside [0, 1] or not a number, and a ``total_iters`` that
            is not a positive duration.

    Examples:
        >>> [Linear(0.5, 0.0, 4).lr(1.0, t) for t in (0, 2, 4, 9)]
        [0.5, 0.25, 0.0, 0.0]
    """

    def __init__(self, start_factor: Any = 1.0 / 3, end_factor: Any = 1.0, total_iters: Any = 5) -> None:
        self.start_factor = check_fraction(start_factor, "start_factor")
        self.end_factor = check_fraction(end_factor, "end_factor")
        self.total_iters = check_duration(total_iters, "total_iters")

    def _factor(self, t: Any) -> Any:
        total = require_steps(self.total_iters, "total_iters")
        done = np.minimum(t, total)
        return (self.start_factor * (total - done) + self.end_factor * done) / total

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        return base_lr * float(self._factor(t))

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = base_lr * self._factor(t)
        return result

    def segment(self, t: int) -> Hashable:
        total: int = require_steps(self.total_iters, "total_iters")
        return min(t, total)

    def params(self) -> dict[str, Any]:
        return {
            "type": "Linear",
            "start_factor": jsonable(self.start_factor),
            "end_factor": jsonable(self.end_factor),
            "total_iters": jsonable(self.total_iters),
        }

    def resolve(self, steps_per_epoch: int | None) -> Linear:
        total = resolve_value(self.total_iters, steps_per_epoch, "total_iters")
        return Linear(self.start_factor, self.end_factor, total)

    def _check_resolved(self) -> None:
        require_steps(self.total_iters, "total_iters")


class LinearWarmup(Linear):
    r"""Ramp linearly from ``start_factor * base_lr`` to ``base_lr`` over ``warmup_steps``, then hold.

    ``Linear`` with ``end_factor = 1`` (the same rates, bit for bit), under the names ``--warmup`` and saved
    configs and checkpoints use.

    $$
    \mathrm{lr}(t) = \mathrm{base\_lr} \left(s + (1 - s) \frac{\min(t, W)}{W}\right)
    $$

    Args:
        warmup_steps: ``W`` > 0 (int or duration).
        start_factor: ``s`` in [0, 1].

    Raises:
        SteplrValueError, SteplrTypeError: for a ``warmup_steps`` that is not a positive duration, or a
            ``start_factor`` outside [0, 1] or not a number.

    Examples:
        >>> [LinearWarmup(4, 0.2).lr(1.0, t) for t in (0, 2, 4, 9)]
        [0.2, 0.6, 1.0, 1.0]
    """

    def __init__(self, warmup_steps: Any, start_factor: Any = 0.1) -> None:
        try:
            super().__init__(start_factor, 1.0, warmup_steps)
        except (SteplrTypeError, SteplrValueError) as error:  # name the argument as this class calls it
            raise type(error)(str(error).replace("total_iters", "warmup_steps")) from None

    @property
    def warmup_steps(self) -> Any:
        """``W``: the steps of the ramp (``total_iters`` of ``Linear``)."""
        return self.total_iters

    def params(self) -> dict[str, Any]:
        return {
            "type": "LinearWarmup",
            "warmup_steps": jsonable(self.warmup_steps),
            "start_factor": jsonable(self.start_factor),
        }

    def resolve(self, steps_per_epoch: int | None) -> LinearWarmup:
        return LinearWarmup(resolve_value(self.warmup_steps, steps_per_epoch, "warmup_steps"), self.start_factor)

    def _check_resolved(self) -> None:
        require_steps(self.warmup_steps, "warmup_steps")


class ConstantFactor(Schedule):
    r"""``factor * base_lr`` for the first ``total_iters`` steps, then ``base_lr``: torch's ``ConstantLR``.

    $$
    \mathrm{lr}(t) = \mathrm{base\_lr} \cdot (f \text{ if } t < T \text{ else } 1)
    $$

    From step ``T`` on the rate is ``base_lr`` exactly (torch's recursive form divides by the factor again, which
    can leave it an ulp off, and fails for a factor of 0).

    Args:
        factor: ``f``, a number in [0, 1] (torch's default 1/3).
        total_iters: ``T`` > 0, an int or a duration (torch's default 5 steps).

    Raises:
        SteplrValueError, SteplrTypeError: for a factor outside [0, 1] or not a number, and a ``total_iters`` that
            is not a positive duration.

    Examples:
        >>> [ConstantFactor(0.5, 2).lr(1.0, t) for t in (0, 1, 2, 9)]
        [0.5, 0.5, 1.0, 1.0]
    """

    def __init__(self, factor: Any = 1.0 / 3, total_iters: Any = 5) -> None:
        self.factor = check_fraction(factor, "factor")
        self.total_iters = check_duration(total_iters, "total_iters")

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        return base_lr * float(self.factor) if t < int(require_steps(self.total_iters, "total_iters")) else base_lr

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        total = np.asarray(require_steps(self.total_iters, "total_iters"), dtype=np.int64)
        result: NDArray[np.float64] = np.where(t < total, base_lr * self.factor, base_lr)
        return result

    def segment(self, t: int) -> Hashable:
        return t < int(require_steps(self.total_iters, "total_iters"))

    def params(self) -> dict[str, Any]:
        return {"type": "ConstantFactor", "factor": jsonable(self.factor), "total_iters": jsonable(self.total_iters)}

    def resolve(self, steps_per_epoch: int | None) -> ConstantFactor:
        return ConstantFactor(self.factor, resolve_value(self.total_iters, steps_per_epoch, "total_iters"))

    def _check_resolved(self) -> None:
        require_steps(self.total_iters, "total_iters")


class Sequence(Schedule):
    """Run schedules one after another; each starts at its own local step 0 when its boundary is reached.

    Schedule ``i`` covers steps ``[boundaries[i-1], boundaries[i])`` and sees ``t - boundaries[i-1]``.

    Args:
        schedules: two or more schedules.
        boundaries: ``len(schedules) - 1`` strictly increasing steps > 0 (ints or durations).

    Raises:
        SteplrTypeError: for schedules that are not a non-empty list of scalar Schedule objects.
        SteplrValueError: for boundaries that are not one fewer than the schedules, or not strictly increasing.

    Examples:
        >>> warm_then_step = Sequence([LinearWarmup(2, 0.5), StepDecay(3, 0.1)], boundaries=[2])
        >>> [warm_then_step.lr(1.0, t) for t in range(7)]
        [0.5, 0.75, 1.0, 1.0, 1.0, 0.1, 0.1]
    """

    def __init__(self, schedules: SequenceABC[Schedule], boundaries: SequenceABC[Any]) -> None:
        schedules = list(schedules)
        if not schedules or not all(isinstance(s, Schedule) for s in schedules):
            raise SteplrTypeError(f"schedules must be a non-empty list of Schedule objects, got {schedules!r}")
        if not all(s.is_scalar for s in schedules):
            raise SteplrTypeError("schedules in a Sequence must have scalar parameters")
        if isinstance(boundaries, (str, bytes)):
            raise SteplrTypeError(f"boundaries must be a list of steps, got {boundaries!r}")
        boundaries = [check_duration(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
        if len(boundaries) != len(schedules) - 1:
            raise SteplrValueError(
                f"boundaries must have one entry fewer than schedules ({len(schedules) - 1}), got {len(boundaries)}"
            )
        if all(isinstance(b, int) for b in boundaries) and any(not a < b for a, b in pairwise(boundaries)):
            raise SteplrValueError(f"boundaries must be strictly increasing, got {boundaries!r}")
        self.schedules = schedules
        self.boundaries: list[Any] = boundaries

    @property
    def is_scalar(self) -> bool:
        return True

    def _locate(self, t: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.boundaries, t)
        return i, t - (self.boundaries[i - 1] if i else 0)

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        i, local = self._locate(t)
        return self.schedules[i]._lr_scalar(base_lr, local)

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        starts = np.asarray([0, *self.boundaries], dtype=np.int64)
        which = np.searchsorted(starts[1:], t, side="right")
        shape = np.broadcast_shapes(base_lr.shape, t.shape)
        out = np.empty(shape, dtype=np.float64)
        which_b = np.broadcast_to(which, shape)
        for i, schedule in enumerate(self.schedules):
            local = np.maximum(t - starts[i], 0)
            values = np.broadcast_to(schedule._lr_array(base_lr, local), shape)
            out[which_b == i] = values[which_b == i]
        return out

    def segment(self, t: int) -> Hashable:
        i, local = self._locate(t)
        return (i, self.schedules[i].segment(local))

    def params(self) -> dict[str, Any]:
        return {
            "type": "Sequence",
            "schedules": [s.params() for s in self.schedules],
            "boundaries": [jsonable(b) for b in self.boundaries],
        }

    def resolve(self, steps_per_epoch: int | None) -> Sequence:
        return Sequence(
            [s.resolve(steps_per_epoch) for s in self.schedules],
            [resolve_value(b, steps_per_epoch, f"boundaries[{i}]") for i, b in enumerate(self.boundaries)],
        )

    def _check_resolved(self) -> None:
        for i, b in enumerate(self.boundaries):
            require_steps(b, f"boundaries[{i}]")
        for s in self.schedules:
            s._check_resolved()


def join(schedules: SequenceABC[Schedule], boundaries: SequenceABC[Any]) -> Sequence:
    """``Sequence(schedules, boundaries)``: e.g. warm-up for 5 epochs, then step decay.

    Args:
        schedules: the schedules in the order they run; each starts at its own local step 0.
        boundaries: the steps where each next schedule takes over, one fewer than ``schedules``.

    Returns:
        The [`Sequence`][steplr.schedules.kinds.Sequence].

    Raises:
        SteplrValueError, SteplrTypeError: as [`Sequence`][steplr.schedules.kinds.Sequence].

    Examples:
        >>> join([LinearWarmup("5ep", 0.1), StepDecay("10ep", 0.5)], ["5ep"]).resolve(steps_per_epoch=1).lr(1.0, 15)
        0.5
    """
    return Sequence(schedules, boundaries)


_TYPES: dict[str, type[Schedule]] = {
    cls.__name__: cls
    for cls in (
        StepDecay,
        MultiStep,
        Exponential,
        Cosine,
        PolynomialDecay,
        Constant,
        LinearWarmup,
        Linear,
        ConstantFactor,
        Sequence,
    )
}


def _types() -> dict[str, type[Schedule]]:
    """Every kind a saved ``"type"`` may name: this module's and the cyclical ones (imported here, since that
    module builds on this one)."""
    from steplr.schedules.cycles import CYCLICAL

    return {**_TYPES, **{cls.__name__: cls for cls in CYCLICAL}}


def schedule_from_params(params: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from the output of [`Schedule.params`][steplr.schedules.kinds.Schedule.params].

    Checkpoints and saved configs hold schedules so.

    Args:
        params: a dict with a ``"type"`` key naming a schedule class and that class's parameters.

    Returns:
        The schedule, equal to the one whose ``params()`` these were.

    Raises:
        ValueError: for an unknown ``"type"`` or missing parameters.

    Examples:
        >>> schedule_from_params({"type": "StepDecay", "step_size": 10, "gamma": 0.5}) == StepDecay(10, 0.5)
        True
    """
    if not isinstance(params, dict) or "type" not in params:
        raise SteplrValueError(f"schedule parameters must be a dict with a 'type' key, got {params!r}")
    kind = params["type"]
    types = _types()
    if kind not in types:
        raise SteplrValueError(f"unknown schedule type {kind!r}; expected one of {sorted(types)}")
    kwargs = {k: v for k, v in params.items() if k != "type"}
    try:
        if kind == "Sequence":
            kwargs["schedules"] = [schedule_from_params(p) for p in kwargs.get("schedules", [])]
        return types[kind](**kwargs)
    except TypeError as error:
        raise SteplrValueError(f"bad parameters for {kind}: {error}") from None
