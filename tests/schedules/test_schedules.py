"""The schedule math: properties against the definitions, exactness against fractions, validation messages."""

from __future__ import annotations

import bisect
import math
import subprocess
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steplr.schedules._exact import scaled_power
from steplr.schedules.kinds import (
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    MultiStep,
    PolynomialDecay,
    Sequence,
    StepDecay,
    join,
    schedule_from_params,
)
from steplr.schedules.spec import ScheduleSpec

base_lrs = st.floats(min_value=1e-8, max_value=10.0, allow_nan=False, allow_infinity=False)
gammas = st.floats(min_value=1e-3, max_value=1.0, exclude_min=False, allow_nan=False)
any_gammas = st.floats(min_value=1e-3, max_value=4.0, allow_nan=False)
step_sizes = st.integers(min_value=1, max_value=50)
steps = st.integers(min_value=0, max_value=3000)


def correctly_rounded(base: float, gamma: float, k: int) -> float:
    """float(base) * float(gamma) ** k computed exactly, then rounded once (Fraction -> float rounds to nearest)."""
    try:
        return float(Fraction(base) * Fraction(gamma) ** k)
    except OverflowError:
        return math.inf


def ulps_apart(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / math.ulp(b) if b else abs(a - b) / math.ulp(0.0)


# -- StepDecay ------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(base=base_lrs, gamma=any_gammas, step_size=step_sizes, t=steps)
def test_step_decay_is_within_one_ulp_of_the_exact_value(base, gamma, step_size, t):
    expected = correctly_rounded(base, gamma, t // step_size)
    assert ulps_apart(StepDecay(step_size, gamma).lr(base, t), expected) <= 1


@settings(max_examples=100, deadline=None)
@given(base=base_lrs, gamma=any_gammas, step_size=step_sizes)
def test_step_decay_counts_how_often_the_rate_was_exactly_rounded(base, gamma, step_size):
    # Stronger than the 1-ulp promise: the value is the correctly rounded one at every decay count tried.
    schedule = StepDecay(step_size, gamma)
    for k in range(0, 40):
        assert schedule.lr(base, k * step_size) == correctly_rounded(base, gamma, k)


@given(base=base_lrs, gamma=any_gammas, step_size=step_sizes)
def test_step_decay_starts_at_base_and_is_constant_within_a_block(base, gamma, step_size):
    schedule = StepDecay(step_size, gamma)
    assert schedule.lr(base, 0) == base
    block = [schedule.lr(base, t) for t in range(2 * step_size, 3 * step_size)]
    assert len(set(block)) == 1


@given(base=base_lrs, gamma=any_gammas, step_size=step_sizes, k=st.integers(0, 200))
def test_step_decay_multiplies_by_gamma_across_a_boundary(base, gamma, step_size, k):
    schedule = StepDecay(step_size, gamma)
    before, after = schedule.lr(base, (k + 1) * step_size - 1), schedule.lr(base, (k + 1) * step_size)
    if after > 1e-300 and before > 1e-300:
        assert after / before == pytest.approx(gamma, rel=1e-15)


@given(base=base_lrs, gamma=gammas, step_size=step_sizes)
def test_step_decay_never_increases_when_gamma_at_most_one(base, gamma, step_size):
    values = StepDecay(step_size, gamma).lr(base, np.arange(0, 400))
    assert np.all(np.diff(values) <= 0)


def test_step_decay_reaches_exactly_zero_on_underflow():
    # 0.7 ** k underflows near k = 2090; a running product would stall at the smallest subnormal instead.
    schedule = StepDecay(1, 0.7)
    assert schedule.lr(1.0, 2080) > 0.0
    assert schedule.lr(1.0, 2200) == 0.0
    assert StepDecay(3, 0.1).lr(0.1, 3 * 400) == 0.0
    assert StepDecay(1, 0.5).lr(1.0, 1074) == 5e-324


def test_step_decay_grows_to_infinity_instead_of_failing():
    assert StepDecay(1, 2.0).lr(1.0, 1100) == math.inf


def test_reference_worked_example():
    schedule = StepDecay(10, 0.5)
    assert [schedule.lr(0.1, t) for t in (0, 9, 10, 19, 20, 29, 30, 39)] == [
        0.1,
        0.1,
        0.05,
        0.05,
        0.025,
        0.025,
        0.0125,
        0.0125,
    ]


@settings(max_examples=50, deadline=None)
@given(base=base_lrs, gamma=any_gammas, step_size=step_sizes)
def test_arrays_of_steps_give_the_scalar_values(base, gamma, step_size):
    schedule = StepDecay(step_size, gamma)
    ts = np.arange(0, 500, dtype=np.int64)
    table = schedule.lr(base, ts)
    assert table.dtype == np.float64
    assert table.tolist() == [schedule.lr(base, int(t)) for t in ts]


def test_parameter_arrays_broadcast_to_a_configs_by_steps_table():
    sizes = np.array([1, 2, 5])[:, None]
    gamma = np.array([0.5, 0.1, 0.9])[:, None]
    ts = np.arange(12)
    table = StepDecay(step_size=sizes, gamma=gamma).lr(0.1, ts)
    assert table.shape == (3, 12)
    for row, (s, g) in enumerate(zip(sizes.ravel(), gamma.ravel())):
        assert table[row].tolist() == [StepDecay(int(s), float(g)).lr(0.1, int(t)) for t in ts]
    grid = StepDecay(step_size=sizes, gamma=np.array([0.5, 0.1])).lr(np.array([1.0, 0.1])[:, None, None], 7)
    assert grid.shape == (2, 3, 2)
    assert grid[1, 2, 0] == StepDecay(5, 0.5).lr(0.1, 7)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(base_lrs, any_gammas, step_sizes), min_size=1, max_size=12), repeat=st.booleans())
