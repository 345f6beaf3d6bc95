"""``base * gamma ** k`` for several distinct bases, correctly rounded, a block of ``k`` at a time with NumPy: the
rates of ``ExponentialLR`` and ``StepLR(step_size=1)`` when the groups start from different learning rates.

:class:`~steplr.schedules._exact.PowerSeries` rounds each base from the carried 128-bit power with two big-integer
products and conversions per base and step. Here ``gamma ** k`` for the block's ``k = first + j`` is a
double-double ``hi + lo``: ``gamma ** first`` from the 128-bit power, times ``gamma ** j`` from a table doubled
from ``gamma`` (each double-double product exact in its leading part by Dekker's product, to ``2**-103`` in all),
so within ``2**-98`` of its value. Each base's product with it, ``b * hi`` exactly (Dekker again) plus ``b * lo``,
rounds to ``q``; ``q`` is the correctly rounded product whenever the remaining distance to ``q`` is more than a
bound (``2**-90`` of the value, far above those errors) inside half the gap to ``q``'s neighbours. Elsewhere
(within about ``2**-38`` ulp of a midpoint: practically never) and near underflow or overflow,
:func:`~steplr.schedules._exact.scaled_power` decides, as in ``PowerSeries``. A correctly rounded value is unique,
so these are the bits of ``scaled_power`` (the tests compare them at every step). Every product stays far from
overflow and underflow for the bases and factors :func:`powers_fit` accepts; others keep ``PowerSeries``.

Imports steplr's schedules and NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steplr.schedules._exact import _PRECISION, _power, scaled_power

__all__: list[str] = []

_FIRST = 8  # steps in a block after a jump; twice as many while blocks follow on, up to _BLOCK
_BLOCK = 1024
_SPLIT = 134217729.0  # 2**27 + 1: Dekker's splitter for float64
# Bases and factors for which every product formed here stays far from overflow and underflow (the powers of the
# table within 2**-600 .. 2**600, the products within 2**-700 .. 2**700), so that every step is exact as stated.
_LOW, _HIGH = 2.0**-100, 2.0**100
_GAMMA_LOW, _GAMMA_HIGH = 2.0 ** (-600 / _BLOCK), 2.0 ** (600 / _BLOCK)


def powers_fit(gamma: float, bases: list[float]) -> bool:
    """Whether :class:`PowerBlocks` takes these: more than one distinct base (one goes faster in PowerSeries), all
    within ``2**-100 .. 2**100``, and ``gamma`` within ``2**(+-600 / _BLOCK)`` (0.67 to 1.5)."""
    return len(set(bases)) > 1 and all(_LOW <= b <= _HIGH for b in bases) and _GAMMA_LOW <= gamma <= _GAMMA_HIGH


class PowerBlocks:
    """``base * gamma ** k`` for a list of bases, as :class:`~steplr.schedules._exact.PowerSeries` gives them
    (the same ``at``, ``values`` and ``forget``), formed a block of consecutive ``k`` at a time."""

    at: Callable[[int], list[float] | None]
    """The values at ``k >= 0``, or ``None`` when ``k`` is the one asked for last."""

    def __init__(self, gamma: float, bases: list[float]) -> None:
        self.gamma = float(gamma)
        self.bases = [float(b) for b in bases]
        self._highs: NDArray[np.float64] = np.empty(0)
        self._lows: NDArray[np.float64] = np.empty(0)
        self._start()

    def _start(self) -> None:
        walk = self._walk()
        next(walk)
        self.at = walk.send  # the state in the generator's locals: cheaper to read than attributes

    def __getstate__(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "bases": self.bases}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["gamma"], state["bases"])  # type: ignore[misc]

    def forget(self) -> None:
        """Make the next :meth:`at` give the values even if its ``k`` is the last one asked for."""
        self.at(-1)

    def values(self, k: int) -> list[float]:
        """The values at ``k >= 0`` (a new list)."""
        values = self.at(k)
        if values is None:
            self.forget()
            values = self.at(k)
        return list(values)  # type: ignore[arg-type]  # never None after forget()

    def _walk(self) -> Generator[list[float] | None, int, None]:
        block: NDArray[np.float64] = np.empty((0, 0))
        start = count = 0
        seen = -1
        k = yield None
        while True:
            if k == seen or k < 0:  # the same k again; or k < 0: forget it (see forget)
                seen = seen if k >= 0 else -1
                k = yield None
                continue
            seen = k
            i = k - start
            if not 0 <= i < count:
                size = max(_FIRST, min(2 * count, _BLOCK)) if k == start + count else _FIRST
                block, start, count, i = self._block(k, size), k, size, 0
            k = yield block[i].tolist()  # fresh floats: the block's would be cold in the cache by now

    def _split(self, k: int) -> tuple[float, float, int]:
        """``gamma ** k`` as ``(hi + lo) * 2**exponent``, ``hi`` in [1, 2], to about ``2**-105`` of its value: the
        128-bit power (below the exact one by at most ``2**-115`` of it for every ``k`` a run reaches), ``hi`` its
        rounding and ``lo`` the rest."""
        numerator, denominator = self.gamma.as_integer_ratio()
        power, shift, _ = _power(numerator, k, _PRECISION)
        high = float(power)
        scale = 1 - power.bit_length()  # exact: a power of two times floats far from the ends of the range
        exponent = shift - (denominator.bit_length() - 1) * k - scale
        return math.ldexp(high, scale), math.ldexp(float(power - int(high)), scale), exponent

    def _table(self, size: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``gamma ** j`` for ``j < size`` as double-double floats ``hi + lo`` (kept): doubled from ``gamma`` with
        ``log2(size)`` products, each within ``2**-103`` of its value (so all within ``2**-99``)."""
        if self._highs.size < size:
            highs, lows = np.array([1.0, self.gamma]), np.array([0.0, 0.0])
            while highs.size < max(size, 2):
                # gamma ** n from gamma ** (n - 1), then gamma ** (n .. 2n - 1) from gamma ** (0 .. n - 1)
                n_hi, n_lo = _dd_product(highs[-1:], lows[-1:], np.array([self.gamma]), np.array([0.0]))
                more_hi, more_lo = _dd_product(highs, lows, n_hi, n_lo)
                highs, lows = np.concatenate([highs, more_hi]), np.concatenate([lows, more_lo])
            self._highs, self._lows = highs, lows
        return self._highs[:size], self._lows[:size]

    def _block(self, first: int, size: int) -> NDArray[np.float64]:
        """The values of ``k = first .. first + size - 1``, one row per ``k``: ``gamma ** k`` as
        ``gamma ** first * gamma ** j`` in double-double, then each base's product rounded (see the module)."""
        gamma, bases = self.gamma, self.bases
        a_hi, a_lo, exponent = self._split(first)
        t_hi, t_lo = self._table(size)
        b = np.array(bases)[None, :]
        with np.errstate(all="ignore"):  # overflow and underflow are caught below and decided by scaled_power
            x_hi, x_lo = _dd_product(np.array([a_hi]), np.array([a_lo]), t_hi, t_lo)
            x_hi, x_lo = x_hi[:, None], x_lo[:, None]
            product, error = _exact_product(b, x_hi)
            rest = error + b * x_lo
            rounded = product + rest
            offset = (product - rounded) + rest  # product - rounded is exact: they are neighbours (Sterbenz)
            gap = np.spacing(rounded)  # to the neighbour above; below it is half that at a power of two
            below = np.where(np.frexp(rounded)[0] == 0.5, gap / 4, gap / 2)
            bound = rounded * 2.0**-90  # the errors above come to a few 2**-99 of the value at most
            # clipped: far beyond the float range either way (0 or inf, decided by scaled_power), and within int32
            values: NDArray[np.float64] = np.ldexp(rounded, int(min(max(exponent, -4000), 4000)))
            decided = (
                (offset < gap / 2 - bound) & (offset > bound - below) & (values >= 2.0**-1022) & (values < math.inf)
            )
        if not decided.all():
            for i, j in zip(*np.nonzero(~decided)):
                values[i, j] = scaled_power(bases[j], gamma, first + int(i))
        return values


def _dd_product(a_hi: Any, a_lo: Any, b_hi: Any, b_lo: Any) -> tuple[Any, Any]:
    """``(a_hi + a_lo) * (b_hi + b_lo)`` as a double-double, within ``2**-103`` of its value (``lo`` at most half
    an ulp of ``hi`` on both sides; ``a_lo * b_lo`` below ``2**-106`` of it, left out)."""
    p, e = _exact_product(a_hi, b_hi)
    e = e + (a_hi * b_lo + a_lo * b_hi)
    hi = p + e
    return hi, e - (hi - p)  # Fast2Sum: |p| >= |e|, so hi + lo == p + e exactly


def _exact_product(a: Any, b: Any) -> tuple[Any, Any]:
    """``(p, e)`` with ``p = fl(a * b)`` and ``p + e == a * b`` exactly (Dekker; no overflow or underflow)."""
    p = a * b
    c = _SPLIT * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = _SPLIT * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
