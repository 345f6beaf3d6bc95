"""Schedule math: the schedule kinds and their registry, schedule specs, durations, the exact power kernel, LR
tables and ``explain``. Imports NumPy only."""

from steplr.schedules.durations import Duration
from steplr.schedules.kinds import (
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    MultiStep,
    Schedule,
    Sequence,
    StepDecay,
    join,
    schedule_from_params,
)
from steplr.schedules.registry import Kind, Param, lookup, names
from steplr.schedules.spec import ScheduleSpec
from steplr.schedules.table import lr_table

__all__ = [
    "Constant",
    "Cosine",
    "Duration",
    "Exponential",
    "Kind",
    "LinearWarmup",
    "MultiStep",
    "Param",
    "Schedule",
    "ScheduleSpec",
    "Sequence",
    "StepDecay",
    "join",
    "lookup",
    "lr_table",
    "names",
    "schedule_from_params",
]
