"""The plan as data: explain() without the CLI."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steplr.schedules.explain import FLOOR_RATIO, JSON_INTERVALS, MAX_STEPS, Interval, explain, format_plan, lr_profile
from steplr.schedules.kinds import Constant, Cosine, Exponential, LinearWarmup, MultiStep, Schedule, StepDecay, join


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
    assert (f"in {len(low) - sum(b == a + 1 for a, b in itertools.pairwise(low))} stretches" in warning) == (
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
    [
        (1, "2nd"),
        (2, "3rd"),
        (3, "4th"),
        (10, "11th"),
        (11, "12th"),
        (12, "13th"),
        (20, "21st"),
        (21, "22nd"),
        (22, "23rd"),
        (110, "111th"),
        (111, "112th"),
        (120, "121st"),
    ],
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


# --- per segment, not per step (issue 9): the plan is the one a step-by-step evaluation gives ---


def per_step(schedule: Schedule, base_lr: float, epochs: int, steps_per_epoch: int):
    """The plan from the definition: the schedule evaluated at every step of the run (small runs only)."""
    total = epochs * steps_per_epoch
    lrs = schedule.resolve(steps_per_epoch).lr(base_lr, np.arange(total))
    changes = (np.flatnonzero(lrs[1:] != lrs[:-1]) + 1).tolist()
    starts, ends = [0, *changes], [c - 1 for c in changes] + [total - 1]
    intervals = [(s, e, float(lrs[s])) for s, e in zip(starts, ends)]
    return lrs, intervals, int(np.count_nonzero(lrs[1:] < lrs[:-1]))


GAMMAS = [0.1, 0.5, 0.9, 0.999, 0.999999, 1.0, 1 - 2**-53, 1.5, 2.0]
BASES = [0.1, 1.0, 3e-300, 1e-310, 1e300]


@st.composite
def schedules(draw):
    gamma = draw(st.sampled_from(GAMMAS))
    kind = draw(st.sampled_from(["step", "multistep", "exponential", "cosine", "constant", "warmup", "joined"]))
    if kind == "step":
        return StepDecay(draw(st.integers(1, 40)), gamma)
    if kind == "multistep":
        return MultiStep(sorted(draw(st.sets(st.integers(1, 900), min_size=1, max_size=8))), gamma)
    if kind == "exponential":
        return Exponential(gamma)
    if kind == "cosine":
        t_max = draw(st.one_of(st.integers(1, 300), st.integers(400, 9000)))  # long ones are not all evaluated
        return Cosine(t_max, draw(st.sampled_from([0.0, 0.001, 0.05, 0.5, 0.1])))
    if kind == "constant":
        return Constant()
    warmup = LinearWarmup(draw(st.integers(1, 50)), draw(st.sampled_from([0.0, 0.1, 1.0])))
    if kind == "warmup":
        return warmup
    choices = [warmup, StepDecay(draw(st.integers(1, 9)), gamma), Cosine(30), Exponential(gamma)]
    first, second = draw(st.permutations(choices))[:2]
    return join([first, second], [draw(st.integers(1, 200))])


@settings(max_examples=300, deadline=None)
@given(schedule=schedules(), base_lr=st.sampled_from(BASES), epochs=st.integers(1, 2500), spe=st.sampled_from([1, 3]))
def test_the_plan_is_the_one_every_step_gives(schedule, base_lr, epochs, spe):
    try:
        lrs, intervals, decays = per_step(schedule, base_lr, epochs, spe)
    except ValueError:
        return  # a duration the run cannot resolve: explain refuses it as well (tested elsewhere)
    if not np.isfinite(lrs).all():
        first = int(np.flatnonzero(~np.isfinite(lrs))[0])
        with pytest.raises(ValueError, match=f"the learning rate overflows to {lrs[first]} at step {first}:"):
            explain(schedule, base_lr, epochs, spe)
        return
    plan = explain(schedule, base_lr, epochs, spe)
    assert [(i.first_step, i.last_step, i.lr) for i in plan.intervals] == intervals
    assert len(plan.intervals) == len(intervals)
    some = sorted({0, len(intervals) // 2, len(intervals) - 1})
    assert [(plan.intervals[k].first_step, plan.intervals[-len(intervals) + k].lr) for k in some] == [
        (intervals[k][0], intervals[k][2]) for k in some
    ]
    assert (plan.decays, plan.final_lr) == (decays, float(lrs[-1]))
    check_low_warning(plan, lrs)


def check_low_warning(plan, lrs):
    """The low-LR warning against the definition: from the first step of the highest rate on, the steps at or
    below 1/100 of the start, where they begin, how many, in how many stretches."""
    floor = plan.base_lr * FLOOR_RATIO * (1 + 1e-9)
    peak = int(np.argmax(lrs))
    low = np.flatnonzero(lrs[peak:] <= floor) + peak
    warning = _low_warning(plan)
    if not low.size:
        assert warning is None
        return
    first, total = int(low[0]), len(lrs)
    assert warning is not None and f" at {'epoch' if first % plan.steps_per_epoch == 0 else 'iteration'} " in warning
    assert f"{first // plan.steps_per_epoch} (the" in warning
    stays = low.size == total - first
    if stays and not lrs[first:].any():
        assert warning.endswith("the rest of the run does not train")
        return
    assert f"({low.size} of " in warning and ("rises again" in warning) == (not stays)
    stretches = 1 + int(np.count_nonzero(np.diff(low) > 1))
    assert (f"in {stretches} stretches" in warning) == (stretches > 1)
    if stays:
        assert ("that rate or lower" in warning) == (lrs[first:].max() <= lrs[first])


@settings(max_examples=150, deadline=None)
@given(schedule=schedules(), epochs=st.integers(1, 2500), buckets=st.integers(1, 40))
def test_the_profile_keeps_exact_change_points_and_each_stretch_s_range(schedule, epochs, buckets):
    lrs, intervals, _ = per_step(schedule, 0.1, epochs, 1)
    if not np.isfinite(lrs).all():
        with pytest.raises(ValueError, match="overflows to inf"):
            lr_profile(schedule, 0.1, epochs, buckets=buckets)
        return
    starts, values = lr_profile(schedule, 0.1, epochs, buckets=buckets)
    assert len(starts) <= 4 * buckets and starts[0] == 0 and np.all(np.diff(starts) > 0)
    firsts = {s: lr for s, _, lr in intervals}
    assert all(firsts[s] == v for s, v in zip(starts.tolist(), values.tolist()))  # every point is a change point
    assert values[-1] == lrs[-1]
    edges = np.unique(np.linspace(0, epochs, buckets + 1).round().astype(int))
    for lo, hi in itertools.pairwise(edges):
        # what the figure shows over steps [lo, hi): the rate held on entry, and every point drawn inside
        shown = set(values[(starts >= lo) & (starts < hi)].tolist()) | set(values[starts < lo][-1:].tolist())
        assert lrs[lo:hi].min() in shown and lrs[lo:hi].max() in shown  # the whole range of rates
        inside = [lr for s, _, lr in intervals if lo <= s < hi]
        if len(inside) <= 3:  # and every step, where there are few
            assert set(inside) <= shown


def test_a_profile_of_few_intervals_is_every_interval():
    starts, values = lr_profile(StepDecay(10, 0.5), 0.1, 40)
    assert starts.tolist() == [0, 10, 20, 30] and values.tolist() == [StepDecay(10, 0.5).lr(0.1, t) for t in starts]


@pytest.mark.parametrize(
    "schedule",
    [
        Cosine(MAX_STEPS),
        Cosine(100),
        StepDecay(1, 0.999999),
        Exponential(0.999999),
        MultiStep([10**6, 5 * 10**6, 15 * 10**6]),
        join([LinearWarmup(10**6), Cosine(MAX_STEPS - 10**6)], [10**6]),
        join([LinearWarmup(20), StepDecay(1, 0.999999)], [20]),
    ],
    ids=["cosine", "periodic-cosine", "step-1", "exponential", "multistep", "warmup-cosine", "warmup-step-1"],
)
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_a_plan_at_the_cap_is_built_per_segment_in_bounded_memory(schedule):
    """In a child process, with a 1 GB data limit (resource.setrlimit) so that a step-by-step table (160 MB per
    float64 column, several of them) fails fast instead of swapping. The peak is VmHWM, the high-water mark of the
    child's own image: getrusage's ru_maxrss would carry over the RSS of the pytest process that forked it."""
    script = textwrap.dedent(f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))
        from steplr.schedules.explain import explain, format_plan
        from steplr.schedules.kinds import schedule_from_params
        plan = explain(schedule_from_params(json.loads(sys.argv[1])), 0.1, {MAX_STEPS})
        lines = format_plan("x", plan)
        with open("/proc/self/status") as status:
            peak = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
        print(json.dumps({{"peak_kb": peak, "intervals": len(plan.intervals), "decays": plan.decays,
                          "final": plan.final_lr, "lines": len(lines)}}))
    """)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(schedule.params())], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["peak_kb"] < 200 * 1024, found
    assert found["final"] == schedule.lr(0.1, MAX_STEPS - 1)
    assert found["lines"] <= 1 + 16 + 1 + 3  # head, tail, "... more intervals ...", decays, warnings


