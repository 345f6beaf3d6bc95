"""Argument checks and duration handling shared by the schedules (NumPy only)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules.durations import MAX_STEPS, Duration, parse_duration

Steps = int | NDArray[np.integer[Any]]
Param = float | NDArray[np.floating[Any]]


def is_scalar_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, np.ndarray)


def check_gamma(gamma: object, name: str = "gamma") -> Param:
    if isinstance(gamma, bool):
        raise SteplrTypeError(f"{name} must be a finite number > 0, got {gamma!r}")
    if is_scalar_number(gamma):
        if not isinstance(gamma, numbers.Real):
            raise SteplrTypeError(f"{name} must be a finite number > 0, got {gamma!r}")
        value = float(gamma)
        if not math.isfinite(value) or value <= 0.0:
            raise SteplrValueError(f"{name} must be a finite number > 0, got {gamma!r}")
        return value
    array = np.asarray(gamma)
    if array.dtype.kind not in "iuf":
        raise SteplrTypeError(f"{name} must be a finite number > 0 (or an array of them), got {gamma!r}")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array) | (array <= 0.0)
    if bad.any():
        raise SteplrValueError(f"{name} must be a finite number > 0, got {float(array[bad].flat[0])!r} in {gamma!r}")
    return array


def check_fraction(value: object, name: str) -> Param:
    """A number (or array) in [0, 1]."""
    if isinstance(value, bool) or not (is_scalar_number(value) or isinstance(value, np.ndarray)):
        raise SteplrTypeError(f"{name} must be a number in [0, 1], got {value!r}")
    array = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(array) | (array < 0.0) | (array > 1.0)
    if bad.any():
        raise SteplrValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(array) if array.ndim == 0 else array


def check_real(value: object, name: str) -> Param:
    if isinstance(value, bool) or not (is_scalar_number(value) or isinstance(value, np.ndarray)):
        raise SteplrTypeError(f"{name} must be a finite number, got {value!r}")
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise SteplrValueError(f"{name} must be a finite number, got {value!r}")
    return float(array) if array.ndim == 0 else array


def check_duration(value: object, name: str, *, allow_zero: bool = False) -> int | Duration | NDArray[np.int64]:
    """An int, a unit string, or (for broadcasting) an integer array of steps."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise SteplrTypeError(f"{name} must be an integer array of steps, got dtype {value.dtype}")
        low = 0 if allow_zero else 1
        if (value < low).any():
            bad = int(value[value < low].flat[0])
            raise SteplrValueError(f"{name} must be a positive integer, got {bad!r} in {value!r}")
        if (value > MAX_STEPS).any():
            raise SteplrValueError(f"{name} must be at most 2**62, got {int(value[value > MAX_STEPS].flat[0])!r}")
        return value.astype(np.int64)
    parsed = parse_duration(value, name, allow_zero=allow_zero)
    if isinstance(parsed, Duration) and parsed.unit == "it":
        return parsed.count  # iterations are scheduler steps: nothing left to resolve
    return parsed


def resolve_value(value: Any, steps_per_epoch: int | None, name: str) -> Any:
    return value.steps(steps_per_epoch, name) if isinstance(value, Duration) else value


def require_steps(value: object, name: str) -> Any:
    """A resolved step count, or a clear error naming the missing steps_per_epoch."""
    if isinstance(value, Duration):
        value.steps(None, name)  # raises, saying what to pass
    return value


def check_step(t: object) -> Steps:
    if isinstance(t, bool):
        raise SteplrTypeError(f"t must be a non-negative integer step, got {t!r}")
    if isinstance(t, numbers.Integral):
        step = int(t)
        if step < 0:
            raise SteplrValueError(f"t must be a non-negative integer step, got {t!r}")
        if step > MAX_STEPS:
            raise SteplrValueError(f"t must be at most 2**62, got {t!r}")
        return step
    array = np.asarray(t)
    if array.dtype.kind not in "iu":
        raise SteplrTypeError(f"t must be an integer step or an integer array of steps, got {t!r}")
    if (array < 0).any():
        raise SteplrValueError(f"t must be non-negative, got {int(array[array < 0].flat[0])!r}")
    if (array > MAX_STEPS).any():  # compared before the int64 cast, which would wrap large unsigned values
        raise SteplrValueError(f"t must be at most 2**62, got {int(array[array > MAX_STEPS].flat[0])!r}")
    return array.astype(np.int64)


def jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Duration):
        return str(value)
    return value


def check_period(value: object, name: str) -> int | float | Duration | NDArray[np.int64]:
    """A duration as :func:`check_duration` takes it, or a positive finite real number of steps (torch's float
    ``T_max``); a whole float becomes an int, so it takes the integer kernel."""
    if isinstance(value, (float, np.floating)) or (
        isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral))
    ):
        number = float(value)
        if not math.isfinite(number) or number <= 0.0:
            raise SteplrValueError(f"{name} must be a positive finite number of steps, got {value!r}")
        if number.is_integer():
            return check_duration(int(number), name)
        return number
    return check_duration(value, name)