def test_tables_of_many_configs_give_the_scalar_values(rows, repeat):
    """Configs in rows (repeated values included, as sweeps make them), steps in columns: every cell as one call."""
    if repeat:
        rows = rows + rows[::-1]
    bases, gammas, sizes = (np.array(column)[:, None] for column in zip(*rows))
    ts = np.arange(0, 60, dtype=np.int64)
    table = StepDecay(sizes, gammas).lr(bases, ts[None, :])
    assert table.shape == (len(rows), ts.size)
    for i, (base, gamma, size) in enumerate(rows):
        assert table[i].tolist() == [StepDecay(size, gamma).lr(base, int(t)) for t in ts]


# -- the other schedules -------------------------------------------------------------------------------------


@given(
    base=base_lrs,
    gamma=gammas,
    milestones=st.lists(st.integers(1, 300), min_size=1, max_size=6, unique=True).map(sorted),
    t=st.integers(0, 400),
)
def test_multistep_matches_its_definition(base, gamma, milestones, t):
    k = bisect.bisect_right(milestones, t)
    value = MultiStep(milestones, gamma).lr(base, t)
    assert ulps_apart(value, correctly_rounded(base, gamma, k)) <= 1
    assert MultiStep(milestones, gamma).lr(base, np.array([t]))[0] == value


@settings(max_examples=100, deadline=None)
@given(base=base_lrs, gamma=any_gammas, t=steps)
def test_exponential_is_exact(base, gamma, t):
    assert ulps_apart(Exponential(gamma).lr(base, t), correctly_rounded(base, gamma, t)) <= 1


@settings(max_examples=300)
@given(base=base_lrs, t_max=st.integers(1, 5000), eta_min=st.sampled_from([0.0, 1e-9, 1e-4]), t=st.integers(0, 10**7))
def test_cosine_is_within_eight_ulps_of_the_exact_value(base, t_max, eta_min, t):
    mpmath.mp.prec = 160
    exact = eta_min + (mpmath.mpf(base) - eta_min) * (1 + mpmath.cos(mpmath.pi * t / t_max)) / 2
    value = Cosine(t_max, eta_min).lr(base, t)
    assert abs(value - exact) <= 8 * math.ulp(float(exact))
    assert Cosine(t_max, eta_min).lr(base, 0) == base
    assert Cosine(t_max, eta_min).lr(base, t_max) == eta_min
    assert Cosine(t_max, eta_min).lr(base, np.array([t]))[0] == value