def test_step_decay_at_the_cap_evaluates_a_few_decays_not_every_step():
    class Counted(StepDecay):
        """StepDecay that counts the steps it is evaluated at (the plan must come from its structure)."""

        evaluated = 0

        def _lr_scalar(self, base_lr, t):
            Counted.evaluated += 1
            return super()._lr_scalar(base_lr, t)

        def _lr_array(self, base_lr, t):
            Counted.evaluated += np.size(t)
            return super()._lr_array(base_lr, t)

        def resolve(self, steps_per_epoch):
            return self

    plan = explain(Counted(1000, 0.5), 0.1, MAX_STEPS)
    assert Counted.evaluated < 5000
    zero_at = next(k for k in range(2000) if math.ldexp(0.1, -k) == 0)  # 0.1 * 2**-k, rounded once
    assert len(plan.intervals) == zero_at + 1 and plan.final_lr == 0.0 and plan.decays == zero_at
    assert plan.intervals[-1].first_step == zero_at * 1000 and plan.intervals[-1].last_step == MAX_STEPS - 1
    assert plan.intervals[-2].lr == math.ldexp(0.1, 1 - zero_at) > 0


@pytest.mark.parametrize("eta_min", [0.0, 0.001, 0.05, 0.5])
@pytest.mark.parametrize("t_max", [4096, 5003])
def test_a_long_cosine_is_the_plan_every_step_gives_through_its_turning_points(t_max, eta_min):
    for schedule in (Cosine(t_max, eta_min), join([LinearWarmup(700, 0.0), Cosine(t_max, eta_min)], [700])):
        lrs, intervals, decays = per_step(schedule, 0.1, 12_000, 1)  # two turning points, three half periods
        plan = explain(schedule, 0.1, 12_000)
        assert (len(plan.intervals), plan.decays, plan.final_lr) == (len(intervals), decays, lrs[-1])
        assert [(i.first_step, i.last_step, i.lr) for i in plan.intervals] == intervals
        check_low_warning(plan, lrs)


