"""The rates behind ``step()``: for each kind of schedule, the closed-form learning rates of each step for a list
of base rates, computed once per step for all groups where the kind allows, in the schedule's own operations
(so the same bits as ``schedule.lr``; the tests compare them at every step).

Imports steplr's schedules only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Hashable
from typing import Any, cast

from steplr.lr_scheduler._powers import PowerBlocks, powers_fit
from steplr.schedules._exact import PowerSeries, fractional_cosine_weights, scalar_cosine_weights
from steplr.schedules.cycles import CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.cycles import _power as _cyclic_power
from steplr.schedules.kinds import Cosine, Exponential, Linear, PolynomialDecay, Schedule, StepDecay, _PowerDecay

__all__: list[str] = []

# The kinds that form their rates ahead (OneCycle, Cyclic, the cosine-like weights) form them for a block of
# steps at once: _FIRST steps after a jump (a run stepped by step(epoch) pays little for steps it skips), twice as
# many each time a block follows the one before, up to _BLOCK.
_FIRST = 8
_BLOCK = 256


def _grown(t: int, start: int, count: int) -> int:
    """The size of the next block, from step ``t``, after the block ``start .. start + count - 1``."""
    return max(_FIRST, min(2 * count, _BLOCK)) if t == start + count else _FIRST


class _Rates:
    """The closed-form learning rates of each step for a list of base learning rates.

    ``at(t)`` returns ``None`` when step ``t`` lies in the same segment as the step asked for before (the same
    values); ``values(t)`` always returns them; ``reset()`` makes the next ``at`` return them.
    """

    def __init__(self, schedule: Schedule, bases: list[float]) -> None:
        self.schedule = schedule
        self.bases = list(bases)
        self._segment: Hashable = object()

    def reset(self) -> None:
        self._segment = object()

    # Subclasses keep their state in generators, which neither pickle nor copy: a copy starts afresh.
    def __getstate__(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "bases": self.bases}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["schedule"], state["bases"])  # type: ignore[misc]

    def at(self, t: int) -> list[float] | None:
        segment = self.schedule.segment(t)
        if segment == self._segment:
            return None
        self._segment = segment
        return self.values(t)

    def values(self, t: int) -> list[float]:
        if t < 0:  # the step before the first: the base rates (SequentialLR's schedulers not started yet)
            return list(self.bases)
        lr = self.schedule._lr_scalar
        return [lr(base, t) for base in self.bases]


class _PowerRates(_Rates):
    """``base_lr * gamma ** k(t)``: the power carried from one decay to the next (see :class:`PowerSeries`)."""

    def __init__(self, schedule: _PowerDecay, bases: list[float]) -> None:
        super().__init__(schedule, bases)
        self._decays = schedule.decays
        self._k = -1
        # StepDecay's k(t) = t // step_size, asked for at every step: the division here, without two calls
        self._step_size = int(schedule.params()["step_size"]) if type(schedule) is StepDecay else 0
        self._series: PowerSeries | PowerBlocks = PowerSeries(float(schedule.gamma), self.bases)
        if type(schedule) is Exponential or self._step_size == 1:  # k(t) = t: no call in between
            if powers_fit(
                float(schedule.gamma), self.bases
            ):  # a new k at every step for several bases: a block of k at a time
                self._series = PowerBlocks(float(schedule.gamma), self.bases)
            self.at = self._series.at  # type: ignore[method-assign,assignment]

    def reset(self) -> None:
        self._k = -1
        self._series.forget()

    def at(self, t: int) -> list[float] | None:
        k = t // self._step_size if self._step_size else self._decays(t)
        if k == self._k:
            return None
        self._k = k
        return self._series.at(k)

    def values(self, t: int) -> list[float]:
        return list(self.bases) if t < 0 else self._series.values(self._decays(t))


_Weights = Callable[[int, Any], tuple[float, float]]


class _WeightRates(_Rates):
    """Schedules whose rate is ``base_lr * high(t) + floor * low(t)`` (cosine annealing, warm restarts, the linear
    and polynomial factors with ``low = 0``): the two weights of step ``t`` once for all groups, in the same
    operations as the schedule's ``_lr_scalar`` (so the same bits); the state in a generator's locals."""

    def __init__(self, schedule: Schedule, bases: list[float]) -> None:
        super().__init__(schedule, bases)
        found = _weights_of(schedule)
        assert found is not None  # _rates_for asked _weights_of first
        walk = self._walk(*found)
        next(walk)
        self.at = walk.send  # type: ignore[method-assign,assignment]

    def values(self, t: int) -> list[float]:
        return list(self.bases) if t < 0 else self.at(t)  # type: ignore[return-value]  # never None

    def _walk(self, weights: _Weights, argument: Any, floor: float) -> Generator[list[float], int, None]:
        bases = self.bases
        single = len(bases) == 1
        base = bases[0]
        block: list[float] = []  # one group: the values of the block's steps
        pairs: list[tuple[float, float]] = []  # several: each step's weights, its values formed when asked for
        start = count = 0
        t = yield []
        while True:
            i = t - start
            if 0 <= i < count:
                if single:
                    t = yield [block[i]]
                else:  # formed now: a block of lists would be cold in the cache by the time a step reads it
                    high, lowest = pairs[i]
                    t = yield [b * high + lowest for b in bases]
                continue
            # a block of steps from t, in a tight loop (the same operations per step)
            size = _grown(t, start, count)
            if t < 0:
                pairs = [weights(t, argument)]
            elif weights is _restart_weights:
                pairs = _restart_block(t, argument, size)
            else:
                pairs = [weights(s, argument) for s in range(t, t + size)]
            start, count = t, len(pairs)
            if single:
                block = [base * high + floor * low for high, low in pairs]
            else:
                pairs = [(high, floor * low) for high, low in pairs]
            # and round again: the block now holds step t


def _linear_weights(t: int, line: tuple[float, float, int]) -> tuple[float, float]:
    start, end, total = line  # kinds.Linear's factor: (s (T - m) + e m) / T
    done = t if t < total else total
    return (start * (total - done) + end * done) / total, 0.0


def _polynomial_weights(t: int, curve: tuple[int, float]) -> tuple[float, float]:
    total, power = curve  # kinds.PolynomialDecay with end_lr 0: base_lr * (1 - min(t, T) / T) ** p
    return math.pow(1.0 - min(t, total) / total, power), 0.0


def _restart_weights(t: int, schedule: CosineWarmRestarts) -> tuple[float, float]:
    return scalar_cosine_weights(*schedule.cycle(t))  # the step inside its cycle: t % (2 T_i) is the step itself


def _restart_block(t: int, schedule: CosineWarmRestarts, size: int) -> list[tuple[float, float]]:
    """:func:`_restart_weights` of ``size`` steps from ``t``: the cycle found once, then walked a step at a time
    (a cycle of length ``T_i`` ends when its step reaches ``T_i``; the next is ``T_mult`` times as long), each
    step's weights in the operations of :func:`scalar_cosine_weights` (inside a cycle ``n < T_i``, so its fold
    ``min(n, 2 T_i - n)`` is ``n`` itself), without a call per step."""
    n, length = schedule.cycle(t)
    t_mult = int(schedule.t_mult)
    sin, cos, pi = math.sin, math.cos, math.pi
    pairs = []
    period = 2 * length
    for _ in range(size):
        if 2 * n < length:
            sin_near = sin(pi * n / period)
            pairs.append(((1 + cos(pi * n / length)) / 2, sin_near * sin_near))
        elif 2 * n == length:
            cos_x = cos(pi * n / length)
            pairs.append(((1 + cos_x) / 2, (1 - cos_x) / 2))
        else:
            cos_x = cos(pi * n / length)
            sin_far = sin(pi * (length - n) / period)
            pairs.append((sin_far * sin_far, (1 - cos_x) / 2))
        n += 1
        if n == length:
            n, length = 0, length * t_mult
            period = 2 * length
    return pairs


def _weights_of(schedule: Schedule) -> tuple[_Weights, Any, float] | None:
    """``(weights, argument, floor)`` for a schedule :class:`_WeightRates` evaluates, else None."""
    if not schedule.is_scalar:
        return None
    params = schedule.params()
    kind = type(schedule)
    if kind is Cosine:
        t_max = params["t_max"]
        weights = fractional_cosine_weights if isinstance(t_max, float) else scalar_cosine_weights
        return weights, t_max, float(params["eta_min"])
    if kind is CosineWarmRestarts:
        return _restart_weights, schedule, float(params["eta_min"])
    if isinstance(schedule, Linear):  # LinearWarmup too: the same line
        total = cast(int, schedule.total_iters)  # resolved to steps by the constructor
        line = (float(schedule.start_factor), float(schedule.end_factor), int(total))
        return _linear_weights, line, 0.0
    if kind is PolynomialDecay and float(params["end_lr"]) == 0.0:
        return _polynomial_weights, (int(params["total"]), float(params["power"])), 0.0
    return None


class _OneCycleRates(_Rates):
    """The one-cycle policy: step ``t``'s phase and its two weights once for all groups, in the operations of
    ``OneCycle._anneal`` (so the same bits), and with them the cycled momentum
    :class:`~steplr.lr_scheduler.OneCycleLR` writes (see :meth:`set_momentum`). The values of a block of steps
    are formed at once, in a tight loop: each step then only picks its own (a jump outside the block forms a new
    one from there)."""

    def __init__(self, schedule: OneCycle, bases: list[float]) -> None:
        super().__init__(schedule, bases)
        self._last = int(schedule.params()["total_steps"]) - 1
        self._ends = [float(end) for end in schedule._ends(self._last + 1)]
        self._cosine = schedule.anneal_strategy == "cos"
        by_group = [schedule._rates(base) for base in self.bases]
        self._pairs = [[pairs[i] for pairs in by_group] for i in range(len(self._ends))]  # per phase, per group
        self._seen: int | None = None  # the step at() answered last (None: answer the next one whatever it is)
        self._start, self._count = 0, 0  # the block: steps start .. start + count - 1
        self._lrs: list[list[float]] = []
        self.momentum_of: object = None  # the momentum settings the blocks also hold values for
        self._momentum_pairs: list[list[tuple[float, float]]] = []  # per phase, per group, as _pairs
        self._moms: list[list[float]] = []  # several groups' momentum over the block
        self._mom: list[float] = []  # one group's

    def set_momentum(self, settings: object, lows: list[float], highs: list[float]) -> None:
        """Form each step's momentum too, from ``highs`` down to ``lows`` while the rate rises and back (held at
        ``highs`` in the third phase), for the settings ``settings`` (kept to tell when they change)."""
        down, up, held = list(zip(highs, lows)), list(zip(lows, highs)), list(zip(highs, highs))
        self._momentum_pairs = [down, up, held] if len(self._pairs) == 3 else [down, up]
        self.momentum_of = settings
        self._count = 0  # the next step forms a block with them

    def _fill(self, t: int) -> None:
        """Form the block from step ``t`` (``0 <= t <= _last``): the phase found once, then followed step by step
        (the first phase whose end ``t`` has not passed, as ``OneCycle`` picks it)."""
        stop = min(t + _grown(t, self._start, self._count), self._last + 1)
        self._start, self._count = t, stop - t
        ends = self._ends
        final = len(ends) - 1
        phase, start = 0, 0.0
        while t > ends[phase] and phase < final:
            start = ends[phase]
            phase += 1
        end = ends[phase]
        if len(self.bases) == 1 and self.momentum_of is not None and len(self._momentum_pairs[0]) == 1:
            self._fill_one(t, stop, phase, start, end)
            return
        cosine, sin, pi = self._cosine, math.sin, math.pi
        weights = []
        for s in range(t, stop):
            while s > end and phase < final:
                start, phase = end, phase + 1
                end = ends[phase]
            done, left = (s - start) / (end - start), (end - s) / (end - start)
            if cosine:
                high, low = sin(pi * left / 2), sin(pi * done / 2)
                done, left = low * low, high * high
            weights.append((phase, left, done))
        self._lrs = _along_all(weights, self._pairs)
        if self.momentum_of is not None:
            moms = self._momentum_pairs
            if len(moms[0]) == 1:
                ones = [pairs[0] for pairs in moms]
                self._mom = [ones[phase][0] * high + ones[phase][1] * low for phase, high, low in weights]
            else:
                self._moms = _along_all(weights, moms)

    def _fill_one(self, t: int, stop: int, phase: int, start: float, end: float) -> None:
        """:meth:`_fill`'s loop for one group's rate and momentum: each value formed in the loop, without a list of
        weights between (the same operations as :func:`_along_all`, so the same bits)."""
        ends, final = self._ends, len(self._ends) - 1
        rates = [pairs[0] for pairs in self._pairs]
        moms = [pairs[0] for pairs in self._momentum_pairs]
        (a, b), (c, d) = rates[phase], moms[phase]
        cosine, sin, pi = self._cosine, math.sin, math.pi
        lrs, mom = [], []
        for s in range(t, stop):
            while s > end and phase < final:
                start, phase = end, phase + 1
                end = ends[phase]
                (a, b), (c, d) = rates[phase], moms[phase]
            done, left = (s - start) / (end - start), (end - s) / (end - start)
            if cosine:
                high, low = sin(pi * left / 2), sin(pi * done / 2)
                done, left = low * low, high * high
            lrs.append([a * left + b * done])
            mom.append(c * left + d * done)
        self._lrs, self._mom = lrs, mom

    def _index(self, t: int) -> int:
        if t > self._last:
            t = self._last
        i = t - self._start
        if not 0 <= i < self._count:
            self._fill(t)
            i = 0
        return i

    def momentum(self, t: int) -> list[float]:
        """Step ``t``'s momentum, one per group of the settings (``t >= 0``, after :meth:`set_momentum`)."""
        i = self._index(t)  # may form a new block: before reading it
        return [self._mom[i]] if len(self._momentum_pairs[0]) == 1 else self._moms[i]

    def one_momentum(self, t: int) -> float:
        """Step ``t``'s momentum for settings of one group (``t >= 0``, after :meth:`set_momentum`)."""
        if t > self._last:
            t = self._last
        i = t - self._start
        if not 0 <= i < self._count:
            self._fill(t)
            i = 0
        return self._mom[i]

    def reset(self) -> None:
        super().reset()
        self._seen = None

    def at(self, t: int) -> list[float] | None:
        if t > self._last:
            t = self._last
        if t == self._seen:
            return None
        self._seen = t
        if t < 0:
            return list(self.bases)
        i = t - self._start
        if not 0 <= i < self._count:
            self._fill(t)
            i = 0
        return self._lrs[i]

    def values(self, t: int) -> list[float]:
        if t < 0:
            return list(self.bases)
        i = self._index(t)  # may form a new block: before reading _lrs
        return list(self._lrs[i])


