"""The cyclical and factor kinds through the registry: specs (words, flags, an optional parameter) round-trip through
JSON, LR tables stack them, and explain's plans and warnings are the ones every step gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steplr.errors import SteplrValueError
from steplr.schedules.cycles import CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.explain import FLOOR_RATIO, explain
from steplr.schedules.kinds import ConstantFactor, Linear, LinearWarmup, join
from steplr.schedules.registry import RunShape, compared, lookup, names
from steplr.schedules.spec import ScheduleSpec
from steplr.schedules.table import lr_table


def per_step(schedule, base_lr, epochs, steps_per_epoch):
    """The plan from the definition: the schedule at every step, cut where the rate changes."""
    total = epochs * steps_per_epoch
    lrs = schedule.resolve(steps_per_epoch).lr(base_lr, np.arange(total))
    changes = (np.flatnonzero(lrs[1:] != lrs[:-1]) + 1).tolist()
    starts, ends = [0, *changes], [c - 1 for c in changes] + [total - 1]
    return lrs, [(s, e, float(lrs[s])) for s, e in zip(starts, ends)], int(np.count_nonzero(lrs[1:] < lrs[:-1]))


def low_warned(plan, lrs):
    """Whether the low-LR warning is there exactly when, from the highest rate on, some step is at or below 1/100
    of the base rate."""
    peak = int(np.argmax(lrs))
    low = bool((lrs[peak:] <= plan.base_lr * FLOOR_RATIO * (1 + 1e-9)).any())
    said = any("1/100 of its start" in w or "does not train" in w or "little learning" in w for w in plan.warnings)
    return low == said


def test_the_new_kinds_and_their_aliases_are_in_the_registry_but_not_compared_by_default():
    for name, aliases in [
        ("linear-factor", ("linearlr",)),
        ("constant-factor", ("constantlr",)),
        ("restarts", ("sgdr", "warm-restarts")),
        ("onecycle", ("one-cycle", "1cycle")),
        ("cyclic", ("clr",)),
    ]:
        assert name in names(reactive=False) and name in compared()
        assert all(lookup(alias) is lookup(name) for alias in aliases)
        assert not lookup(name).compared_by_default and lookup(name).summary
    run = RunShape(epochs=10, steps=700)
    assert lookup("restarts").fair(run) == {"t_0": "100it", "t_mult": 2}  # 100 + 200 + 400 = the run
    assert lookup("cyclic").fair(run) == {"step_size_up": "175it", "gamma": 1.0}  # two triangles
    assert lookup("constant-factor").fair(run) == {"total_iters": "70it"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ScheduleSpec("linear-factor", {"start_factor": 1.0, "end_factor": 0.0}), Linear(1.0, 0.0, 12)),
        (ScheduleSpec("constant-factor", {"factor": 0.5, "total_iters": "1ep"}), ConstantFactor(0.5, 3)),
        (ScheduleSpec("sgdr", {"t_0": "1ep", "t_mult": 2}), CosineWarmRestarts(3, 2, 0.0)),
        (ScheduleSpec("onecycle"), OneCycle(12)),
        (
            ScheduleSpec("onecycle", {"anneal_strategy": "linear", "three_phase": True, "pct_start": 0.25}),
            OneCycle(12, 0.25, "linear", three_phase=True),
        ),
        (ScheduleSpec("cyclic", {"max_lr": 1.0, "step_size_up": "1ep"}), Cyclic(1.0, 3)),
        (
            ScheduleSpec("cyclic", {"max_lr": 1.0, "step_size_up": 2, "step_size_down": "1ep", "mode": "exp_range"}),
            Cyclic(1.0, 2, 3, "exp_range"),
        ),
    ],
)
def test_a_spec_of_a_new_kind_builds_it_and_round_trips_through_json(spec, expected):
    assert spec.build(epochs=4, steps_per_epoch=3) == expected
    again = ScheduleSpec.from_dict(json.loads(json.dumps(spec.as_dict())))
    assert again == spec and again.build(epochs=4, steps_per_epoch=3) == expected
    assert ScheduleSpec.from_settings(spec.kind, spec.settings()) == spec


def test_spec_descriptions_say_words_flags_and_an_unset_optional_parameter():
    cyclic = ScheduleSpec("cyclic", {"max_lr": 0.5, "step_size_up": "2ep"})
    assert cyclic.describe() == (
        "cyclic (max_lr 0.5, step_size_up 2ep, step_size_down as step_size_up, mode triangular, gamma 1)"
    )
    assert cyclic.as_dict()["step_size_down"] is None
    assert ScheduleSpec("onecycle").describe() == (
        "onecycle (total_steps the run, pct_start 0.3, anneal_strategy cos, div_factor 25, final_div_factor 10000, "
        "three_phase False)"
    )


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("onecycle", {"anneal_strategy": "cosine"}, "anneal_strategy must be one of cos, linear, got 'cosine'"),
        ("onecycle", {"three_phase": "yes"}, "three_phase must be true or false, got 'yes'"),
        ("onecycle", {"pct_start": 2.0}, "pct_start must be a number in [0, 1], got 2.0"),
        ("cyclic", {"step_size_up": 2}, "schedule 'cyclic' needs max_lr"),
        ("cyclic", {"max_lr": 1.0, "step_size_up": 2, "mode": "sine"}, "mode must be one of triangular"),
        ("restarts", {"t_0": 2, "t_mult": 0}, "t_mult must be an integer >= 1, got 0"),
        ("restarts", {"t_0": 2, "t_mult": -1}, "t_mult must be an integer >= 1, got -1"),
        ("restarts", {"t_0": 2, "t_mult": 1.5}, "t_mult must be an integer >= 1, got 1.5"),
        ("linear-factor", {"end_factor": 1.5}, "end_factor must be a number in [0, 1], got 1.5"),
        ("constant-factor", {}, "schedule 'constant-factor' needs total_iters"),
    ],
)
def test_a_bad_spec_of_a_new_kind_names_the_bad_value(kind, params, message):
    with pytest.raises(SteplrValueError) as info:
        ScheduleSpec(kind, params)
    assert message in str(info.value)


def test_a_one_cycle_whose_rise_would_last_zero_steps_is_refused_when_the_run_is_known():
    spec = ScheduleSpec("onecycle", {"pct_start": 0.1})
    with pytest.raises(SteplrValueError, match=r"pct_start \* total_steps must not be 1"):
        spec.build(epochs=10, steps_per_epoch=1)
    assert spec.build(epochs=20, steps_per_epoch=1) == OneCycle(20, 0.1)


def test_lr_tables_stack_rows_that_differ_in_numbers_and_split_by_words_and_flags():
    specs = [
        ScheduleSpec("cyclic", {"max_lr": 1.0, "step_size_up": 2}),
        ScheduleSpec("cyclic", {"max_lr": 0.5, "step_size_up": 3, "step_size_down": 1}),
        ScheduleSpec("cyclic", {"max_lr": 0.5, "step_size_up": 3, "mode": "exp_range", "gamma": 0.9}),
        ScheduleSpec("onecycle", {"pct_start": 0.25}),
        ScheduleSpec("onecycle", {"pct_start": 0.4, "three_phase": True, "anneal_strategy": "linear"}),
        ScheduleSpec("restarts", {"t_0": 2, "t_mult": 2}),
        ScheduleSpec("restarts", {"t_0": 3, "t_mult": 1, "eta_min": 0.01}),
        ScheduleSpec("linear-factor", {"end_factor": 0.0}),
        ScheduleSpec("constant-factor", {"total_iters": "2ep", "factor": 0.1}),
        ScheduleSpec("constant-factor", {"total_iters": 5, "factor": 0.2}),
    ]
    lrs = [0.1 * (i + 1) for i in range(len(specs))]
    table = lr_table(specs, lrs, epochs=5, steps_per_epoch=4)
    for row, spec, lr in zip(table, specs, lrs):
        schedule = spec.build(5, 4)
        assert row.tolist() == [schedule.lr(lr, t) for t in range(20)], spec


NEW_BASES = [0.1, 1.0, 3e-300]


@st.composite
def new_schedules(draw):
    kind = draw(st.sampled_from(["linear", "factor", "restarts", "onecycle", "cyclic", "joined"]))
    if kind == "linear":
        return Linear(
            draw(st.sampled_from([0.0, 0.1, 1.0])), draw(st.sampled_from([0.0, 0.5, 1.0])), draw(st.integers(1, 5000))
        )
    if kind == "factor":
        return ConstantFactor(draw(st.sampled_from([0.0, 0.001, 0.5])), draw(st.integers(1, 900)))
    if kind == "restarts":
        return CosineWarmRestarts(
            draw(st.integers(1, 300)), draw(st.integers(1, 3)), draw(st.sampled_from([0.0, 0.01]))
        )
    if kind == "onecycle":
        total = draw(st.integers(2, 3000))
        pct = draw(st.sampled_from([0.0, 0.25, 0.3, 0.5, 1.0]))
        if pct * total == 1.0:
            pct = 0.3 if 0.3 * total != 1.0 else 0.25
        return OneCycle(total, pct, draw(st.sampled_from(["cos", "linear"])), three_phase=draw(st.booleans()))
    if kind == "cyclic":
        mode = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]))
        down = draw(st.none() | st.integers(1, 50))
        return Cyclic(draw(st.sampled_from([0.0, 0.05, 2.0])), draw(st.integers(1, 50)), down, mode, 0.999)
    return join([LinearWarmup(draw(st.integers(1, 50)), 0.1), Cyclic(2.0, 5)], [draw(st.integers(1, 200))])


@settings(max_examples=200, deadline=None)
@given(
    schedule=new_schedules(),
    base_lr=st.sampled_from(NEW_BASES),
    epochs=st.integers(1, 2500),
    spe=st.sampled_from([1, 3]),
)
def test_the_plan_of_a_new_kind_is_the_one_every_step_gives(schedule, base_lr, epochs, spe):
    lrs, intervals, decays = per_step(schedule, base_lr, epochs, spe)
    plan = explain(schedule, base_lr, epochs, spe)
    assert [(i.first_step, i.last_step, i.lr) for i in plan.intervals] == intervals
    assert (plan.decays, plan.final_lr) == (decays, float(lrs[-1]))
    if not _one_cycle_to_the_end(schedule, epochs * spe):
        assert low_warned(plan, lrs)


def _one_cycle_to_the_end(schedule, total):
    return isinstance(schedule, OneCycle) and schedule.total_steps >= total


def test_a_triangular_cycle_and_equal_restarts_are_explained_from_one_period():
    """Long runs of a periodic kind: the plan is the every-step one (read at its ends) without evaluating it all."""
    for schedule in (Cyclic(1.0, 300, 200), CosineWarmRestarts(1000, 1, 0.001)):
        plan = explain(schedule, 0.1, 2_000_000)
        period = 500 if isinstance(schedule, Cyclic) else 1000
        assert len(plan.intervals) == 2_000_000  # every step its own rate
        head = [(i.first_step, i.lr) for i in plan.intervals[:3]]
        tail = plan.intervals[-1]
        assert head == [(t, schedule.lr(0.1, t)) for t in range(3)]
        assert (tail.first_step, tail.lr) == (1_999_999, schedule.lr(0.1, 1_999_999 % period))


def test_warnings_speak_of_cycles_not_of_decay():
    cyclic = explain(Cyclic(1.0, 2), 0.1, 20)
    assert cyclic.warnings == []  # it oscillates above the LR: nothing is wrong, and nothing "never decays"
    dipping = explain(Cyclic(0.05, 2, mode="triangular2", gamma=0.5), 0.1, 20).warnings
    assert dipping == ["max_lr 0.05 is below the base lr 0.1: each cycle dips below the LR instead of rising"]
    growing = explain(Cyclic(1.0, 2, mode="exp_range", gamma=1.01), 0.1, 20).warnings
    assert growing == ["gamma 1.01 > 1: the cycles grow instead of shrinking"]
    flat = explain(Cyclic(0.1, 2), 0.1, 20).warnings
    assert flat == ["the learning rate never changes within the run: this schedule is a constant LR"]


def test_a_one_cycle_over_the_run_does_not_warn_about_its_final_fall_but_one_that_ends_early_does():
    assert explain(OneCycle(100), 0.1, 100).warnings == []
    short = explain(OneCycle(40, three_phase=True), 0.1, 100).warnings
    assert short[0] == (
        "total_steps 40 epochs ends before the run: from epoch 39 (the 40th epoch) on the rate stays at the "
        "cycle's final lr"
    )
    assert "trains at that rate or lower" in short[1]
    warm = ScheduleSpec("onecycle", warmup=5).build(epochs=50, steps_per_epoch=1)  # after a warm-up, to the end
    assert explain(warm, 0.1, 50).warnings == []


def test_restarts_warn_like_a_cosine_and_linear_to_zero_says_where_training_stops():
    restarts = explain(CosineWarmRestarts(50), 0.1, 200).warnings
    assert len(restarts) == 1 and "rises again" in restarts[0] and "in 4 stretches" in restarts[0]
    assert explain(CosineWarmRestarts(10, 1, 0.2), 0.1, 40).warnings[0].startswith("eta_min 0.2 is above the base lr")
    to_zero = explain(Linear(1.0, 0.0, 20), 0.1, 40).warnings
    assert to_zero == ["the learning rate reaches 0 at epoch 20 (the 21st epoch): the rest of the run does not train"]


@pytest.mark.parametrize("t_max", [2.5, 7.25, 100.5, 4096.75, 5000.5])
def test_a_cosine_of_fractional_half_period_is_explained_step_by_step(t_max):
    """The periodic shortcut and the proved-monotone stretches assume half periods of whole steps; a fractional
    t_max (torch's float T_max) has none, so its plan is the one every step gives."""
    from steplr.schedules.kinds import Cosine

    _, intervals, decays = per_step(Cosine(t_max), 0.1, 40_000, 1)
    plan = explain(Cosine(t_max), 0.1, 40_000)
    assert [(i.first_step, i.last_step, i.lr) for i in plan.intervals] == intervals
    assert plan.decays == decays
