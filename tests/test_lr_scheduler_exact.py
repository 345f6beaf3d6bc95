"""The drop-ins' fast paths give the same floats as the schedule's closed form, and that closed form's power
kernel is correctly rounded (compared against exact rational arithmetic)."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import steplr
from steplr.lr_scheduler._powers import PowerBlocks, powers_fit
from steplr.schedules._exact import PowerSeries, scaled_power


def exact(base: float, gamma: float, k: int) -> float:
    try:
        return float(Fraction(base) * Fraction(gamma) ** k)  # Fraction -> float rounds correctly
    except OverflowError:
        return math.inf


@settings(max_examples=300, deadline=None)
@given(
    base=st.floats(1e-300, 1e300),
    gamma=st.floats(1e-3, 1.5).filter(lambda g: g != 1.0),
    k=st.integers(0, 400),
)
def test_scaled_power_is_correctly_rounded(base, gamma, k):
    assert scaled_power(base, gamma, k) == exact(base, gamma, k)


@settings(max_examples=60, deadline=None)
@given(
    bases=st.lists(st.floats(1e-8, 10.0), min_size=1, max_size=4),
    gamma=st.floats(0.5, 0.99999),
    ks=st.lists(st.integers(0, 3000), min_size=1, max_size=6),
)
def test_power_series_gives_scaled_power_whatever_the_order_of_k(bases, gamma, ks):
    series = PowerSeries(gamma, bases)
    for start in ks:
        for k in range(start, start + 40):  # a jump, then one step at a time
            assert series.values(k) == [scaled_power(b, gamma, k) for b in bases]


def test_power_series_near_underflow_and_overflow():
    series = PowerSeries(0.5, [1.0, 3e-308])
    for k in range(0, 1100):
        assert series.values(k) == [scaled_power(1.0, 0.5, k), scaled_power(3e-308, 0.5, k)]
    assert series.values(1075) == [0.0, 0.0]
    rising = PowerSeries(2.0, [1.5])
    assert rising.values(1023) == [math.ldexp(1.5, 1023)] and rising.values(1024) == [math.inf]


@pytest.mark.parametrize(
    ("build", "steps"),
    [
        (lambda o: steplr.ExponentialLR(o, 0.9999), 100_000),
        (lambda o: steplr.StepLR(o, 1, 0.9999), 100_000),
        (lambda o: steplr.StepLR(o, 7, 0.99), 20_000),
        (lambda o: steplr.MultiStepLR(o, [*range(5, 1000, 5), 5000, 5000, 19_999], 0.999), 20_000),
        (lambda o: steplr.CosineAnnealingLR(o, 10_000, 1e-5), 20_000),
        (lambda o: steplr.CosineAnnealingLR(o, 333.5), 20_000),
    ],
)
def test_every_step_of_a_long_run_is_the_closed_form(build, steps):
    bases = [0.1, 0.1, 0.37]
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": b} for b in bases])
    sched = build(opt)
    opt.step()
    schedule = sched.schedule
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(steps):
            assert [g["lr"] for g in opt.param_groups] == [schedule.lr(b, t) for b in bases], t
            sched.step()


def _cyclic_momentum(t, up, down, mode, gamma, low, high):
    """CyclicLR's momentum of step t from its definition: max_momentum - (max - base) * h * s."""
    whole = up + down
    n = t % whole
    climb = n / up if n <= up else (whole - n) / (whole - up)
    if mode == "triangular":
        return high + (low - high) * climb
    scale = math.ldexp(1.0, -(t // whole)) if mode == "triangular2" else math.pow(gamma, t)
    return high + (low - high) * climb * scale


def _run_checking_every_step(sched, opt, bases, steps, jumps, momentum=None):
    """Step through ``steps`` steps (a jump by step(epoch) at each step of ``jumps``, and a state-dict round trip
    into a fresh scheduler halfway), asserting every rate (and momentum) against the closed form."""
    schedule = sched.schedule
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch) is deprecated in torch's warning sense only
        for i in range(steps):
            t = sched.last_epoch
            assert [g["lr"] for g in opt.param_groups] == [schedule.lr(b, t) for b in bases], t
            if momentum is not None:
                assert [g["momentum"] for g in opt.param_groups] == [momentum(t, g) for g in range(len(bases))], t
            if i in jumps:
                sched.step(jumps[i])
            elif i == steps // 2:
                state = sched.state_dict()
                sched.step()
                sched.load_state_dict(state)  # back to step t, then on
                sched.step()
            else:
                sched.step()


_groups = st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=4)
_jumps = st.dictionaries(st.integers(0, 1500), st.integers(0, 20_000), max_size=3)


