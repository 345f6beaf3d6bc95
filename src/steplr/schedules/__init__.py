"""Schedule math: the schedule kinds, durations, the exact power kernel and ``explain``. Imports NumPy only."""

from steplr.schedules.durations import Duration
from steplr.schedules.kinds import (
    SCHEDULE_NAMES,
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    MultiStep,
    Schedule,
    Sequence,
    StepDecay,
    by_name,
    join,
    schedule_from_params,
)

__all__ = [
    "SCHEDULE_NAMES",
    "Constant",
    "Cosine",
    "Duration",
    "Exponential",
    "LinearWarmup",
    "MultiStep",
    "Schedule",
    "Sequence",
    "StepDecay",
    "by_name",
    "join",
    "schedule_from_params",
]
