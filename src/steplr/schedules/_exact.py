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
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steplr.errors import SteplrValueError

__all__ = ["scaled_power", "scaled_power_array", "cosine_weights", "ScalarMath"]

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
    numerator, denominator = float(gamma).as_integer_ratio()
    gamma_shift = denominator.bit_length() - 1  # gamma = numerator / 2**gamma_shift

    power, power_shift = 1, 0  # power * 2**power_shift approximates numerator**k
    square, square_shift = numerator, 0
    remaining = k
    while True:
        if remaining & 1:
            power *= square
            power_shift += square_shift
            excess = power.bit_length() - _PRECISION
            if excess > 0:
                power >>= excess
                power_shift += excess
        remaining >>= 1
        if not remaining:
            break
        square *= square
        square_shift *= 2
        excess = square.bit_length() - _PRECISION
        if excess > 0:
            square >>= excess
            square_shift += excess

    base_numerator, base_denominator = float(base).as_integer_ratio()
    value = base_numerator * power
    exponent = power_shift - gamma_shift * k - (base_denominator.bit_length() - 1)
    magnitude = abs(value).bit_length() + exponent  # |result| lies in [2**(magnitude-1), 2**magnitude)
    if magnitude > _MAX_EXP:
        return math.copysign(math.inf, base)
    if magnitude < _MIN_EXP:
        return math.copysign(0.0, base)
    try:
        if exponent >= 0:
            return float(value << exponent)
        return value / (1 << -exponent)
    except OverflowError:  # within half an ulp of 2**1024: rounds up to overflow
        return math.copysign(math.inf, base)


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
