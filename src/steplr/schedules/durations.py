"""Durations: how many scheduler steps a ``step_size`` (or milestone, warm-up, ``t_max``) spans.

A duration is written one of three ways:

* an ``int`` (or NumPy integer): that many scheduler steps;
* ``"230it"``: 230 iterations, i.e. 230 scheduler steps when the scheduler is stepped once per batch;
* ``"5ep"``: 5 epochs, i.e. ``5 * steps_per_epoch`` scheduler steps.

``steps_per_epoch`` is the number of ``scheduler.step()`` calls in one epoch: ``len(train_loader)`` when the
scheduler is stepped per batch, ``1`` when it is stepped per epoch. Epoch durations cannot be resolved without it.

>>> resolve_duration("5ep", "step_size", steps_per_epoch=230)
1150
>>> resolve_duration("230it", "step_size")
230
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Literal

from steplr.errors import SteplrTypeError, SteplrValueError

__all__ = ["Duration", "parse_duration", "resolve_duration", "check_positive_int", "MAX_STEPS"]

MAX_STEPS = 2**62  # steps and durations beyond this are mistakes, and would overflow int64 arithmetic

Unit = Literal["it", "ep"]

_PATTERN = re.compile(r"^\s*(\d+)\s*(it|iter|iters|iteration|iterations|ep|epoch|epochs)?\s*$")


@dataclass(frozen=True)
class Duration:
    """A positive count of iterations (``"it"``) or epochs (``"ep"``)."""

    count: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def steps(self, steps_per_epoch: int | None, name: str = "duration") -> int:
        """The number of scheduler steps this duration spans."""
        if self.unit == "it":
            return self.count
        if steps_per_epoch is None:
            raise SteplrValueError(
                f"{name}={str(self)!r} is in epochs: pass steps_per_epoch=N, the number of scheduler.step() "
                "calls per epoch (len(train_loader) when stepping per batch, 1 when stepping per epoch)"
            )
        steps = self.count * steps_per_epoch
        if steps > MAX_STEPS:
            raise SteplrValueError(f"{name}={str(self)!r} with steps_per_epoch={steps_per_epoch} exceeds 2**62 steps")
        return steps


def check_positive_int(value: object, name: str, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an ``int`` if it is a positive integer (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a non-negative" if allow_zero else "a positive"
        raise SteplrTypeError(f"{name} must be {kind} integer, got {value!r}")
    as_int = int(value)
    if as_int < 0 or (as_int == 0 and not allow_zero):
        kind = "a non-negative" if allow_zero else "a positive"
        raise SteplrValueError(f"{name} must be {kind} integer, got {value!r}")
    if as_int > MAX_STEPS:
        raise SteplrValueError(f"{name} must be at most 2**62, got {value!r}")
    return as_int


def parse_duration(value: object, name: str = "duration", *, allow_zero: bool = False) -> int | Duration:
    """Check a duration; return plain step counts as ``int`` and unit strings as :class:`Duration`.

    Raises:
        TypeError: for floats, bools and other non-duration types.
        ValueError: for zero, negative counts and strings that are not ``"<count>[it|ep]"``.
    """
    if isinstance(value, Duration):
        return value
    if isinstance(value, str):
        match = _PATTERN.match(value.lower())
        if match is None:
            raise SteplrValueError(
                f"{name} must be a positive integer or a duration such as '5ep' or '230it', got {value!r}"
            )
        count = int(match.group(1))
        if count == 0 and not allow_zero:
            raise SteplrValueError(f"{name} must be positive, got {value!r}")
        if count > MAX_STEPS:
            raise SteplrValueError(f"{name} must be at most 2**62, got {value!r}")
        unit_text = match.group(2)
        if unit_text is None:
            return count
        return Duration(count, "ep" if unit_text.startswith("ep") else "it")
    return check_positive_int(value, name, allow_zero=allow_zero)


def resolve_duration(
    value: object, name: str = "duration", steps_per_epoch: int | None = None, *, allow_zero: bool = False
) -> int:
    """Parse ``value`` and convert it to scheduler steps.

    Raises:
        ValueError: if the duration is in epochs and ``steps_per_epoch`` is not given, or is invalid.
    """
    parsed = parse_duration(value, name, allow_zero=allow_zero)
    if isinstance(parsed, int):
        return parsed
    if steps_per_epoch is not None:
        steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch")
    return parsed.steps(steps_per_epoch, name)
