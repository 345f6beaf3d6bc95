"""The plan as data: explain() without the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from steplr.explain import MAX_STEPS, explain
from steplr.schedules import Cosine, LinearWarmup, StepDecay, join


def test_plan_intervals_come_from_the_schedule():
    schedule = StepDecay("115it", 0.5)
    plan = explain(schedule, 0.01, epochs=20, steps_per_epoch=23)
    assert [(i.first_step, i.last_step) for i in plan.intervals] == [(0, 114), (115, 229), (230, 344), (345, 459)]
    assert [i.lr for i in plan.intervals] == [schedule.lr(0.01, i.first_step) for i in plan.intervals]
    assert plan.intervals[1].first_epoch == 5 and plan.final_lr == schedule.lr(0.01, 459)


def test_numpy_scalars_are_accepted_and_wrong_types_named():
    plan = explain(StepDecay(2, 0.1), np.float32(0.1), 3)
    assert plan.base_lr == float(np.float32(0.1))
    with pytest.raises(TypeError, match="schedule must be a steplr Schedule, got 'step'"):
        explain("step", 0.1, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_lr must be a number > 0, got 0"):
        explain(StepDecay(2), 0, 3)
    with pytest.raises(ValueError, match="more than steplr tabulates"):
        explain(StepDecay(2), 0.1, MAX_STEPS + 1)


def test_warm_up_then_cosine_warns_only_about_the_tail():
    plan = explain(join([LinearWarmup(5, 0.0), Cosine(25)], [5]), 0.1, 30)
    assert plan.intervals[0].lr == 0.0
    assert len(plan.warnings) == 1 and "falls to" in plan.warnings[0]
    assert "at epoch 5" not in plan.warnings[0]