def _along_all(weights: list[tuple[int, float, float]], pairs: list[list[tuple[float, float]]]) -> list[list[float]]:
    """Each step's values ``a * high + b * low`` on phases running from ``a`` to ``b`` (``pairs[phase][group]``)."""
    if all(len(phase) == 1 for phase in pairs):
        ones = [phase[0] for phase in pairs]
        return [[ones[phase][0] * high + ones[phase][1] * low] for phase, high, low in weights]
    return [[a * high + b * low for a, b in pairs[phase]] for phase, high, low in weights]


class _CyclicRates(_Rates):
    """Cyclical rates: step ``t``'s climb ``h`` and scale ``s`` once for all groups (and for the momentum
    :class:`~steplr.lr_scheduler.CyclicLR` writes, see :meth:`set_momentum`), in the operations of
    ``Cyclic._lr_scalar``: ``base_lr + ((max_lr - base_lr) * h) * s`` (so the same bits)."""

    def __init__(self, schedule: Cyclic, bases: list[float]) -> None:
        super().__init__(schedule, bases)
        params = schedule.params()
        self._up = int(params["step_size_up"])
        self._whole = self._up + (self._up if params["step_size_down"] is None else int(params["step_size_down"]))
        self._mode = str(params["mode"])
        self._gamma = float(params["gamma"])
        self._heights = [float(params["max_lr"]) - base for base in self.bases]
        self._seen: int | None = None  # the step at() answered last (None: answer the next one whatever it is)
        self._start, self._count = 0, 0  # the block: steps start .. start + count - 1
        self._factors: list[tuple[float, float | None]] = []
        self._lrs: list[float] = []  # one group: its values over the block
        self.momentum_of: object = None  # the momentum settings the blocks also hold values for
        self._lows: list[float] = []
        self._highs: list[float] = []
        self._mom: list[float] = []  # settings of one group: its momentum over the block

    def set_momentum(self, settings: object, lows: list[float], highs: list[float]) -> None:
        """Form each step's momentum too, ``high + (low - high) * h * s`` (the rate's curve from ``highs`` at
        ``base_lr`` to ``lows`` at ``max_lr``), for the settings ``settings`` (kept to tell when they change)."""
        self._lows, self._highs = list(lows), list(highs)
        self.momentum_of = settings
        self._count = 0  # the next step forms a block with them

    def momentum(self, t: int) -> list[float]:
        """Step ``t``'s momentum, one per group of the settings (``t >= 0``, after :meth:`set_momentum`)."""
        i = t - self._start
        if not 0 <= i < self._count:
            self._fill(t)
            i = 0
        if len(self._lows) == 1:
            return [self._mom[i]]
        climb, scale = self._factors[i]
        if scale is None:
            return [high + (low - high) * climb for low, high in zip(self._lows, self._highs)]
        return [high + (low - high) * climb * scale for low, high in zip(self._lows, self._highs)]

    def one_momentum(self, t: int) -> float:
        """Step ``t``'s momentum for settings of one group (``t >= 0``, after :meth:`set_momentum`)."""
        i = t - self._start
        if not 0 <= i < self._count:
            self._fill(t)
            i = 0
        return self._mom[i]

    def _factor(self, t: int) -> tuple[float, float | None]:
        up, whole = self._up, self._whole
        n = t % whole
        climb = n / up if n <= up else (whole - n) / (whole - up)
        scale: float | None = None
        if self._mode == "triangular2":
            scale = math.ldexp(1.0, 1 - (t // whole + 1))
        elif self._mode == "exp_range":
            scale = _cyclic_power(self._gamma, t)
        return climb, scale

    def _fill(self, t: int) -> None:
        """Form the factors (and, for one group, the values) of a block of steps from step ``t >= 0``, in a tight
        loop. Several groups' values are formed when a step asks: a block of lists would be cold in the cache by
        then."""
        factor, size = self._factor, _grown(t, self._start, self._count)
        self._factors = factors = [factor(s) for s in range(t, t + size)]
        self._start, self._count = t, size
        if len(self.bases) == 1:
            base, height = self.bases[0], self._heights[0]
            if self._mode == "triangular":
                self._lrs = [base + height * climb for climb, _ in factors]
            else:
                self._lrs = [base + height * climb * cast(float, scale) for climb, scale in factors]
        if self.momentum_of is not None and len(self._lows) == 1:
            low, high = self._lows[0], self._highs[0]
            if self._mode == "triangular":
                self._mom = [high + (low - high) * climb for climb, _ in factors]
            else:
                self._mom = [high + (low - high) * climb * cast(float, scale) for climb, scale in factors]

    def reset(self) -> None:
        super().reset()
        self._seen = None

    def at(self, t: int) -> list[float] | None:
        if t == self._seen:
            return None
        self._seen = t
        return self.values(t)

    def values(self, t: int) -> list[float]:
        if t < 0:
            return list(self.bases)
        i = t - self._start
        if not 0 <= i < self._count:
            self._fill(t)
            i = 0
        if len(self._heights) == 1:
            return [self._lrs[i]]
        climb, scale = self._factors[i]
        if scale is None:
            return [base + height * climb for base, height in zip(self.bases, self._heights)]
        return [base + height * climb * scale for base, height in zip(self.bases, self._heights)]


def _rates_for(schedule: Schedule, bases: list[float]) -> _Rates:
    if isinstance(schedule, _PowerDecay):
        return _PowerRates(schedule, bases)
    if type(schedule) is OneCycle and schedule.is_scalar:
        return _OneCycleRates(schedule, bases)
    if type(schedule) is Cyclic and schedule.is_scalar:
        return _CyclicRates(schedule, bases)
    if _weights_of(schedule) is not None:
        return _WeightRates(schedule, bases)
    return _Rates(schedule, bases)
