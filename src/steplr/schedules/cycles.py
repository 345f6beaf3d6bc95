"""Schedules that go up as well as down: cosine annealing with warm restarts, the one-cycle policy, cyclical rates.

The closed forms of torch's ``CosineAnnealingWarmRestarts``, ``OneCycleLR`` and ``CyclicLR`` (learning rates only;
momentum is the optimizer's business), each a ``Schedule`` whose arguments are
torch's, one for one. Every position inside a cycle is found in integers, so cycle boundaries fall on the right
step however long the run; the curves are evaluated in forms that keep their few-ulp accuracy where torch's own
formulas cancel digits (at the foot of a cosine, at the end of a linear anneal).

Imports NumPy and steplr's schedule helpers only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import (
    Param,
    check_duration,
    check_fraction,
    check_gamma,
    check_real,
    jsonable,
    require_steps,
    resolve_value,
)
from steplr.schedules._exact import ScalarMath, cosine_weights
from steplr.schedules.durations import MAX_STEPS, Duration
from steplr.schedules.kinds import Cosine, Schedule

__all__ = ["CosineWarmRestarts", "OneCycle", "Cyclic", "CYCLICAL", "ANNEAL_STRATEGIES", "CYCLIC_MODES"]

ANNEAL_STRATEGIES = ("cos", "linear")
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SteplrValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _check_t_mult(value: object) -> int | NDArray[np.int64]:
    """An integer >= 1 (or an integer array of them): torch's ``T_mult``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise SteplrTypeError(f"t_mult must be an integer array, got dtype {value.dtype}")
        if (value < 1).any():
            raise SteplrValueError(f"t_mult must be an integer >= 1, got {int(value[value < 1].flat[0])!r}")
        return value.astype(np.int64)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SteplrTypeError(f"t_mult must be an integer >= 1, got {value!r}")
    if not 1 <= int(value) <= MAX_STEPS:
        raise SteplrValueError(f"t_mult must be an integer >= 1, got {value!r}")
    return int(value)


def _check_lr(value: object, name: str) -> Param:
    """A finite number >= 0 (or an array of them), named in the error."""
    checked = check_real(value, name)
    if np.any(np.asarray(checked) < 0.0):
        raise SteplrValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return checked


