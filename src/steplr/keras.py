"""steplr schedules for Keras 3: the same rates as ``schedule.lr``, rounded once to float32, on any backend (tested on
torch and JAX).

Set ``KERAS_BACKEND`` (e.g. ``torch``) before the first ``import keras``, as always with Keras 3.

>>> import keras, steplr.keras
>>> from steplr.schedules import StepDecay
>>> lr = steplr.keras.schedule(StepDecay(10, 0.5), base_lr=0.1)
>>> [round(float(lr(t)), 6) for t in (0, 9, 10, 25)]
[0.1, 0.1, 0.05, 0.025]
>>> optimizer = keras.optimizers.SGD(learning_rate=lr)

The returned object is a :class:`keras.optimizers.schedules.LearningRateSchedule` registered as
``"steplr>Schedule"``: its config is the schedule's ``params()``, ``base_lr`` and ``max_steps``, so a model saved in
the ``.keras`` format loads back with it. It looks its rate up in the table of
:func:`steplr.schedules.piecewise.piecewise` (``searchsorted`` and ``take`` in ``keras.ops``), so it is exact for
every step up to ``max_steps``, and for every step when the schedule settles before that; after the horizon the
rate of step ``max_steps`` is held.

Needs the ``keras`` extra (``pip install 'steplr[keras]'``); ``import steplr`` never imports this module.
"""

from __future__ import annotations

from typing import Any

from steplr._extras import missing_extra
from steplr.errors import SteplrError, SteplrTypeError
from steplr.schedules.kinds import Schedule as StepSchedule
from steplr.schedules.kinds import schedule_from_params
from steplr.schedules.piecewise import DEFAULT_MAX_STEPS, piecewise

__all__ = ["KerasBackendError", "Schedule", "schedule"]


class KerasBackendError(SteplrError, ImportError):
    """Keras is installed but the backend it was told to use (``KERAS_BACKEND``, ``~/.keras/keras.json``) is not."""


try:
    import keras
except ModuleNotFoundError as error:
    missing = missing_extra(error)
    if missing is not None:
        raise missing from error
    backend = (error.name or "").partition(".")[0]
    if backend not in ("tensorflow", "torch", "jax", "openvino"):
        raise
    raise KerasBackendError(
        f"Keras' backend {backend} is not installed: set KERAS_BACKEND to an installed one (torch, jax, tensorflow) "
        "before importing Keras",
        name=backend,
    ) from error


@keras.saving.register_keras_serializable(package="steplr")
class Schedule(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """A steplr schedule as a Keras learning-rate schedule (build it with :func:`schedule`)."""

    def __init__(self, sched: StepSchedule, base_lr: float, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        if not isinstance(sched, StepSchedule):
            raise SteplrTypeError(f"sched must be a steplr Schedule, got {sched!r}")
        table = piecewise(sched, base_lr, max_steps)
        self.sched, self.base_lr, self.max_steps = sched, float(base_lr), int(max_steps)
        starts, values = table.float32()
        # Steps in int32 where they fit (JAX's default has no int64); later steps are the horizon's anyway.
        self._dtype = "int32" if self.max_steps < 2**31 - 1 else "int64"
        # Made here, outside any traced function: a tensor first made inside a JAX trace and kept would leak it.
        self._starts = keras.ops.convert_to_tensor(starts, dtype=self._dtype)
        self._values = keras.ops.convert_to_tensor(values, dtype="float32")

    def __call__(self, step: Any) -> Any:
        starts, values = self._starts, self._values
        if isinstance(step, int):  # Keras would make a Python int an int32 tensor
            step = min(step, self.max_steps + 1)
        t = keras.ops.cast(keras.ops.minimum(step, self.max_steps + 1), self._dtype)
        index = keras.ops.searchsorted(starts, keras.ops.reshape(t, (-1,)), side="right") - 1
        return keras.ops.reshape(keras.ops.take(values, index), keras.ops.shape(t))

    def get_config(self) -> dict[str, Any]:
        return {"schedule": self.sched.params(), "base_lr": self.base_lr, "max_steps": self.max_steps}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Schedule:
        return cls(schedule_from_params(config["schedule"]), config["base_lr"], config["max_steps"])

    def __repr__(self) -> str:
        return f"steplr.keras.schedule({self.sched!r}, base_lr={self.base_lr!r}, max_steps={self.max_steps!r})"


def schedule(sched: StepSchedule, base_lr: float, *, max_steps: int = DEFAULT_MAX_STEPS) -> Schedule:
    """``sched`` for a param group starting at ``base_lr``, as a Keras learning-rate schedule of the optimizer's step.

    Args:
        sched: a steplr schedule with scalar parameters and durations in steps.
        base_lr: the initial learning rate, a finite number > 0.
        max_steps: the horizon, an int >= 0: exact rates (the float64 rate rounded once to float32) for steps
            ``0..max_steps``; after it, the rate of step ``max_steps`` (exact too when the schedule has settled by
            then). A schedule that changes at every step keeps one entry per step (8 bytes each).

    Raises:
        SteplrTypeError, SteplrValueError: as :func:`steplr.schedules.piecewise.piecewise`.
    """
    return Schedule(sched, base_lr, max_steps)