def test_cosine_and_warm_up_at_the_cap_evaluate_turning_points_or_one_period_not_every_step():
    evaluated = []

    class Counted(Cosine):
        """Cosine that records how many steps it is evaluated at."""

        def _lr_scalar(self, base_lr, t):
            evaluated.append(1)
            return super()._lr_scalar(base_lr, t)

        def _lr_array(self, base_lr, t):
            evaluated.append(np.size(t))
            return super()._lr_array(base_lr, t)

        def resolve(self, steps_per_epoch):
            return self

    plan = explain(join([LinearWarmup(10**6, 0.0), Counted(MAX_STEPS - 10**6)], [10**6]), 0.1, MAX_STEPS)
    assert sum(evaluated) < 10_000 and plan.decays == MAX_STEPS - 10**6 - 1
    assert len(plan.intervals) == MAX_STEPS and plan.intervals[10**6 + 5].lr == Cosine(MAX_STEPS - 10**6).lr(0.1, 5)
    evaluated.clear()  # a periodic cosine: one period evaluated, and repeated
    periodic = explain(Counted(100, 0.001), 0.1, MAX_STEPS)
    assert sum(evaluated) < 10_000 and periodic.decays == MAX_STEPS // 2 and len(periodic.intervals) == MAX_STEPS
    assert periodic.intervals[-1] == Interval(MAX_STEPS - 1, MAX_STEPS - 1, Cosine(100, 0.001).lr(0.1, 199), 1)
    assert "in 100000 stretches" in periodic.warnings[-1] and periodic.final_lr == Cosine(100, 0.001).lr(0.1, 199)


def test_long_plans_cap_their_json_intervals_and_say_so():
    plan = explain(Exponential(0.9999), 0.1, 5000)
    data = plan.as_dict()
    half = JSON_INTERVALS // 2
    counts = data["interval_count"], data["intervals_omitted"], len(data["intervals"])
    assert counts == (5000, 5000 - 2 * half, 2 * half)
    assert [i["first_step"] for i in data["intervals"]] == list(range(half)) + list(range(5000 - half, 5000))
    short = explain(StepDecay(10, 0.5), 0.1, 40).as_dict()
    assert (short["interval_count"], short["intervals_omitted"], len(short["intervals"])) == (4, 0, 4)
    assert json.dumps(data)  # plain data


def test_printed_plan_of_a_long_run_shows_head_and_tail_only():
    lines = format_plan("exp", explain(Exponential(0.9999), 0.1, 5000))
    assert lines[11] == "  ... 4985 more intervals ..." and lines[16].startswith("  epoch 4999: lr ")


# --- milestones past the end of the run (issue 9, section 5) ---


def test_milestones_past_the_end_of_the_run_are_named():
    plan = explain(MultiStep([30, 60, 90, 120]), 0.1, 80)
    assert "milestones 90ep, 120ep are past the end of the 80-epoch run: they never apply" in plan.warnings
    one = explain(MultiStep([30, 80]), 0.1, 80)  # 80 would apply at step 80: after the last step, 79
    assert "milestone 80ep is past the end of the 80-epoch run: it never applies" in one.warnings
    assert not any("milestone" in w for w in explain(MultiStep([30, 79]), 0.1, 80).warnings)


def test_milestones_past_the_end_name_iterations_and_count_from_the_run_s_start():
    plan = explain(MultiStep(["2ep", "70it", "25ep"]), 0.1, 10, steps_per_epoch=10)
    assert "milestone 25ep is past the end of the 10-epoch run (100 iterations): it never applies" in plan.warnings
    late = explain(MultiStep(["2ep", "105it"]), 0.1, 10, steps_per_epoch=10)
    assert "milestone 105it is past the end of the 10-epoch run (100 iterations): it never applies" in late.warnings
    warmed = explain(join([LinearWarmup(5), MultiStep([10, 85])], [5]), 0.1, 80)  # 85 after the warm-up = step 90
    assert "milestone 90ep is past the end of the 80-epoch run: it never applies" in warmed.warnings