class CosineWarmRestarts(Schedule):
    r"""Cosine annealing from ``base_lr`` to ``eta_min`` that restarts at ``base_lr``: torch's
    ``CosineAnnealingWarmRestarts`` (SGDR), each cycle ``t_mult`` times as long as the one before.

    $$
    \mathrm{lr}(t) = \eta_{min} + (\mathrm{base\_lr} - \eta_{min}) \frac{1 + \cos(\pi n / T_i)}{2}
    $$

    where cycle ``i`` lasts ``T_i = t_0 * t_mult**i`` steps and ``n`` is ``t``'s step within it. The cycle is found
    in integers (no logarithm, which can round a step at a cycle's start into the cycle before), and the weights
    are ``steplr.schedules._exact.cosine_weights``: a few ulps from the exact value also at the foot of each
    cycle, where torch's ``1 + cos`` loses digits.

    Args:
        t_0: the first cycle's length ``T_0``, > 0 (int or duration).
        t_mult: ``T_mult``, an integer >= 1 (default 1: every cycle ``t_0`` long).
        eta_min: the floor, a finite number >= 0 (default 0).

    Raises:
        SteplrValueError, SteplrTypeError: for a ``t_0`` that is not a positive duration, a ``t_mult`` that is not an
            integer >= 1, or a bad ``eta_min`` (each named).

    Examples:
        >>> [CosineWarmRestarts(2, 2).lr(1.0, t) for t in range(7)]
        [1.0, 0.5, 1.0, 0.8535533905932737, 0.5, 0.14644660940672624, 1.0]
    """

    def __init__(self, t_0: Any, t_mult: Any = 1, eta_min: Any = 0.0) -> None:
        self.t_0 = check_duration(t_0, "t_0")
        self.t_mult = _check_t_mult(t_mult)
        self.eta_min = Cosine._check_eta_min(eta_min)

    def cycle(self, t: int) -> tuple[int, int]:
        """Step ``t``'s place in its cycle and that cycle's length, found in integers.

        Args:
            t: a 0-based scheduler step (the schedule resolved to steps).

        Returns:
            ``(n, T_i)``: the step within the cycle, from 0, and the cycle's length.

        Examples:
            >>> [CosineWarmRestarts(2, 2).cycle(t) for t in (0, 1, 2, 5, 6)]
            [(0, 2), (1, 2), (0, 4), (3, 4), (0, 8)]
        """
        t_0, t_mult = int(require_steps(self.t_0, "t_0")), int(self.t_mult)
        if t_mult == 1:
            return t % t_0, t_0
        start, length = 0, t_0
        while t - start >= length:  # at most 62 cycles: lengths double at least
            start, length = start + length, length * t_mult
        return t - start, length

    def _cycles(self, t: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``cycle`` for arrays: every element walks its own cycles, all at once, in int64 without overflow."""
        t_0 = np.asarray(require_steps(self.t_0, "t_0"), dtype=np.int64)
        t_mult = np.asarray(self.t_mult, dtype=np.int64)
        shape = np.broadcast_shapes(t.shape, t_0.shape, t_mult.shape)
        t, t_0, t_mult = (np.broadcast_to(a, shape) for a in (t, t_0, t_mult))
        fixed = t_mult == 1
        start = np.where(fixed, t - t % t_0, 0)
        length = t_0.copy()
        cap = MAX_STEPS // t_mult + 1  # a length above this times t_mult exceeds every step: no need to form it
        while True:
            past = ~fixed & (t - start >= length)
            if not past.any():
                return t - start, length
            start = np.where(past, start + length, start)
            length = np.where(past, np.minimum(length, cap) * t_mult, length)

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        n, length = self.cycle(t)
        high, low = cosine_weights(n, length, ScalarMath)
        return float(base_lr * high + float(self.eta_min) * low)

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        n, length = self._cycles(t)
        high, low = cosine_weights(n, length)
        result: NDArray[np.float64] = base_lr * high + np.asarray(self.eta_min, dtype=np.float64) * low
        return result

    def segment(self, t: int) -> Hashable:
        return self.cycle(t)

    def params(self) -> dict[str, Any]:
        return {
            "type": "CosineWarmRestarts",
            "t_0": jsonable(self.t_0),
            "t_mult": jsonable(self.t_mult),
            "eta_min": jsonable(self.eta_min),
        }

    def resolve(self, steps_per_epoch: int | None) -> CosineWarmRestarts:
        return CosineWarmRestarts(resolve_value(self.t_0, steps_per_epoch, "t_0"), self.t_mult, self.eta_min)

    def _check_resolved(self) -> None:
        require_steps(self.t_0, "t_0")


class OneCycle(Schedule):
    r"""The one-cycle policy with ``base_lr`` as its peak: torch's ``OneCycleLR`` with ``max_lr = base_lr``.

    From ``base_lr / div_factor`` up to ``base_lr`` until step ``pct_start * total_steps - 1``, then down to
    ``base_lr / div_factor / final_div_factor`` at step ``total_steps - 1`` (with ``three_phase``: back down to the
    start by step ``2 * pct_start * total_steps - 2`` first, then to the floor). Each phase runs from its start
    value ``a`` to its end value ``b`` along

    $$
    \text{cos: } a \frac{1 + \cos \pi p}{2} + b \frac{1 - \cos \pi p}{2}, \qquad
    \text{linear: } a (1 - p) + b p
    $$

    with ``p`` the fraction of the phase done. The phase ends are torch's, the same floats compared the same way,
    so every step falls in the phase torch puts it in. The weights are evaluated as ``sin(pi (1 - p) / 2) ** 2``
    and ``sin(pi p / 2) ** 2`` with ``1 - p`` formed from the steps left, and the linear anneal as that weighted
    sum: a few ulps from the exact value at every step, where torch's ``b + (a - b) (1 + cos) / 2`` and
    ``(b - a) p + a`` lose digits as the rate nears the floor.

    **After** ``total_steps``: torch evaluates step ``total_steps`` by carrying the last phase past its end (the
    cosine climbs back a little, the line goes below the floor) and raises from the step after. Here every step
    from ``total_steps - 1`` on keeps that step's rate: the floor ``base_lr / div_factor / final_div_factor``
    whenever the last phase has begun by then (torch's phase ends leave it out when ``pct_start`` is 1, or above
    1/2 with ``three_phase``), so a run longer than the cycle ends at the floor.

    Args:
        total_steps: the cycle's length in steps, > 0 (int or duration).
        pct_start: the share of the cycle spent rising, a number in [0, 1] (default 0.3).
        anneal_strategy: ``"cos"`` (default) or ``"linear"``.
        div_factor: the start is ``base_lr / div_factor``; a finite number > 0 (default 25).
        final_div_factor: the floor is the start divided by this; a finite number > 0 (default 1e4).
        three_phase: come back down to the start before falling to the floor (default False).

    Raises:
        SteplrValueError, SteplrTypeError: for a bad value of any argument (named), and for
            ``pct_start * total_steps == 1``, which makes the first phase zero steps long (torch divides by zero
            at step 0).

    Examples:
        >>> [round(OneCycle(10, 0.5, "linear", div_factor=10).lr(1.0, t), 6) for t in (0, 2, 4, 9, 12)]
        [0.1, 0.55, 1.0, 1e-05, 1e-05]
    """

    def __init__(
        self,
        total_steps: Any,
        pct_start: Any = 0.3,
        anneal_strategy: Any = "cos",
        div_factor: Any = 25.0,
        final_div_factor: Any = 1e4,
        three_phase: Any = False,
    ) -> None:
        self.total_steps = check_duration(total_steps, "total_steps")
        self.pct_start = check_fraction(pct_start, "pct_start")
        self.anneal_strategy = _check_choice(anneal_strategy, "anneal_strategy", ANNEAL_STRATEGIES)
        self.div_factor = check_gamma(div_factor, "div_factor")
        self.final_div_factor = check_gamma(final_div_factor, "final_div_factor")
        if not isinstance(three_phase, (bool, np.bool_)):
            raise SteplrTypeError(f"three_phase must be True or False, got {three_phase!r}")
        self.three_phase = bool(three_phase)
        if not isinstance(self.total_steps, Duration):  # in epochs: checked once resolved
            self._check_first_phase()

    def _check_first_phase(self) -> None:
        rise = np.asarray(self.pct_start) * np.asarray(self.total_steps, dtype=np.float64)
        if (rise == 1.0).any():
            raise SteplrValueError(
                f"pct_start * total_steps must not be 1 (the rise would last zero steps), got pct_start "
                f"{jsonable(self.pct_start)!r} and total_steps {jsonable(self.total_steps)!r}"
            )

    def _ends(self, total: Any) -> list[Any]:
        """Each phase's last step, as torch computes it (floats; the last is ``total_steps - 1``)."""
        # Python's float * int rounds as float64 * float64 does: arrays and scalars get torch's ends alike
        pct, steps = np.asarray(self.pct_start, dtype=np.float64), np.asarray(total, dtype=np.float64)
        middle = [2 * pct * steps - 2] if self.three_phase else []
        return [pct * steps - 1, *middle, steps - 1]

    def _rates(self, base_lr: Any) -> list[tuple[Any, Any]]:
        """Each phase's (start, end) rate: torch's ``initial_lr``, ``max_lr`` and ``min_lr``."""
        initial = base_lr / self.div_factor
        floor = initial / self.final_div_factor
        if self.three_phase:
            return [(initial, base_lr), (base_lr, initial), (initial, floor)]
        return [(initial, base_lr), (base_lr, floor)]

    def _anneal(self, start: Any, end: Any, a: Any, b: Any, t: Any, xp: Any) -> Any:
        done, left = (t - start) / (end - start), (end - t) / (end - start)
        if self.anneal_strategy == "linear":
            return a * left + b * done
        high, low = xp.sin(xp.pi * left / 2), xp.sin(xp.pi * done / 2)
        return a * (high * high) + b * (low * low)

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        return self._along(t, self._rates(base_lr))

    def momentum(self, t: int, base_momentum: float, max_momentum: float) -> float:
        """Torch's cycled momentum at step ``t``: from ``max_momentum`` down to ``base_momentum`` while the rate
        rises, back up while it falls (with ``three_phase``, back up while it comes down to the start, then held
        at ``max_momentum``); along the same phases and curve as the rate, and held after ``total_steps``.

        Args:
            t: a 0-based scheduler step.
            base_momentum: the momentum at the rate's peak (torch's default 0.85).
            max_momentum: the momentum at the cycle's ends (torch's default 0.95).

        Returns:
            The momentum of step ``t``.

        Examples:
            >>> [round(OneCycle(10, 0.5, "linear").momentum(t, 0.85, 0.95), 6) for t in (0, 2, 4, 9, 12)]
            [0.95, 0.9, 0.85, 0.95, 0.95]
        """
        down, up = (max_momentum, base_momentum), (base_momentum, max_momentum)
        return self._along(t, [down, up, (max_momentum, max_momentum)] if self.three_phase else [down, up])

    def _along(self, t: int, pairs: list[tuple[Any, Any]]) -> float:
        """Step ``t``'s value on the phases, phase ``i`` running from ``pairs[i][0]`` to ``pairs[i][1]``."""
        total = int(require_steps(self.total_steps, "total_steps"))
        t = min(t, total - 1)
        start = 0.0
        ends = [float(e) for e in self._ends(total)]
        for i, ((a, b), end) in enumerate(zip(pairs, ends)):
            if t <= end or i == len(ends) - 1:
                return float(self._anneal(start, end, a, b, float(t), math))
            start = end
        raise AssertionError("unreachable: the last phase takes every step")

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        total = np.asarray(require_steps(self.total_steps, "total_steps"), dtype=np.int64)
        steps = np.minimum(t, total - 1).astype(np.float64)
        ends = [np.asarray(e, dtype=np.float64) for e in self._ends(total)]
        starts = [np.zeros_like(ends[0]), *ends[:-1]]
        phase = np.full(np.broadcast_shapes(steps.shape, *(e.shape for e in ends)), len(ends) - 1)
        for i in reversed(range(len(ends) - 1)):  # the first phase whose end the step has not passed
            phase = np.where(steps <= ends[i], i, phase)
        out = np.zeros(np.broadcast_shapes(phase.shape, base_lr.shape), dtype=np.float64)
        for i, ((a, b), start, end) in enumerate(zip(self._rates(base_lr), starts, ends)):
            mine = np.broadcast_to(phase == i, out.shape)
            if mine.any():
                with np.errstate(divide="ignore", invalid="ignore"):  # other phases' steps are discarded
                    values = self._anneal(start, end, a, b, steps, np)
                out[mine] = np.broadcast_to(values, out.shape)[mine]
        return out

    def segment(self, t: int) -> Hashable:
        return min(t, int(require_steps(self.total_steps, "total_steps")) - 1)

    def params(self) -> dict[str, Any]:
        return {
            "type": "OneCycle",
            "total_steps": jsonable(self.total_steps),
            "pct_start": jsonable(self.pct_start),
            "anneal_strategy": self.anneal_strategy,
            "div_factor": jsonable(self.div_factor),
            "final_div_factor": jsonable(self.final_div_factor),
            "three_phase": self.three_phase,
        }

    def resolve(self, steps_per_epoch: int | None) -> OneCycle:
        total = resolve_value(self.total_steps, steps_per_epoch, "total_steps")
        return OneCycle(
            total, self.pct_start, self.anneal_strategy, self.div_factor, self.final_div_factor, self.three_phase
        )

    def _check_resolved(self) -> None:
        require_steps(self.total_steps, "total_steps")


def _power(gamma: float, k: int) -> float:
    """``gamma ** k`` by C's pow (one rounding), overflowing to inf instead of raising."""
    try:
        return math.pow(gamma, k)
    except OverflowError:
        return math.inf


class Cyclic(Schedule):
    r"""Rates cycling between ``base_lr`` and ``max_lr``: torch's ``CyclicLR`` (its learning rates; a custom
    ``scale_fn`` and the momentum cycle are not part of it).

    Each cycle rises for ``step_size_up`` steps and falls for ``step_size_down`` (default: as many). With ``n`` the
    step within the cycle and ``c`` the cycle's number counted from 1,

    $$
    \mathrm{lr}(t) = \mathrm{base\_lr} + (\mathrm{max\_lr} - \mathrm{base\_lr}) \, h(n) \, s(t)
    $$

    where ``h`` climbs ``n / up`` to 1 and falls ``(up + down - n) / down`` back, and ``s`` is 1 (``triangular``),
    ``2 ** (1 - c)`` (``triangular2``: each cycle half the height) or ``gamma ** t`` (``exp_range``). ``n`` and
    ``c`` come from integer division, so the rate repeats exactly every cycle (torch forms them from ``t / L`` in
    floating point, whose error grows with ``t``).

    Args:
        max_lr: the other end of the cycle, a finite number >= 0 (absolute, not a factor).
        step_size_up: steps of the rise, > 0 (int or duration; torch's default 2000).
        step_size_down: steps of the fall, > 0, or None for ``step_size_up``.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: ``exp_range``'s factor per step, a finite number > 0 (default 1; the other modes ignore it).

    Raises:
        SteplrValueError, SteplrTypeError: for a bad value of any argument (named).

    Examples:
        >>> [Cyclic(1.0, 2, mode="triangular2").lr(0.0, t) for t in range(9)]
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.25, 0.5, 0.25, 0.0]
    """

    def __init__(
        self,
        max_lr: Any,
        step_size_up: Any = 2000,
        step_size_down: Any = None,
        mode: Any = "triangular",
        gamma: Any = 1.0,
    ) -> None:
        self.max_lr = _check_lr(max_lr, "max_lr")
        self.step_size_up = check_duration(step_size_up, "step_size_up")
        self.step_size_down = None if step_size_down is None else check_duration(step_size_down, "step_size_down")
        self.mode = _check_choice(mode, "mode", CYCLIC_MODES)
        self.gamma = check_gamma(gamma)

    def _sizes(self) -> tuple[Any, Any]:
        up = require_steps(self.step_size_up, "step_size_up")
        down = up if self.step_size_down is None else require_steps(self.step_size_down, "step_size_down")
        return up, down

    def _height(self, t: Any, xp: Any) -> tuple[Any, Any]:
        """``(h(n), c)`` for step(s) ``t``."""
        up, down = self._sizes()
        whole = up + down
        n = t % whole
        climb = xp.where(n <= up, n / up, (whole - n) / down)
        return climb, t // whole + 1

    def _lr_scalar(self, base_lr: float, t: int) -> float:
        climb, cycle = self._height(t, ScalarMath)
        height = (float(self.max_lr) - base_lr) * climb
        if self.mode == "triangular2":
            return float(base_lr + height * math.ldexp(1.0, 1 - cycle))
        if self.mode == "exp_range":
            return float(base_lr + height * _power(float(self.gamma), t))
        return float(base_lr + height)

    _powers = np.frompyfunc(_power, 2, 1)  # scalar and array paths share C's pow: NumPy's may differ in the last bit

    def _lr_array(self, base_lr: NDArray[np.float64], t: NDArray[np.int64]) -> NDArray[np.float64]:
        climb, cycle = self._height(t, np)
        height = (np.asarray(self.max_lr, dtype=np.float64) - base_lr) * climb
        if self.mode == "triangular2":
            height = height * np.ldexp(1.0, np.maximum(1 - cycle, -1100).astype(np.int32))
        elif self.mode == "exp_range":
            height = height * np.asarray(self._powers(np.asarray(self.gamma, dtype=np.float64), t), dtype=np.float64)
        result: NDArray[np.float64] = base_lr + height
        return result

    def segment(self, t: int) -> Hashable:
        if self.mode == "exp_range":
            return t
        up, down = self._sizes()
        n = t % (int(up) + int(down))
        return n if self.mode == "triangular" else (n, t // (int(up) + int(down)))

    def params(self) -> dict[str, Any]:
        return {
            "type": "Cyclic",
            "max_lr": jsonable(self.max_lr),
            "step_size_up": jsonable(self.step_size_up),
            "step_size_down": jsonable(self.step_size_down),
            "mode": self.mode,
            "gamma": jsonable(self.gamma),
        }

    def resolve(self, steps_per_epoch: int | None) -> Cyclic:
        down = None
        if self.step_size_down is not None:
            down = resolve_value(self.step_size_down, steps_per_epoch, "step_size_down")
        up = resolve_value(self.step_size_up, steps_per_epoch, "step_size_up")
        return Cyclic(self.max_lr, up, down, self.mode, self.gamma)

    def _check_resolved(self) -> None:
        self._sizes()


CYCLICAL: tuple[type[Schedule], ...] = (CosineWarmRestarts, OneCycle, Cyclic)