@settings(max_examples=30, deadline=None)
@given(base=base_lrs, t_max=st.integers(1, 3000), eta_min=st.sampled_from([0.0, 1e-6]))
def test_cosine_arrays_give_the_scalar_values(base, t_max, eta_min):
    schedule = Cosine(t_max, eta_min)
    ts = np.arange(0, 4 * t_max + 3, max(1, t_max // 50), dtype=np.int64)
    assert schedule.lr(base, ts).tolist() == [schedule.lr(base, int(t)) for t in ts]


def test_cosine_hits_its_landmarks_exactly():
    assert [Cosine(10).lr(1.0, t) for t in (0, 5, 10, 15, 20, 10**6)] == [1.0, 0.5, 0.0, 0.5, 1.0, 1.0]


@given(base=base_lrs, warmup=st.integers(1, 100), start=st.floats(0, 1), t=st.integers(0, 300))
def test_linear_warmup_ramps_then_holds(base, warmup, start, t):
    value = LinearWarmup(warmup, start).lr(base, t)
    expected = base * (start + (1 - start) * min(t, warmup) / warmup)
    assert value == pytest.approx(expected, rel=1e-15)
    assert LinearWarmup(warmup, start).lr(base, warmup + t) == pytest.approx(base, rel=1e-15)


@given(base=base_lrs, boundary=st.integers(1, 50), step_size=step_sizes, gamma=gammas, t=st.integers(0, 300))
def test_sequence_hands_each_schedule_its_local_step(base, boundary, step_size, gamma, t):
    warm = LinearWarmup(boundary, 0.1)
    decay = StepDecay(step_size, gamma)
    joined = join([warm, decay], [boundary])
    expected = warm.lr(base, t) if t < boundary else decay.lr(base, t - boundary)
    assert joined.lr(base, t) == expected
    assert joined.lr(base, np.array([t]))[0] == expected


def test_constant_is_constant():
    assert Constant().lr(0.3, np.arange(5)).tolist() == [0.3] * 5


def test_epoch_durations_resolve_with_steps_per_epoch():
    schedule = StepDecay("5ep", 0.5).resolve(steps_per_epoch=23)
    assert schedule.params()["step_size"] == 115
    assert StepDecay("230it", 0.5).params()["step_size"] == 230
    with pytest.raises(ValueError, match=r"step_size='5ep' is in epochs: pass steps_per_epoch"):
        StepDecay("5ep", 0.5).lr(0.1, 3)
    resolved = join([LinearWarmup("1ep"), MultiStep(["2ep", "4ep"], 0.1)], ["1ep"]).resolve(10)
    assert resolved.params()["boundaries"] == [10]
    assert resolved.params()["schedules"][1]["milestones"] == [20, 40]


@pytest.mark.parametrize(
    "schedule",
    [
        StepDecay(3, 0.5),
        MultiStep([2, 7], 0.3),
        Exponential(0.9),
        Cosine(10, 1e-4),
        Constant(),
        LinearWarmup(5, 0.2),
        Sequence([LinearWarmup(2), StepDecay(4, 0.5)], [2]),
    ],
)
def test_params_round_trip(schedule):
    rebuilt = schedule_from_params(schedule.params())
    assert rebuilt == schedule
    ts = np.arange(30)
    assert rebuilt.lr(0.1, ts).tolist() == schedule.lr(0.1, ts).tolist()


# -- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        (0, ValueError, "0"),
        (-3, ValueError, "-3"),
        (2.5, TypeError, "2.5"),
        (True, TypeError, "True"),
        (float("nan"), TypeError, "nan"),
        ("abc", ValueError, "'abc'"),
        (None, TypeError, "None"),
        ("0ep", ValueError, "'0ep'"),
        (np.array([1, 0]), ValueError, "0"),
    ],
)
def test_bad_step_size_is_refused_with_its_value(value, error, shown):
    with pytest.raises(error, match="step_size") as info:
        StepDecay(value, 0.5)
    assert shown in str(info.value)


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        (0, ValueError, "0"),
        (-1, ValueError, "-1"),
        (float("nan"), ValueError, "nan"),
        (float("inf"), ValueError, "inf"),
        (True, TypeError, "True"),
        ("0.5", TypeError, "'0.5'"),
        (np.array([0.5, -0.1]), ValueError, "-0.1"),
    ],
)
def test_bad_gamma_is_refused_with_its_value(value, error, shown):
    with pytest.raises(error, match="gamma must be a finite number > 0") as info:
        StepDecay(5, value)
    assert f"got {shown}" in str(info.value)


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        (-1, ValueError, "-1.0"),
        (-1e-300, ValueError, "-1e-300"),
        (float("nan"), ValueError, "nan"),
        (float("inf"), ValueError, "inf"),
        (True, TypeError, "True"),
        ("0", TypeError, "'0'"),
        (np.array([0.0, -2.0]), ValueError, "-2.0 in"),
    ],
)
def test_bad_eta_min_is_refused_with_its_value(value, error, shown):
    with pytest.raises(error, match="eta_min must be a finite number >= 0") as info:
        Cosine(10, value)
    assert f"got {shown}" in str(info.value)


