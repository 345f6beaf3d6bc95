"""The plan as data: explain() without the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- the low-LR warning counts what it claims (review: periodic cosines were said to "not train" for good) ---


def _low_warning(plan):
    found = [w for w in plan.warnings if "falls to" in w or "reaches 0" in w]
    assert len(found) <= 1
    return found[0] if found else None


@settings(max_examples=200, deadline=None)
@given(t_max=st.integers(1, 200), epochs=st.integers(1, 600))
def test_a_periodic_cosine_warning_counts_the_low_epochs_from_the_definition(t_max, epochs):
    plan = explain(Cosine(t_max), 1.0, epochs)
    # (1 + cos(pi t / t_max)) / 2 <= 1/100  <=>  cos <= -0.98  <=>  t is within t_max * acos(0.98) / pi of an odd
    # multiple of t_max; acos(0.98) / pi is irrational, so no step sits on the boundary
    reach = t_max * math.acos(0.98) / math.pi
    low = [t for t in range(epochs) if abs(t % (2 * t_max) - t_max) <= reach]
    zeros = [t for t in range(epochs) if t % (2 * t_max) == t_max]
    warning = _low_warning(plan)
    if not low:
        assert warning is None
        return
    assert warning is not None
    first = low[0]
    assert f" at epoch {first} (the {first + 1}" in warning
    if low == list(range(first, epochs)) and low == zeros:
        assert warning.endswith(": the rest of the run does not train")
        return
    assert "does not train" not in warning
    assert f"({len(low)} of {epochs} epochs)" in warning
    assert ("rises again" in warning) == (low != list(range(first, epochs)))
    assert (f"in {len(low) - sum(b == a + 1 for a, b in zip(low, low[1:]))} stretches" in warning) == (
        "stretches" in warning
    )


def test_the_rest_does_not_train_only_when_the_rate_stays_at_zero():
    assert _low_warning(explain(Cosine(4), 0.1, 5)) == (
        "the learning rate reaches 0 at epoch 4 (the 5th epoch): the rest of the run does not train"
    )
    climbs = _low_warning(explain(Cosine(2), 0.1, 5))  # 0.1, 0.05, 0, 0.05, 0.1
    assert climbs == (
        "the learning rate reaches 0 at epoch 2 (the 3rd epoch) and rises again: "
        "20% of the run (1 of 5 epochs) trains at or below 1/100 of its start"
    )


def test_a_decay_that_stays_low_keeps_its_wording_and_names_the_logged_epoch():
    plan = explain(StepDecay(2, 0.1), 1e-3, 5)
    assert plan.warnings == [
        "the learning rate falls to 1e-05 (1/100 of its start or lower) at epoch 4 (the 5th epoch), and 20% of the "
        "run (1 of 5 epochs) trains at that rate or lower: little learning happens there"
    ]


@pytest.mark.parametrize(
    ("epoch", "logged"),
    [(1, "2nd"), (2, "3rd"), (3, "4th"), (10, "11th"), (11, "12th"), (12, "13th"), (20, "21st"), (21, "22nd"),
     (22, "23rd"), (110, "111th"), (111, "112th"), (120, "121st")],
)
def test_warnings_name_the_epoch_as_the_training_log_counts_it(epoch, logged):
    warning = _low_warning(explain(StepDecay(epoch, 0.01), 1.0, epoch + 2))
    assert warning is not None and f"at epoch {epoch} (the {logged} epoch)," in warning


def test_a_fall_within_an_epoch_names_the_iteration_and_its_epoch():
    warning = _low_warning(explain(StepDecay("7it", 0.01), 1.0, 4, steps_per_epoch=3))
    assert warning is not None
    assert "at iteration 7, in epoch 2 (the 3rd epoch)," in warning
    assert f"{5 / 12:.0%} of the run (5 of 12 iterations = {5 / 3:.3g} of 4 epochs)" in warning
    on_a_boundary = _low_warning(explain(Cosine("3ep"), 0.1, 5, steps_per_epoch=2))  # 0 at iteration 6 only
    assert on_a_boundary is not None and "reaches 0 at epoch 3 (the 4th epoch) and rises again" in on_a_boundary
    assert "(1 of 10 iterations = 0.5 of 5 epochs)" in on_a_boundary


# --- eta_min above the base LR (review: "0 decays" while the LR rose, without a word) ---


@pytest.mark.parametrize(
    "schedule",
    [Cosine(10, 0.5), join([LinearWarmup(2, 0.1), Cosine(8, 0.5)], [2]), join([StepDecay(3), Cosine(4, 0.5)], [5])],
)
def test_eta_min_above_the_base_lr_is_flagged_also_when_nested(schedule):
    plan = explain(schedule, 0.1, 10)
    assert "eta_min 0.5 is above the base lr 0.1: the learning rate rises instead of decaying" in plan.warnings


@pytest.mark.parametrize("eta_min", [0.0, 0.05, 0.1])
def test_eta_min_at_or_below_the_base_lr_is_not_flagged(eta_min):
    for schedule in (Cosine(10, eta_min), join([LinearWarmup(2), Cosine(8, eta_min)], [2])):
        assert not any("eta_min" in w for w in explain(schedule, 0.1, 10).warnings)
