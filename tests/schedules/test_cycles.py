"""The closed forms of torch's LinearLR, ConstantLR, CosineAnnealingWarmRestarts, OneCycleLR and CyclicLR: properties
from their definitions, scalar and array paths alike, parameters round-tripped, bad arguments named."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import steplr.schedules.cycles
from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules.cycles import CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.kinds import ConstantFactor, Linear, LinearWarmup, schedule_from_params

base_lrs = st.floats(min_value=1e-6, max_value=10.0)
factors = st.floats(min_value=0.0, max_value=1.0)


def test_the_docstring_examples_run():
    result = doctest.testmod(steplr.schedules.cycles, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


# -- Linear and LinearWarmup: one formula ---------------------------------------------------------------------


@given(base=base_lrs, start=factors, warm=st.integers(1, 500), t=st.integers(0, 1000))
def test_linear_warmup_is_linear_to_one_with_the_rates_it_always_had(base, start, warm, t):
    done = min(t, warm)
    before = base * float((start * (warm - done) + done) / warm)  # the warm-up's formula before Linear existed
    assert LinearWarmup(warm, start).lr(base, t) == Linear(start, 1.0, warm).lr(base, t) == before
    assert schedule_from_params(LinearWarmup(warm, start).params()) == LinearWarmup(warm, start)
    assert LinearWarmup(warm, start).params()["type"] == "LinearWarmup"  # saved configs keep their names


@given(base=base_lrs, start=factors, end=factors, total=st.integers(1, 300))
def test_linear_moves_between_its_factors_then_holds(base, start, end, total):
    schedule = Linear(start, end, total)
    rates = schedule.lr(base, np.arange(total + 20))
    assert rates.tolist() == [schedule.lr(base, t) for t in range(total + 20)]
    assert rates[0] == pytest.approx(base * start, rel=1e-15, abs=1e-300)
    assert (rates[total:] == rates[total]).all() and rates[total] == pytest.approx(base * end, rel=1e-15, abs=1e-300)
    steps = np.diff(rates[: total + 1])
    assert (steps <= 1e-15 * base).all() if end <= start else (steps >= -1e-15 * base).all()
    assert len({schedule.segment(t) for t in range(total, total + 20)}) == 1


@given(base=base_lrs, factor=factors, total=st.integers(1, 300))
def test_constant_factor_is_the_factor_until_total_then_exactly_the_base(base, factor, total):
    schedule = ConstantFactor(factor, total)
    rates = schedule.lr(base, np.arange(total + 5))
    assert rates.tolist() == [schedule.lr(base, t) for t in range(total + 5)]
    assert (rates[:total] == base * factor).all() and (rates[total:] == base).all()
    assert schedule.segment(0) == schedule.segment(total - 1) != schedule.segment(total)


# -- CosineWarmRestarts -------------------------------------------------------------------------------------------


def cycle_starts(t_0: int, t_mult: int, upto: int) -> list[int]:
    starts, length = [0], t_0
    while starts[-1] + length <= upto:
        starts.append(starts[-1] + length)
        length *= t_mult
    return starts


@given(base=base_lrs, t_0=st.integers(1, 40), t_mult=st.integers(1, 4), eta=st.floats(0.0, 1e-3))
def test_each_restart_is_exactly_the_base_rate_and_the_cycles_stay_within_bounds(base, t_0, t_mult, eta):
    schedule = CosineWarmRestarts(t_0, t_mult, eta)
    rates = schedule.lr(base, np.arange(2000))
    assert rates.tolist() == [schedule.lr(base, t) for t in range(2000)]
    for start in cycle_starts(t_0, t_mult, 1999):
        assert rates[start] == base
    low, high = min(base, eta), max(base, eta)
    assert ((rates >= low * (1 - 1e-15)) & (rates <= high * (1 + 1e-15))).all()
    if t_mult == 1:
        assert (rates[t_0:] == rates[:-t_0]).all()  # equal cycles repeat exactly


@settings(deadline=None)
@given(t_0=st.integers(1, 1000), t_mult=st.integers(2, 10), k=st.integers(1, 40))
def test_far_cycle_boundaries_are_found_in_integers(t_0, t_mult, k):
    start = t_0 * (t_mult**k - 1) // (t_mult - 1)  # the k-th restart
    if start > 2**62:
        return
    schedule = CosineWarmRestarts(t_0, t_mult)
    assert schedule.cycle(start) == (0, t_0 * t_mult**k)
    assert schedule.cycle(start - 1) == (t_0 * t_mult ** (k - 1) - 1, t_0 * t_mult ** (k - 1))
    assert schedule.lr(1.0, start) == 1.0
    assert schedule.lr(1.0, start - 1) < 1.0 or t_0 * t_mult ** (k - 1) == 1  # a cycle of one step is all start
    steps = np.array([start - 1, start, start + 1])
    assert schedule.lr(1.0, steps).tolist() == [schedule.lr(1.0, int(s)) for s in steps]


def test_restarts_broadcast_over_arrays_of_settings():
    schedule = CosineWarmRestarts(np.array([[2], [3]]), np.array([[1], [2]]), 0.0)
    table = schedule.lr(1.0, np.arange(10))
    assert table[0].tolist() == [CosineWarmRestarts(2).lr(1.0, t) for t in range(10)]
    assert table[1].tolist() == [CosineWarmRestarts(3, 2).lr(1.0, t) for t in range(10)]


# -- OneCycle -----------------------------------------------------------------------------------------------------


one_cycles = (
    st.tuples(st.integers(2, 400), st.floats(0.0, 1.0).filter(lambda p: p not in (0.5, 1.0)))
    .filter(
        lambda tp: tp[1] * tp[0] != 1.0  # a zero-step rise is refused (tested on its own)
    )
    .flatmap(
        lambda tp: st.builds(
            OneCycle,
            total_steps=st.just(tp[0]),
            pct_start=st.just(tp[1]),
            anneal_strategy=st.sampled_from(["cos", "linear"]),
            div_factor=st.floats(1.0, 100.0),
            final_div_factor=st.floats(1.0, 1e4),
            three_phase=st.booleans(),
        )
    )
)


@given(schedule=one_cycles, base=base_lrs)
def test_one_cycle_rises_from_the_start_to_the_peak_and_ends_at_the_floor_where_it_stays(schedule, base):
    if schedule.pct_start * schedule.total_steps == 1.0:
        return
    total = schedule.total_steps
    rates = schedule.lr(base, np.arange(total + 10))
    assert rates.tolist() == [schedule.lr(base, t) for t in range(total + 10)]
    start = base / schedule.div_factor
    floor = start / schedule.final_div_factor
    assert (rates[total - 1 :] == rates[total - 1]).all()  # held after total_steps
    ends = [schedule.pct_start * total - 1] + ([2 * schedule.pct_start * total - 2] if schedule.three_phase else [])
    if total - 1 > ends[-1]:  # the last phase has begun (torch's ends can leave it out of the cycle)
        assert rates[total - 1] == floor
    assert ((rates >= floor * (1 - 1e-15)) & (rates <= base * (1 + 1e-15))).all()
    rise_end = schedule.pct_start * total - 1
    if rise_end >= 0:
        assert rates[0] == start
        if float(rise_end).is_integer():
            assert rates[int(rise_end)] == base  # the peak on the step torch puts it
        peak = math.floor(rise_end)
        assert (np.diff(rates[: peak + 1]) >= -1e-15 * base).all()


@given(total=st.integers(3, 300), pct=st.floats(0.05, 0.45), base=base_lrs)
def test_the_three_phase_cycle_comes_back_to_its_start_before_the_floor(total, pct, base):
    if pct * total <= 1.0:
        return
    schedule = OneCycle(total, pct, three_phase=True)
    back = 2 * pct * total - 2
    rates = schedule.lr(base, np.arange(total))
    if float(back).is_integer() and back < total - 1:
        assert rates[int(back)] == pytest.approx(base / 25.0, rel=1e-15)
    assert (np.diff(rates[math.ceil(back) :]) <= 1e-15 * base).all()  # the last phase only falls


def test_one_cycle_refuses_a_rise_of_zero_steps_and_checks_each_argument():
    with pytest.raises(SteplrValueError, match=r"pct_start \* total_steps must not be 1"):
        OneCycle(10, 0.1)
    with pytest.raises(SteplrValueError, match=r"pct_start \* total_steps must not be 1"):
        OneCycle("2ep", 0.1).resolve(steps_per_epoch=5)
    for args, kwargs, error, message in [
        ((0,), {}, SteplrValueError, "total_steps must be a positive integer, got 0"),
        ((10, 1.5), {}, SteplrValueError, "pct_start must be a number in [0, 1], got 1.5"),
        ((10,), {"anneal_strategy": "cosine"}, SteplrValueError, "anneal_strategy must be one of 'cos', 'linear'"),
        ((10,), {"div_factor": 0}, SteplrValueError, "div_factor must be a finite number > 0, got 0"),
        ((10,), {"final_div_factor": -1.0}, SteplrValueError, "final_div_factor must be a finite number > 0"),
        ((10,), {"three_phase": "yes"}, SteplrTypeError, "three_phase must be True or False, got 'yes'"),
    ]:
        with pytest.raises(error) as info:
            OneCycle(*args, **kwargs)
        assert message in str(info.value)


# -- Cyclic -------------------------------------------------------------------------------------------------------


cyclics = st.builds(
    Cyclic,
    max_lr=st.floats(0.0, 10.0),
    step_size_up=st.integers(1, 30),
    step_size_down=st.none() | st.integers(1, 30),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.9, 1.0),
)


@given(schedule=cyclics, base=base_lrs)
def test_cyclic_stays_between_its_ends_and_repeats_by_cycles(schedule, base):
    up = schedule.step_size_up
    length = up + (up if schedule.step_size_down is None else schedule.step_size_down)
    rates = schedule.lr(base, np.arange(4 * length))
    assert rates.tolist() == [schedule.lr(base, t) for t in range(4 * length)]
    low, high = min(base, schedule.max_lr), max(base, schedule.max_lr)
    slack = 4 * math.ulp(high)  # as torch's, the height is added to base_lr: max_lr far below it rounds at base_lr
    assert ((rates >= low - slack) & (rates <= high + slack)).all()
    assert rates[0] == base and (rates[::length] == base).all()
    if schedule.mode == "triangular":
        assert (rates[length:] == rates[:-length]).all()
        assert rates[up] == schedule.max_lr or base + (schedule.max_lr - base) == rates[up]
    elif schedule.mode == "triangular2":  # each cycle half as high as the one before
        heights = rates - base
        assert heights[length : 2 * length] == pytest.approx(heights[:length] / 2, rel=1e-12, abs=1e-15 * high)


def test_cyclic_checks_its_arguments_and_round_trips():
    for args, kwargs, error, message in [
        ((-1.0,), {}, SteplrValueError, "max_lr must be a finite number >= 0, got -1.0"),
        ((1.0, 0), {}, SteplrValueError, "step_size_up must be a positive integer, got 0"),
        ((1.0, 5, 2.5), {}, SteplrTypeError, "step_size_down must be a positive integer, got 2.5"),
        ((1.0,), {"mode": "sawtooth"}, SteplrValueError, "mode must be one of 'triangular', 'triangular2'"),
        ((1.0,), {"gamma": 0.0}, SteplrValueError, "gamma must be a finite number > 0, got 0.0"),
    ]:
        with pytest.raises(error) as info:
            Cyclic(*args, **kwargs)
        assert message in str(info.value)
    for schedule in (Cyclic(0.5, "2ep", None, "exp_range", 0.99), Cyclic(0.5, 3, "1ep", "triangular2")):
        assert schedule_from_params(json.loads(json.dumps(schedule.params()))) == schedule
    assert Cyclic(0.5, "2ep", "1ep").resolve(steps_per_epoch=3) == Cyclic(0.5, 6, 3)


def test_restarts_linear_and_constant_factor_check_and_round_trip():
    for make, error, message in [
        (lambda: CosineWarmRestarts(0), SteplrValueError, "t_0 must be a positive integer, got 0"),
        (lambda: CosineWarmRestarts(5, 0), SteplrValueError, "t_mult must be an integer >= 1, got 0"),
        (lambda: CosineWarmRestarts(5, 1.5), SteplrTypeError, "t_mult must be an integer >= 1, got 1.5"),
        (lambda: CosineWarmRestarts(5, 1, -0.1), SteplrValueError, "eta_min must be a finite number >= 0, got -0.1"),
        (lambda: Linear(1.5), SteplrValueError, "start_factor must be a number in [0, 1], got 1.5"),
        (lambda: Linear(0.5, -1), SteplrValueError, "end_factor must be a number in [0, 1], got -1"),
        (lambda: Linear(0.5, 1.0, "x"), SteplrValueError, "total_iters must be a positive integer or a duration"),
        (lambda: ConstantFactor(2.0), SteplrValueError, "factor must be a number in [0, 1], got 2.0"),
        (lambda: ConstantFactor(0.5, 0), SteplrValueError, "total_iters must be a positive integer, got 0"),
        (lambda: LinearWarmup(0), SteplrValueError, "warmup_steps must be a positive integer, got 0"),
    ]:
        with pytest.raises(error) as info:
            make()
        assert message in str(info.value)
    for schedule in (
        CosineWarmRestarts("3ep", 2, 0.001),
        Linear(0.2, 0.9, "4ep"),
        ConstantFactor(0.25, "2ep"),
        OneCycle("5ep", 0.25, "linear", 10.0, 100.0, True),
    ):
        assert schedule_from_params(json.loads(json.dumps(schedule.params()))) == schedule
        resolved = schedule.resolve(steps_per_epoch=4)
        assert resolved.lr(0.1, 3) == schedule_from_params(resolved.params()).lr(0.1, 3)
    with pytest.raises(SteplrValueError, match="is in epochs: pass steps_per_epoch"):
        CosineWarmRestarts("3ep").lr(0.1, 1)