def test_a_negative_eta_min_is_refused_by_every_way_of_building_a_cosine():
    message = "eta_min must be a finite number >= 0, got -0.5"
    with pytest.raises(ValueError, match=message):
        ScheduleSpec("cosine", {"t_max": 10, "eta_min": -0.5})
    with pytest.raises(ValueError, match=message):
        schedule_from_params({"type": "Cosine", "t_max": 10, "eta_min": -0.5})


@given(base=base_lrs, t_max=st.integers(1, 500), eta_min=st.floats(0.0, 10.0), t=st.integers(0, 10**6))
def test_an_accepted_eta_min_never_gives_a_negative_rate(base, t_max, eta_min, t):
    assert Cosine(t_max, eta_min).lr(base, t) >= 0.0


@pytest.mark.parametrize("milestones", [[5, 3], [2, 2], [1, 4, 4]])
def test_milestones_must_increase(milestones):
    with pytest.raises(ValueError, match=r"milestones must be strictly increasing, got \[") as info:
        MultiStep(milestones)
    assert str(milestones) in str(info.value)


@settings(deadline=None)
@given(
    base=base_lrs,
    gamma=st.floats(0.05, 0.999),
    milestones=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    t=st.integers(0, 400),
)
def test_milestones_count_like_torch(base, gamma, milestones, t):
    # any order; a milestone listed k times decays k times; 0 decays from the first step
    k = sum(1 for m in milestones if m <= t)
    schedule = MultiStep(milestones, gamma, counted=True)
    assert schedule.lr(base, t) == pytest.approx(float(mpmath.mpf(base) * mpmath.mpf(gamma) ** k), rel=1e-13)
    assert schedule.lr(base, np.array([t]))[0] == schedule.lr(base, t)
    again = schedule_from_params(schedule.params())
    assert again.params() == schedule.params() and again.lr(base, t) == schedule.lr(base, t)


@settings(deadline=None)
@given(base=base_lrs, t_max=st.floats(0.5, 1000.0), eta_min=st.sampled_from([0.0, 1e-9, 1e-4]), t=st.integers(0, 10**7))
def test_cosine_takes_a_float_t_max(base, t_max, eta_min, t):
    mpmath.mp.prec = 120
    exact = eta_min + (mpmath.mpf(base) - eta_min) * (1 + mpmath.cos(mpmath.pi * t / mpmath.mpf(t_max))) / 2
    value = Cosine(t_max, eta_min).lr(base, t)
    if exact >= 2.2250738585072014e-308:
        assert abs(value - exact) <= 1e-12 * exact
    assert Cosine(t_max, eta_min).lr(base, np.array([t]))[0] == value
    assert schedule_from_params(Cosine(t_max, eta_min).params()).lr(base, t) == value


@pytest.mark.parametrize("t_max", [0.0, -2.5, math.nan, math.inf])
def test_cosine_refuses_a_t_max_torch_cannot_use(t_max):
    with pytest.raises(ValueError, match="t_max must be a positive"):
        Cosine(t_max)


def test_other_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="start_factor must be a number in"):
        LinearWarmup(5, 1.5)
    with pytest.raises(ValueError, match="t must be a non-negative integer step, got -1"):
        StepDecay(5).lr(0.1, -1)
    with pytest.raises(TypeError, match="t must be an integer step"):
        StepDecay(5).lr(0.1, 2.5)
    with pytest.raises(ValueError, match="boundaries must have one entry fewer"):
        Sequence([Constant(), Constant()], [])
    with pytest.raises(ValueError, match="unknown schedule type 'Nope'"):
        schedule_from_params({"type": "Nope"})


