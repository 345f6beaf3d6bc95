"""``base * gamma ** k`` rounded once, for every k: the kernel behind step, multi-step and exponential decay.

Evaluating ``base * gamma ** k`` in floating point rounds twice (the power, then the product), and a running
product ``lr *= gamma`` rounds once per decay, so its error grows with the number of decays and it stalls at a
subnormal instead of reaching 0. Here the power is carried in integers with 128 significant bits (binary
exponentiation, truncating after each product), then the product with ``base`` is divided out by Python's
correctly rounded integer true division. The result is the correctly rounded value of ``base * gamma ** k`` for
all practical purposes (the 128-bit truncations add a relative error below ``2 * log2(k) * 2**-127``), underflows
to exactly 0.0 and overflows to ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steplr.errors import SteplrValueError

__all__ = ["scaled_power", "scaled_power_array", "PowerSeries", "cosine_weights", "scalar_cosine_weights", "ScalarMath"]

_PRECISION = 128  # significant bits kept in the running integer power
_MIN_EXP = -1075  # values below 2**-1075 round to 0.0
_MAX_EXP = 1024  # values at or above 2**1024 overflow


def scaled_power(base: float, gamma: float, k: int) -> float:
    """``base * gamma ** k``, correctly rounded; ``gamma > 0`` finite, ``k >= 0``.

    >>> scaled_power(0.1, 0.5, 3)
    0.0125
    >>> scaled_power(1.0, 0.5, 1075)
    0.0
    """
    if k < 0:
        raise SteplrValueError(f"k must be a non-negative integer, got {k!r}")
    if k == 0 or base == 0.0 or gamma == 1.0:
        return float(base)
    if not math.isfinite(base):
        return float(base)
    # Far below the smallest subnormal or above the largest float, the logarithms tell without the power.
    magnitude = math.log2(abs(base)) + k * math.log2(gamma)
    if magnitude < _MIN_EXP - 2 - 1e-9 * abs(magnitude):
        return math.copysign(0.0, base)
    if magnitude > _MAX_EXP + 2 + 1e-9 * abs(magnitude):
        return math.copysign(math.inf, base)
    numerator, denominator = float(gamma).as_integer_ratio()
    gamma_shift = denominator.bit_length() - 1  # gamma = numerator / 2**gamma_shift
    base_numerator, base_denominator = float(base).as_integer_ratio()
    base_shift = base_denominator.bit_length() - 1
    precision = _PRECISION
    while True:  # almost always once: a wider power only when the rounding cannot be decided (see _bounds)
        power, power_shift, weight = _power(numerator, k, precision)
        exponent = power_shift - gamma_shift * k - base_shift
        low = base_numerator * power
        result = _rounded(low, exponent, base)
        if weight == 0 or result == _rounded(low + _slack(low, weight, precision), exponent, base):
            return result
        precision *= 2


def _power(numerator: int, k: int, precision: int) -> tuple[int, int, int]:
    """``(power, shift, weight)`` with ``power * 2**shift <= numerator**k`` by binary exponentiation, each product
    truncated to ``precision`` bits; ``weight`` counts the truncations, each as often as its error is raised to a
    power on the way (0: exact). The truncated value is below the exact one by a factor at most
    ``1 - weight * 2**(1 - precision)``."""
    power, power_shift, power_weight = 1, 0, 0
    square, square_shift, square_weight = numerator, 0, 0
    remaining = k
    while True:
        if remaining & 1:
            power *= square
            power_shift += square_shift
            power_weight += square_weight
            excess = power.bit_length() - precision
            if excess > 0:
                power >>= excess
                power_shift += excess
                power_weight += 1
        remaining >>= 1
        if not remaining:
            return power, power_shift, power_weight
        square *= square
        square_shift *= 2
        square_weight *= 2  # squaring doubles the relative error carried so far
        excess = square.bit_length() - precision
        if excess > 0:
            square >>= excess
            square_shift += excess
            square_weight += 1


def _slack(value: int, weight: int, precision: int) -> int:
    """How far above ``value`` (an underestimate, ``weight`` truncations to ``precision`` bits) the exact value
    may lie: ``value * 2 * weight * 2**(1 - precision)``, rounded up (the factor 2 covers ``1 / (1 - x)`` for the
    small ``x`` here); a useless bound (the whole value) when the truncations are too many for the precision."""
    if weight.bit_length() >= precision - 4:
        return value
    return ((value * weight) >> (precision - 2)) + 1


def _rounded(value: int, exponent: int, sign: float) -> float:
    """``value * 2**exponent`` correctly rounded to a float (``value > 0``), with the sign of ``sign``."""
    magnitude = value.bit_length() + exponent  # the result lies in [2**(magnitude-1), 2**magnitude)
    if magnitude > _MAX_EXP:
        return math.copysign(math.inf, sign)
    if magnitude < _MIN_EXP:
        return math.copysign(0.0, sign)
    try:
        result = float(value << exponent) if exponent >= 0 else value / (1 << -exponent)
    except OverflowError:  # within half an ulp of 2**1024: rounds up to overflow
        return math.copysign(math.inf, sign)
    return math.copysign(result, sign)


class PowerSeries:
    """``base * gamma ** k`` for a fixed list of bases, correctly rounded, fast when ``k`` grows one at a time.

    The drop-in schedulers ask for the values of each step in turn. :func:`scaled_power` starts every ``k`` from
    scratch; here the truncated power of ``k`` is carried to ``k + 1`` with one product, and each base is rounded
    from it with two integer-to-float conversions (from the power's lower and upper bound): when they agree, that
    is the correctly rounded value, the one :func:`scaled_power` gives; when they do not (a value within the
    carried error of a rounding boundary, about once in ``2**60`` values), or near underflow and overflow,
    :func:`scaled_power` decides. Equal bases are evaluated once.

    >>> series = PowerSeries(0.5, [0.1, 0.1, 3.0])
    >>> series.values(3)
    [0.0125, 0.0125, 0.375]
    >>> series.at(3) is None, series.at(4)
    (True, [0.00625, 0.00625, 0.1875])
    """

    at: Callable[[int], list[float] | None]
    """The values at ``k >= 0`` as :meth:`values` gives them, or ``None`` when ``k`` is the one asked for last."""

    def __init__(self, gamma: float, bases: list[float]) -> None:
        self.gamma = float(gamma)
        self.bases = [float(b) for b in bases]
        self._start()

    def _start(self) -> None:
        walk = self._walk()
        next(walk)
        # The state lives in the generator's local variables: reading those is much cheaper than attributes.
        self.at = walk.send

    def __getstate__(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "bases": self.bases}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.gamma, self.bases = state["gamma"], state["bases"]
        self._start()

    def forget(self) -> None:
        """Make the next :meth:`at` give the values even if its ``k`` is the last one asked for."""
        self.at(-1)

    def values(self, k: int) -> list[float]:
        """The values at ``k >= 0``, one per base (a new list whenever ``k`` changes)."""
        if k < 0:
            raise SteplrValueError(f"k must be a non-negative integer, got {k!r}")
        values = self.at(k)
        if values is None:  # k was the last one asked for: ask again (the walk keeps no copy for this)
            self.forget()
            values = self.at(k)
        return values  # type: ignore[return-value]  # never None after forget()

    def _walk(self) -> Generator[list[float] | None, int, None]:
        distinct = set(self.bases)
        if len(distinct) == 1 and _SMALLEST_NORMAL <= abs(base := distinct.pop()) < _INF:
            return self._walk_one(base, len(self.bases))
        return self._walk_many()

    def _walk_one(self, base: float, count: int) -> Generator[list[float] | None, int, None]:
        """One base (the usual single param group): ``base * gamma ** k`` itself carried, 128 bits, and rounded
        with a look at the 75 bits that float() drops: undecided only within the carried error of their midpoint."""
        gamma = self.gamma
        numerator, denominator = gamma.as_integer_ratio()
        gamma_shift = denominator.bit_length() - 1
        base_numerator, base_denominator = base.as_integer_ratio()
        start, start_exponent = base_numerator, 1 - base_denominator.bit_length()
        dropped, midpoint = (1 << (_PRECISION - 53)) - 1, 1 << (_PRECISION - 54)
        k_carried, carried, exponent, weight = 0, start, start_exponent, 0  # carried * 2**exponent ~ base * gamma**k
        values_k = -1
        k = yield None
        while True:
            if k == values_k or k < 0:  # the same k again; or k < 0: forget it (see forget)
                values_k = values_k if k >= 0 else -1
                k = yield None
                continue
            if k == k_carried + 1:  # the common case, kept short: one product, at most one truncation
                carried *= numerator
                excess = carried.bit_length() - _PRECISION
                if excess > 0:
                    carried >>= excess
                    weight += 1
                    exponent += excess - gamma_shift
                else:
                    exponent -= gamma_shift
            elif k != k_carried:
                power, shift, weight = _power(numerator, k, _PRECISION)
                carried, exponent = start * power, start_exponent + shift - gamma_shift * k
                excess = carried.bit_length() - _PRECISION
                if excess > 0:
                    carried >>= excess
                    weight += 1
                    exponent += excess
            k_carried = values_k = k
            # weight > 0: carried has exactly 128 bits and the exact value lies in [carried, carried + 4 * weight + 1]
            if weight and midpoint - 4 * weight - 1 <= carried & dropped <= midpoint:
                value = scaled_power(base, gamma, k)
            elif not _SMALLEST_NORMAL <= (value := float(carried) * _POWERS_OF_TWO.get(exponent, 0.0)) < _INF:
                value = scaled_power(base, gamma, k)  # near under- or overflow: the slow, sure way
            k = yield [value] if count == 1 else [value] * count

    def _walk_many(self) -> Generator[list[float] | None, int, None]:
        gamma, count = self.gamma, len(self.bases)
        numerator, denominator = gamma.as_integer_ratio()
        gamma_shift = denominator.bit_length() - 1
        distinct = list(dict.fromkeys(self.bases))
        slots = [distinct.index(b) for b in self.bases] if len(distinct) > 1 else None
        parts = []  # per distinct base: its numerator, 2**-shift, and the base itself
        for base in distinct:
            base_numerator, base_denominator = base.as_integer_ratio() if math.isfinite(base) else (0, 1)
            parts.append((base_numerator, math.ldexp(1.0, 1 - base_denominator.bit_length()), base))
        k_power, power, exponent, weight = 0, 1, 0, 0  # power * 2**exponent: gamma**k_power, truncated
        values_k = -1
        k = yield None
        while True:
            if k == values_k or k < 0:  # the same k again; or k < 0: forget it (see forget)
                values_k = values_k if k >= 0 else -1
                k = yield None
                continue
            if k == k_power + 1:  # the common case, kept short: one product, at most one truncation
                power *= numerator
                excess = power.bit_length() - _PRECISION
                if excess > 0:
                    power >>= excess
                    weight += 1
                    exponent += excess - gamma_shift
                else:
                    exponent -= gamma_shift
            elif k != k_power:
                power, shift, weight = _power(numerator, k, _PRECISION)
                exponent = shift - gamma_shift * k
            k_power = values_k = k
            upper = power + 4 * weight + 1 if weight else power  # power < 2**128: the slack of _slack at most
            scale = _POWERS_OF_TWO.get(exponent, 0.0)
            values = []
            for base_numerator, base_scale, base in parts:
                value = float(base_numerator * power)
                if not (
                    value == float(base_numerator * upper)
                    and _SMALLEST_NORMAL <= (value := value * scale * base_scale) < _INF
                ):
                    value = scaled_power(base, gamma, k)  # undecided, near under- or overflow, or not a plain base
                values.append(value)
            if slots is not None:
                values = [values[i] for i in slots]
            elif count > 1:
                values *= count
            k = yield values


_SMALLEST_NORMAL = 2.0**-1022
_INF = math.inf
# 2**e as a float for the exponents where that is a normal number (a dict lookup is cheaper than math.ldexp).
_POWERS_OF_TWO = {e: math.ldexp(1.0, e) for e in range(-1022, 1024)}


def scaled_power_array(base: ArrayLike, gamma: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
    """:func:`scaled_power` broadcast over arrays; each distinct (base, gamma, k) is evaluated once."""
    arrays = np.asarray(base, dtype=np.float64), np.asarray(gamma, dtype=np.float64), np.asarray(k, dtype=np.int64)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    out = np.empty(shape, dtype=np.float64)
    if out.size == 0:
        return out
    # Number the distinct values of each input before broadcasting (a column of bases, not a table of them), then
    # the distinct triples by one int64 key: np.unique on plain integers is much faster than on a structured
    # (base, gamma, k) array.
    (b_values, b_codes), (g_values, g_codes), (k_values, k_codes) = (_numbered(a) for a in arrays)
    pair_values, pair_codes = _numbered(b_codes * g_values.size + g_codes)  # keys stay below out.size ** 2
    if pair_values.size == 1:  # one schedule over many steps: the exponents alone tell the values apart
        triples, inverse = np.arange(k_values.size), np.broadcast_to(k_codes, shape)
    else:
        triples, inverse = np.unique(np.broadcast_to(pair_codes * k_values.size + k_codes, shape), return_inverse=True)
    pairs, ks = np.divmod(triples, k_values.size)
    bs, gs = np.divmod(pair_values[pairs], g_values.size)
    values = np.array(
        [scaled_power(float(b_values[i]), float(g_values[j]), int(k_values[m])) for i, j, m in zip(bs, gs, ks)],
        dtype=np.float64,
    )
    out[...] = values[inverse.reshape(shape)]
    return out


def _numbered(a: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """The sorted distinct values of ``a`` and, in ``a``'s shape, each element's index among them."""
    values, codes = np.unique(a, return_inverse=True)
    return values, codes.reshape(a.shape).astype(np.int64)


class ScalarMath:
    """The few NumPy functions ``cosine_weights`` uses, for Python scalars (10x faster than NumPy's on scalars)."""

    cos, sin, minimum, pi = math.cos, math.sin, min, math.pi

    @staticmethod
    def where(condition: bool, a: float, b: float) -> float:
        return a if condition else b


def cosine_weights(t: Any, t_max: Any, xp: Any = np) -> tuple[Any, Any]:
    """``((1 + cos x) / 2, (1 - cos x) / 2)`` with ``x = pi * t / t_max``, each to a few ulps for integer inputs."""
    n = t % (2 * t_max)
    m = xp.minimum(n, 2 * t_max - n)  # cos is even and periodic: x folds into pi * m / t_max in [0, pi]
    cos_x = xp.cos(xp.pi * m / t_max)
    # 1 + cos x cancels near x = pi and 1 - cos x near 0; there, use the half-angle sines with the small
    # angle formed exactly in integers: (1 + cos x) / 2 = sin((pi - x) / 2) ** 2, (1 - cos x) / 2 = sin(x / 2) ** 2.
    sin_far = xp.sin(xp.pi * (t_max - m) / (2 * t_max))
    sin_near = xp.sin(xp.pi * m / (2 * t_max))
    # Squares as products: x * x rounds the same in NumPy and Python, x ** 2 does not always.
    high = xp.where(2 * m <= t_max, (1 + cos_x) / 2, sin_far * sin_far)
    low = xp.where(2 * m >= t_max, (1 - cos_x) / 2, sin_near * sin_near)
    return high, low


def fractional_cosine_weights(t: int, t_max: float) -> tuple[float, float]:
    """:func:`cosine_weights` for a non-integer ``t_max``: ``t`` is reduced modulo ``2 * t_max`` exactly (fmod is
    exact in binary floating point, and below 2**53 so is ``float(t)``), then folded into ``[0, t_max]``, where the
    half-angle forms keep every weight to a few ulps."""
    period = 2.0 * t_max
    n = math.fmod(float(t), period) if t < 1 << 53 else float(Fraction(t) % Fraction(period))
    m = min(n, period - n)  # exact: period - n is formed only when it is the smaller (Sterbenz)
    if 2.0 * m <= t_max:
        angle = math.pi * m / period
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        return cos_a * cos_a, sin_a * sin_a
    angle = math.pi * (t_max - m) / period  # t_max - m is exact: m lies in [t_max / 2, t_max]
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    return sin_a * sin_a, cos_a * cos_a


def scalar_cosine_weights(t: int, t_max: int) -> tuple[float, float]:
    """:func:`cosine_weights` for one integer step and an integer ``t_max``: the same floats (the same operations
    on the same values), with only the two trigonometric calls the step's branch needs.

    >>> scalar_cosine_weights(7, 10) == cosine_weights(7, 10, ScalarMath)
    True
    """
    period = 2 * t_max
    n = t % period
    m = min(n, period - n)
    if 2 * m < t_max:
        sin_near = math.sin(math.pi * m / period)
        return (1 + math.cos(math.pi * m / t_max)) / 2, sin_near * sin_near
    cos_x = math.cos(math.pi * m / t_max)
    if 2 * m == t_max:
        return (1 + cos_x) / 2, (1 - cos_x) / 2
    sin_far = math.sin(math.pi * (t_max - m) / period)
    return sin_far * sin_far, (1 - cos_x) / 2