@settings(max_examples=15, deadline=None)
@given(
    bases=_groups,
    total=st.integers(2, 3000),
    pct=st.floats(0.0, 1.0),
    strategy=st.sampled_from(["cos", "linear"]),
    three=st.booleans(),
    jumps=_jumps,
)
def test_one_cycle_blocks_give_the_closed_form_at_every_step(bases, total, pct, strategy, three, jumps):
    assume(pct * total != 1.0)  # a rise of zero steps, refused by OneCycle
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": b} for b in bases], momentum=0.9)
    peaks = [0.9 - 0.1 * i for i in range(len(bases))]
    sched = steplr.OneCycleLR(
        opt, bases, total, pct_start=pct, anneal_strategy=strategy, three_phase=three, max_momentum=peaks
    )
    schedule = sched.schedule
    _run_checking_every_step(sched, opt, bases, 1600, jumps, momentum=lambda t, g: schedule.momentum(t, 0.85, peaks[g]))


@settings(max_examples=15, deadline=None)
@given(
    bases=_groups,
    up=st.integers(1, 400),
    down=st.integers(1, 400),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.99, 1.0),
    jumps=_jumps,
)
def test_cyclic_blocks_give_the_closed_form_at_every_step(bases, up, down, mode, gamma, jumps):
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": b} for b in bases], momentum=0.9)
    sched = steplr.CyclicLR(opt, bases, 20.0, up, down, mode, gamma)

    def momentum(t, g):
        return _cyclic_momentum(t, up, down, mode, gamma, 0.8, 0.9)

    _run_checking_every_step(sched, opt, bases, 1600, jumps, momentum=momentum)


@settings(max_examples=15, deadline=None)
@given(
    bases=_groups,
    t_0=st.integers(1, 300),
    t_mult=st.integers(1, 3),
    eta_min=st.sampled_from([0.0, 1e-7, 0.05]),
    jumps=_jumps,
)
def test_warm_restart_blocks_give_the_closed_form_at_every_step(bases, t_0, t_mult, eta_min, jumps):
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": b} for b in bases])
    sched = steplr.CosineAnnealingWarmRestarts(opt, t_0, t_mult, eta_min)
    _run_checking_every_step(sched, opt, bases, 1600, jumps)


@settings(max_examples=40, deadline=None)
@given(
    bases=st.lists(st.floats(2.0**-100, 2.0**100), min_size=2, max_size=5, unique=True),
    gamma=st.one_of(st.floats(0.67, 1.49), st.sampled_from([0.9999, 0.99999, 1.0001, 0.5**0.5, 1.0])),
    starts=st.lists(st.one_of(st.integers(0, 5000), st.integers(0, 10**12)), min_size=1, max_size=3),
)
def test_power_blocks_are_scaled_power_at_every_k(bases, gamma, starts):
    blocks = PowerBlocks(gamma, bases)
    assert powers_fit(gamma, bases)
    for start in starts:
        for k in range(start, start + 1100):  # a jump, then blocks growing to their full size
            assert blocks.at(k) == [scaled_power(b, gamma, k) for b in bases], k


@settings(max_examples=10, deadline=None)
@given(bases=_groups.filter(lambda b: len(set(b)) > 1), gamma=st.floats(0.99, 1.0), jumps=_jumps)
def test_exponential_with_distinct_lrs_gives_the_closed_form_at_every_step(bases, gamma, jumps):
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": b} for b in bases])
    sched = steplr.ExponentialLR(opt, gamma)
    assert isinstance(sched._rates._series, PowerBlocks)
    _run_checking_every_step(sched, opt, bases, 3000, jumps)
