"""steplr schedules for JAX and optax: the same rates as ``schedule.lr``, rounded once to float32, under ``jax.jit``.

>>> import jax, jax.numpy as jnp, optax, steplr.optax
>>> from steplr.schedules import StepDecay
>>> lr = steplr.optax.schedule(StepDecay(10, 0.5), base_lr=0.1)
>>> import numpy as np
>>> np.array_equal(jax.jit(lr)(jnp.array([0, 9, 10, 25])), np.float32([0.1, 0.1, 0.05, 0.025]))
True
>>> optimizer = optax.sgd(learning_rate=lr)

The schedule is an optax ``Schedule``: a pure function of the step count (an int scalar or array) that ``jax.jit``
and ``jax.vmap`` trace. It does not compute ``base_lr * gamma ** k`` in float32 (which drifts from the correctly
rounded rate as ``k`` grows); it looks the rate up in the table of :func:`steplr.schedules.piecewise.piecewise`
(``jnp.searchsorted`` and a gather on constants), so it is exact for every step up to ``max_steps``, and for every
step when the schedule settles before that; after the horizon the rate of step ``max_steps`` is held. Steps are
int32 as optax counts them (JAX's default without x64), so ``max_steps`` is at most ``2**31 - 1``.

Needs the ``jax`` extra (``pip install 'steplr[jax]'``); ``import steplr`` never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from steplr._extras import missing_extra
from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules.kinds import Schedule
from steplr.schedules.piecewise import DEFAULT_MAX_STEPS, piecewise

try:
    import jax.numpy as jnp
except ModuleNotFoundError as error:
    missing = missing_extra(error)
    if missing is None:
        raise
    raise missing from error

__all__ = ["schedule"]

_MAX_STEP = 2**31 - 1  # optax's step count is int32


def schedule(sched: Schedule, base_lr: float, *, max_steps: int = DEFAULT_MAX_STEPS) -> Callable[[Any], Any]:
    """``sched`` for a param group starting at ``base_lr``, as an optax schedule: ``count -> learning rate``.

    Args:
        sched: a steplr schedule with scalar parameters and durations in steps.
        base_lr: the initial learning rate, a finite number > 0.
        max_steps: the horizon, an int from 0 to ``2**31 - 1``: exact rates (the float64 rate rounded once to
            float32) for steps ``0..max_steps``; after it, the rate of step ``max_steps`` (exact too when the schedule
            has settled by then). A schedule that changes at every step keeps one entry per step (8 bytes each).

    Returns:
        A function of an integer step count (scalar or array, traced or not) giving float32 rates of its shape.

    Raises:
        SteplrTypeError, SteplrValueError: as :func:`steplr.schedules.piecewise.piecewise`, and for a ``max_steps``
            above ``2**31 - 1``.
    """
    if not isinstance(sched, Schedule):
        raise SteplrTypeError(f"sched must be a steplr Schedule, got {sched!r}")
    if isinstance(max_steps, int) and not isinstance(max_steps, bool) and max_steps > _MAX_STEP:
        raise SteplrValueError(f"max_steps must be at most 2**31 - 1 (optax counts steps in int32), got {max_steps!r}")
    starts64, values32 = piecewise(sched, base_lr, max_steps).float32()
    starts = jnp.asarray(starts64.astype(np.int32))
    values = jnp.asarray(values32)

    limit = int(max_steps) + 1  # every later step has the horizon's rate: clamp before the cast to int32

    def lr(count: Any) -> Any:
        if isinstance(count, (int, np.integer, np.ndarray)):  # concrete: may hold steps beyond int32
            count = np.minimum(count, limit)
        index = jnp.searchsorted(starts, jnp.asarray(count, dtype=jnp.int32), side="right") - 1
        return values[index]

    lr.__doc__ = f"{sched!r} from base_lr {float(base_lr)!r}: the learning rate at step ``count`` (float32)."
    return lr