def test_schedules_import_no_torch():
    code = (
        "import sys, steplr, steplr.schedules.kinds, steplr.schedules.explain, steplr.cli.main; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- edges found in review -------------------------------------------------------------------------------------


def test_huge_and_wrapped_steps_are_refused_not_looped_on():
    with pytest.raises(ValueError, match="t must be at most 2\\*\\*62, got 9223372036854775808"):
        StepDecay(2).lr(0.1, np.array([2**63], dtype=np.uint64))
    with pytest.raises(ValueError, match="t must be at most 2\\*\\*62"):
        LinearWarmup(10).lr(1.0, 10**30)
    with pytest.raises(ValueError, match="step_size must be at most 2\\*\\*62, got 100000000000000000000"):
        StepDecay(10**20, 0.5)
    with pytest.raises(ValueError, match="milestones\\[0\\] must be at most 2\\*\\*62"):
        MultiStep([10**30])
    with pytest.raises(ValueError, match="k must be a non-negative integer, got -1"):
        scaled_power(0.1, 0.5, -1)


def test_rounding_up_past_the_largest_float_gives_inf():
    assert StepDecay(1, 4 / 3).lr(1.348269851146737e308, 1) == math.inf
    assert correctly_rounded(1.348269851146737e308, 4 / 3, 1) == math.inf


def test_array_path_keeps_huge_exponents_exact():
    gamma = 1 - 2**-53
    t = 2**60 + 100
    assert Exponential(np.array([gamma, 0.5])).lr(1.0, t)[0] == Exponential(gamma).lr(1.0, t)


def test_malformed_saved_parameters_are_a_value_error():
    with pytest.raises(ValueError, match="bad parameters for Sequence"):
        schedule_from_params({"type": "Sequence", "schedules": 5, "boundaries": []})
    with pytest.raises(ValueError, match="bad parameters for StepDecay"):
        schedule_from_params({"type": "StepDecay", "step_size": 3, "decay_rate": 0.5})


@settings(deadline=None)
@given(lrs=st.lists(st.floats(1e-4, 10.0), min_size=1, max_size=3), total=st.integers(1, 60), power=st.floats(0.1, 5.0))
def test_polynomial_decay_is_torchs_polynomial_lr(lrs, total, power):
    """Bit for bit torch's closed form, and within rounding of the rates its recursive steps set."""
    import torch

    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    optimizer = torch.optim.SGD(groups)
    theirs = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=power)
    ours = PolynomialDecay(total, power)
    for t in range(total + 3):
        for lr, group, closed in zip(lrs, optimizer.param_groups, theirs._get_closed_form_lr()):
            assert ours.lr(lr, t) == closed
            assert ours.lr(lr, t) == pytest.approx(group["lr"], rel=1e-9, abs=1e-300)
        optimizer.step()
        theirs.step()


@given(base=base_lrs, total=st.integers(1, 200), power=st.floats(0.1, 5.0), end_lr=st.floats(0.0, 0.1))
def test_polynomial_decay_reaches_end_lr_at_total_and_stays(base, total, power, end_lr):
    schedule = PolynomialDecay(total, power, end_lr)
    t = np.arange(total + 5)
    rates = schedule.lr(base, t)
    assert rates.tolist() == [schedule.lr(base, int(s)) for s in t]  # one formula for arrays and scalars
    assert (rates[total:] == end_lr).all()
    mpmath.mp.prec = 200
    for step, rate in zip(range(total + 1), rates.tolist()):  # the formula evaluated exactly, then compared
        left = 1 - mpmath.mpf(min(step, total)) / total
        exact = (mpmath.mpf(base) - mpmath.mpf(end_lr)) * left ** mpmath.mpf(power) + mpmath.mpf(end_lr)
        # 1 - t/total carries up to one rounding of 1 (2**-53 absolute), which the power scales by its derivative
        # (large near the end when power < 1); the rest are a few roundings of the result.
        slope = abs(base - end_lr) * power * float(left) ** (power - 1) if left > 0 else 0.0
        assert abs(rate - float(exact)) <= 4 * np.spacing(max(base, end_lr)) + slope * 2.0**-52, step
    falling = np.diff(rates[: total + 1])
    assert (falling <= 0).all() if base >= end_lr else (falling >= 0).all()


def test_polynomial_decay_checks_its_arguments_and_resolves_epochs():
    assert PolynomialDecay("2ep", 2.0).resolve(steps_per_epoch=3) == PolynomialDecay(6, 2.0)
    assert schedule_from_params(PolynomialDecay(6, 2.0, 0.01).params()) == PolynomialDecay(6, 2.0, 0.01)
    for args, message in [
        ((0,), "total must be a positive integer, got 0"),
        ((5, 0.0), "power must be a finite number > 0, got 0.0"),
        ((5, 1.0, -0.1), "end_lr must be a finite number >= 0, got -0.1"),
        ((5, 1.0, math.inf), "end_lr must be a finite number, got inf"),
    ]:
        with pytest.raises(ValueError) as info:
            PolynomialDecay(*args)
        assert message in str(info.value)
