"""Schedule math: the schedule kinds and their registry, schedule specs, durations, the exact power kernel, LR
tables and ``explain``. Imports NumPy only."""

from steplr.schedules.cycles import CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.durations import Duration
from steplr.schedules.kinds import (
    Constant,
    ConstantFactor,
    Cosine,
    Exponential,
    Linear,
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
    "ConstantFactor",
    "Cosine",
    "CosineWarmRestarts",
    "Cyclic",
    "Duration",
    "Exponential",
    "Kind",
    "Linear",
    "LinearWarmup",
    "MultiStep",
    "OneCycle",
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
