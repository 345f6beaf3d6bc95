"""TrainConfig.with_settings: what carries over when a run switches schedule kind."""

from __future__ import annotations

import pytest

from steplr.training.config import TrainConfig


def test_a_parameter_declared_alike_carries_over_to_another_kind():
    base = TrainConfig().with_settings(schedule="step", step_size=3, gamma=0.25)
    assert base.with_settings(schedule="exponential").schedule.params["gamma"] == 0.25


def test_a_parameter_of_the_same_name_but_another_meaning_does_not():
    # a step decay's gamma is per decay; cyclic's gamma is exp_range's per-step factor (default 1)
    base = TrainConfig().with_settings(schedule="step", gamma=0.5)
    cyclic = base.with_settings(schedule="cyclic", max_lr=1.0, step_size_up=4, mode="exp_range")
    assert cyclic.schedule.params["gamma"] == 1.0


def test_the_same_kind_keeps_every_setting():
    base = TrainConfig().with_settings(schedule="cyclic", max_lr=1.0, step_size_up=2, mode="exp_range", gamma=0.99)
    again = base.with_settings(step_size_up=4)
    assert again.schedule.params["gamma"] == 0.99 and again.schedule.params["mode"] == "exp_range"


def test_a_setting_the_new_kind_does_not_read_is_refused():
    with pytest.raises(ValueError, match="max_lr does not apply to schedule 'step'"):
        TrainConfig().with_settings(schedule="step", max_lr=1.0)
