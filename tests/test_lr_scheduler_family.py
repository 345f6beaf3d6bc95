"""The rest of torch's closed-form family as drop-ins: ConstantLR, LinearLR, PolynomialLR and
CosineAnnealingWarmRestarts beside torch's classes (alone, resumed from torch's state, in SequentialLR and
ChainedScheduler), against exact values where torch's recursion drifts, and with torch's argument names in errors."""

from __future__ import annotations

import copy
import doctest
import io
import pickle
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as torch_sched

import steplr
import steplr.lr_scheduler
import steplr.schedules
from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules.kinds import PolynomialDecay

parity = settings(max_examples=15, deadline=None)
group_lrs = st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=3)
factors = st.one_of(st.just(0.0), st.floats(1e-6, 1.0))


def make_optimizer(lrs=(0.1,)):
    return torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs])


def lrs_of(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def run(opt, sched, steps):
    """The learning rates each of ``steps`` steps used (steps x groups)."""
    seen = np.empty((steps, len(opt.param_groups)))
    for t in range(steps):
        seen[t] = lrs_of(opt)
        opt.step()
        sched.step()
    return seen


def run_pair(build_ours, build_torch, lrs, steps):
    ours_opt, torch_opt = make_optimizer(lrs), make_optimizer(lrs)
    return run(ours_opt, build_ours(ours_opt), steps), run(torch_opt, build_torch(torch_opt), steps)


def assert_near_torch(ours, theirs, scale, tolerance=1e-12):
    """Within ``tolerance`` of torch relative to each group's base rate (torch's recursions and its ``1 + cos``
    lose digits as the rate falls, so a gap relative to the rate itself would measure torch's error)."""
    gap = np.abs(ours - theirs) / np.asarray(scale)
    assert float(gap.max()) <= tolerance, (float(gap.max()), int(gap.max(axis=1).argmax()))


# -- parity with torch ----------------------------------------------------------------------------------------


@parity
@given(lrs=group_lrs, factor=st.floats(1e-3, 1.0), total_iters=st.integers(1, 400))
def test_constant_lr_matches_torch(lrs, factor, total_iters):
    steps = total_iters + 50
    ours, theirs = run_pair(
        lambda o: steplr.ConstantLR(o, factor, total_iters),
        lambda o: torch_sched.ConstantLR(o, factor, total_iters),
        lrs,
        steps,
    )
    assert_near_torch(ours, theirs, lrs, tolerance=4.5e-16)  # torch's base * f * (1 / f): a few roundings
    assert (ours[total_iters:] == np.asarray(lrs)).all()  # the base rate itself, not base * factor / factor


@parity
@given(lrs=group_lrs, start=st.floats(0.01, 1.0), end=factors, total_iters=st.integers(1, 400))
def test_linear_lr_matches_torch(lrs, start, end, total_iters):
    ours, theirs = run_pair(
        lambda o: steplr.LinearLR(o, start, end, total_iters),
        lambda o: torch_sched.LinearLR(o, start, end, total_iters),
        lrs,
        total_iters + 50,
    )
    assert_near_torch(ours, theirs, lrs)


@parity
@given(lrs=group_lrs, total_iters=st.integers(1, 400), power=st.floats(0.1, 4.0))
def test_polynomial_lr_matches_torch(lrs, total_iters, power):
    ours, theirs = run_pair(
        lambda o: steplr.PolynomialLR(o, total_iters, power),
        lambda o: torch_sched.PolynomialLR(o, total_iters, power),
        lrs,
        total_iters + 50,
    )
    assert_near_torch(ours, theirs, lrs)
    assert (ours[total_iters:] == 0.0).all()


@parity
@given(
    lrs=group_lrs,
    t_0=st.integers(1, 60),
    t_mult=st.integers(1, 3),
    eta_min=st.sampled_from([0.0, 1e-6]),
)
def test_warm_restarts_match_torch_and_name_the_cycle_as_torch_does(lrs, t_0, t_mult, eta_min):
    ours_opt, torch_opt = make_optimizer(lrs), make_optimizer(lrs)
    ours = steplr.CosineAnnealingWarmRestarts(ours_opt, t_0, t_mult, eta_min)
    theirs = torch_sched.CosineAnnealingWarmRestarts(torch_opt, t_0, t_mult, eta_min)
    a, b = np.empty((2000, len(lrs))), np.empty((2000, len(lrs)))
    for t in range(2000):
        a[t], b[t] = lrs_of(ours_opt), lrs_of(torch_opt)
        assert (ours.T_i, ours.T_cur) == (theirs.T_i, theirs.T_cur), t
        for opt, sched in ((ours_opt, ours), (torch_opt, theirs)):
            opt.step()
            sched.step()
    assert_near_torch(a, b, lrs)
    assert (ours.T_0, ours.T_mult, ours.eta_min) == (theirs.T_0, theirs.T_mult, theirs.eta_min)


def step_both(pairs, epoch=None):
    for opt, sched in pairs:
        opt.step()
        if epoch is None:
            sched.step()
        else:
            sched.step(epoch)


@parity
@given(
    lrs=group_lrs,
    t_0=st.integers(1, 12),
    t_mult=st.integers(1, 2),
    iters=st.integers(2, 13),
    eta_min=st.sampled_from([0.0, 1e-6]),
)
def test_warm_restarts_take_fractional_epochs_as_torch_does(lrs, t_0, t_mult, iters, eta_min):
    """torch's documented use, ``step(epoch + i / iters)`` once per batch, over several restarts."""
    ours_opt, torch_opt = make_optimizer(lrs), make_optimizer(lrs)
    ours = steplr.CosineAnnealingWarmRestarts(ours_opt, t_0, t_mult, eta_min)
    theirs = torch_sched.CosineAnnealingWarmRestarts(torch_opt, t_0, t_mult, eta_min)
    pairs = ((ours_opt, ours), (torch_opt, theirs))
    fractional = 0
    for epoch in range(6 * t_0 if t_mult == 1 else 7 * t_0):
        for i in range(iters):
            step_both(pairs, epoch + i / iters)
            assert ours.last_epoch == theirs.last_epoch == epoch
            assert (ours.T_i, ours.T_cur) == (theirs.T_i, pytest.approx(theirs.T_cur, rel=1e-15, abs=1e-15))
            assert lrs_of(ours_opt) == pytest.approx(lrs_of(torch_opt), rel=1e-12)
            assert ours.get_last_lr() == lrs_of(ours_opt) == ours.get_lr()
            fractional += i > 0
    assert fractional > 0
    # A plain step() goes one whole epoch on and keeps the fraction; a whole epoch drops it.
    step_both(pairs)
    assert ours.last_epoch == theirs.last_epoch and ours.T_cur == pytest.approx(theirs.T_cur, rel=1e-15)
    assert lrs_of(ours_opt) == pytest.approx(lrs_of(torch_opt), rel=1e-12)
    step_both(pairs, 2 * t_0 + 1)
    assert (ours.T_i, ours.T_cur) == (theirs.T_i, theirs.T_cur)
    assert ours.state_dict()["epoch_fraction"] == 0.0
    assert_near_torch(np.array([lrs_of(ours_opt)]), np.array([lrs_of(torch_opt)]), lrs)


def test_warm_restarts_whole_float_epochs_take_the_exact_integer_path():
    opt, twin_opt = make_optimizer(LRS), make_optimizer(LRS)
    sched = steplr.CosineAnnealingWarmRestarts(opt, 3, 2, 0.001)
    twin = steplr.CosineAnnealingWarmRestarts(twin_opt, 3, 2, 0.001)
    for epoch in range(30):
        step_both(((opt, sched),), float(epoch))
        step_both(((twin_opt, twin),), epoch)
        assert lrs_of(opt) == lrs_of(twin_opt) and isinstance(sched.T_cur, int)


def test_warm_restarts_state_keeps_the_fraction_and_reads_torchs():
    opt = make_optimizer(LRS)
    sched = steplr.CosineAnnealingWarmRestarts(opt, 3, 2, 0.001)
    torch_opt = make_optimizer(LRS)
    theirs = torch_sched.CosineAnnealingWarmRestarts(torch_opt, 3, 2, 0.001)
    pairs = ((opt, sched), (torch_opt, theirs))
    step_both(pairs, 10.25)
    state = sched.state_dict()
    assert (state["last_epoch"], state["epoch_fraction"]) == (10, 0.25)
    for saved in (state, theirs.state_dict()):
        fresh_opt = make_optimizer(LRS)
        fresh = steplr.CosineAnnealingWarmRestarts(fresh_opt, 3, 2, 0.001)
        fresh_opt.load_state_dict(opt.state_dict())
        fresh.load_state_dict(saved)
        assert (fresh.last_epoch, fresh.T_cur) == (10, 1.25)
        assert lrs_of(fresh_opt) == lrs_of(opt) == pytest.approx(lrs_of(torch_opt), rel=1e-12)
        step_both(((fresh_opt, fresh), *pairs))
        assert lrs_of(fresh_opt) == lrs_of(opt) == pytest.approx(lrs_of(torch_opt), rel=1e-12)
        step_both(pairs, 10.25)
    with pytest.raises(SteplrValueError, match=r"epoch_fraction must be a number in \[0, 1\), got 1\.5"):
        sched.load_state_dict({**state, "epoch_fraction": 1.5})


SCHEDULES = [
    steplr.schedules.Linear(0.3, 0.8, 700),
    steplr.LinearWarmup(500, 0.01),
    PolynomialDecay(900, 2.5),
    PolynomialDecay(900, 0.5, end_lr=1e-4),
    steplr.schedules.ConstantFactor(0.4, 300),
    steplr.schedules.CosineWarmRestarts(7, 3, 1e-5),
    steplr.schedules.CosineWarmRestarts(50),
    steplr.schedules.OneCycle(2000, 0.3),
    steplr.schedules.OneCycle(2500, 0.35, "linear", div_factor=5.0, three_phase=True),
    steplr.schedules.Cyclic(0.5, 7, 4),
    steplr.schedules.Cyclic(0.5, 30, mode="triangular2"),
    steplr.schedules.Cyclic(0.5, 11, 3, mode="exp_range", gamma=0.999),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_every_step_writes_the_schedules_own_value(schedule):
    """The per-step shortcut (weights once per step for all groups) gives schedule.lr's bits at every step."""
    lrs = (0.1, 0.1, 0.037, 3e-4)
    opt = make_optimizer(lrs)
    seen = run(opt, steplr.ScheduleLR(opt, schedule), 3000)
    for j, base in enumerate(lrs):
        assert seen[:, j].tolist() == [schedule.lr(base, t) for t in range(3000)]
    single = make_optimizer((0.037,))
    assert run(single, steplr.ScheduleLR(single, schedule), 3000)[:, 0].tolist() == seen[:, 2].tolist()


# -- exact where torch's recursion drifts ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(base=st.floats(1e-6, 1.0), start=factors, end=factors, total_iters=st.integers(1, 10_000), data=st.data())
def test_linear_lr_is_within_two_roundings_of_the_exact_line(base, start, end, total_iters, data):
    t = data.draw(st.integers(0, total_iters + 5))
    opt = make_optimizer((base,))
    opt.param_groups[0]["initial_lr"] = base
    steplr.LinearLR(opt, start, end, total_iters, last_epoch=t)
    done = min(t, total_iters)
    exact = Fraction(base) * (Fraction(start) * (total_iters - done) + Fraction(end) * done) / total_iters
    assert abs(Fraction(opt.param_groups[0]["lr"]) - exact) <= 3 * Fraction(2) ** -53 * abs(exact)


def test_linear_lr_holds_its_end_rate_where_torchs_recursion_has_drifted():
    ours, theirs = run_pair(
        lambda o: steplr.LinearLR(o, 0.1, 1.0, 1000),
        lambda o: torch_sched.LinearLR(o, 0.1, 1.0, 1000),
        (0.1,),
        1010,
    )
    assert (ours[1000:] == 0.1).all()  # end_factor 1: the base rate exactly
    assert (theirs[1000:] != 0.1).all()  # a thousand roundings later torch is off it


@settings(max_examples=100, deadline=None)
@given(
    base=st.floats(1e-6, 1.0),
    t_0=st.integers(1, 50),
    t_mult=st.integers(1, 3),
    t=st.integers(0, 10**6),
)
def test_warm_restarts_far_out_are_the_exact_cosine_of_their_cycle(base, t_0, t_mult, t):
    opt = make_optimizer((base,))
    opt.param_groups[0]["initial_lr"] = base
    sched = steplr.CosineAnnealingWarmRestarts(opt, t_0, t_mult, last_epoch=t)
    start, length = 0, t_0  # the cycle, walked here in plain integers
    while t - start >= length:
        start, length = start + length, length * t_mult
    assert (sched.T_cur, sched.T_i) == (t - start, length)
    with mpmath.workdps(40):
        exact = mpmath.mpf(base) * (1 + mpmath.cos(mpmath.pi * (t - start) / length)) / 2
        assert abs(mpmath.mpf(opt.param_groups[0]["lr"]) - exact) <= 1e-15 * base


def test_constant_lr_with_factor_zero_comes_back_where_torch_divides_by_zero():
    ours_opt = make_optimizer((0.1,))
    ours = run(ours_opt, steplr.ConstantLR(ours_opt, 0.0, 3), 6)
    assert ours[:, 0].tolist() == [0.0, 0.0, 0.0, 0.1, 0.1, 0.1]
    torch_opt = make_optimizer((0.1,))
    with pytest.raises(ZeroDivisionError):
        run(torch_opt, torch_sched.ConstantLR(torch_opt, 0.0, 3), 6)


# -- state, resume, composition --------------------------------------------------------------------------------

FAMILY = {
    "ConstantLR": (lambda o, lib: lib.ConstantLR(o, 0.25, 4)),
    "LinearLR": (lambda o, lib: lib.LinearLR(o, 0.2, 0.7, 5)),
    "PolynomialLR": (lambda o, lib: lib.PolynomialLR(o, 6, 1.5)),
    "CosineAnnealingWarmRestarts": (lambda o, lib: lib.CosineAnnealingWarmRestarts(o, 3, 2, 0.001)),
}
LRS = (0.1, 0.03)


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("stop", [0, 2, 4, 5, 9])
def test_torch_state_resumes_in_the_steplr_class_of_the_same_kind(name, stop):
    build = FAMILY[name]
    torch_opt = make_optimizer(LRS)
    theirs = build(torch_opt, torch_sched)
    uninterrupted = run(torch_opt, theirs, 16)
    first_opt = make_optimizer(LRS)
    first = build(first_opt, torch_sched)
    run(first_opt, first, stop)
    buffer = io.BytesIO()
    torch.save({"opt": first_opt.state_dict(), "sched": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    opt = make_optimizer(LRS)
    ours = build(opt, steplr)
    opt.load_state_dict(saved["opt"])
    ours.load_state_dict(saved["sched"])
    assert ours.last_epoch == stop
    assert_near_torch(run(opt, ours, 16 - stop), uninterrupted[stop:], LRS)


@pytest.mark.parametrize("name", FAMILY)
def test_own_state_round_trips_and_another_torch_kind_is_refused_by_name(name):
    build = FAMILY[name]
    opt = make_optimizer(LRS)
    sched = build(opt, steplr)
    run(opt, sched, 7)
    state = sched.state_dict()
    assert state["format"] == steplr.lr_scheduler.STATE_FORMAT and state["last_epoch"] == 7
    twin_opt = make_optimizer(LRS)
    twin = build(twin_opt, steplr)
    twin.load_state_dict(state)
    assert lrs_of(twin_opt) == lrs_of(opt)
    other = "LinearLR" if name != "LinearLR" else "ConstantLR"
    foreign = FAMILY[other](make_optimizer(LRS), torch_sched).state_dict()
    with pytest.raises(SteplrValueError, match=f"got torch's {other} state_dict .*load it into steplr's {other}"):
        sched.load_state_dict(foreign)


COMPOSITIONS = {
    "LinearLR then CosineAnnealingWarmRestarts": lambda o, lib: torch_sched.SequentialLR(
        o, [lib.LinearLR(o, 0.1, 1.0, 4), lib.CosineAnnealingWarmRestarts(o, 3, 2)], [4]
    ),
    "ConstantLR then PolynomialLR": lambda o, lib: torch_sched.SequentialLR(
        o, [lib.ConstantLR(o, 0.5, 3), lib.PolynomialLR(o, 8, 2.0)], [5]
    ),
    "chained ConstantLR and LinearLR": lambda o, lib: torch_sched.ChainedScheduler(
        [lib.ConstantLR(o, 0.5, 3), lib.LinearLR(o, 0.25, 1.0, 6)]
    ),
    "chained torch ExponentialLR and PolynomialLR": lambda o, lib: torch_sched.ChainedScheduler(
        [torch_sched.ExponentialLR(o, 0.9), lib.PolynomialLR(o, 10, 1.0)]
    ),
    "chained CosineAnnealingWarmRestarts and torch StepLR": lambda o, lib: torch_sched.ChainedScheduler(
        [lib.CosineAnnealingWarmRestarts(o, 4), torch_sched.StepLR(o, 3, 0.5)]
    ),
}


@pytest.mark.parametrize("name", COMPOSITIONS)
def test_compositions_match_torch(name):
    build = COMPOSITIONS[name]
    ours_opt, torch_opt = make_optimizer(LRS), make_optimizer(LRS)
    ours = run(ours_opt, build(ours_opt, steplr), 20)
    theirs = run(torch_opt, build(torch_opt, torch_sched), 20)
    assert_near_torch(ours, theirs, LRS)


# -- the torch surface: names, durations, errors, copies, docs ---------------------------------------------------


def test_attributes_carry_torchs_names_and_values():
    pairs = [(build(make_optimizer(), steplr), build(make_optimizer(), torch_sched)) for build in FAMILY.values()]
    names = ("factor", "total_iters", "start_factor", "end_factor", "power", "T_0", "T_mult", "eta_min")
    for ours, theirs in pairs:
        for attribute in names:
            if hasattr(theirs, attribute):
                assert getattr(ours, attribute) == getattr(theirs, attribute), (type(ours).__name__, attribute)
        assert isinstance(ours, torch_sched.LRScheduler)


@pytest.mark.parametrize(
    ("cls", "argument"),
    [
        (steplr.ConstantLR, "total_iters"),
        (steplr.LinearLR, "total_iters"),
        (steplr.PolynomialLR, "total_iters"),
        (steplr.CosineAnnealingWarmRestarts, "T_0"),
    ],
)
def test_lengths_take_durations_and_bad_ones_are_refused_by_torchs_name(cls, argument):
    by_epochs, by_steps = make_optimizer(LRS), make_optimizer(LRS)
    ours = cls(by_epochs, **{argument: "2ep"}, steps_per_epoch=5)
    theirs = cls(by_steps, **{argument: 10})
    assert (run(by_epochs, ours, 25) == run(by_steps, theirs, 25)).all()
    for bad, error in ((0, SteplrValueError), (-3, SteplrValueError), (2.5, SteplrTypeError), (True, SteplrTypeError)):
        with pytest.raises(error, match=f"^{argument} must be"):
            cls(make_optimizer(), **{argument: bad})


def test_other_bad_arguments_are_refused_with_their_names():
    cases = [
        (lambda o: steplr.ConstantLR(o, 1.5), "factor must be a number in \\[0, 1\\], got 1.5"),
        (lambda o: steplr.LinearLR(o, start_factor=-0.1), "start_factor must be a number in \\[0, 1\\]"),
        (lambda o: steplr.LinearLR(o, end_factor=2.0), "end_factor must be a number in \\[0, 1\\]"),
        (lambda o: steplr.PolynomialLR(o, 5, power=0.0), "power must be"),
        (lambda o: steplr.CosineAnnealingWarmRestarts(o, 3, T_mult=0), "T_mult must be an integer >= 1, got 0"),
        (lambda o: steplr.CosineAnnealingWarmRestarts(o, 3, T_mult=1.5), "T_mult must be an integer >= 1, got 1.5"),
        (lambda o: steplr.CosineAnnealingWarmRestarts(o, 3, eta_min=-1.0), "eta_min must be"),
    ]
    for build, message in cases:
        with pytest.raises((SteplrValueError, SteplrTypeError), match=message):
            build(make_optimizer())
    opt = make_optimizer()
    sched = steplr.CosineAnnealingWarmRestarts(opt, 3)
    opt.step()
    for epoch in (-0.5, float("nan"), float("inf")):
        with pytest.raises(SteplrValueError, match=f"epoch must be a finite number >= 0, got {epoch!r}"):
            sched.step(epoch)
    with pytest.raises(SteplrValueError, match="epoch must be a non-negative integer, got '2'"):
        sched.step("2")
    assert sched.last_epoch == 0
    linear = steplr.LinearLR(opt)
    opt.step()
    with pytest.raises(SteplrValueError, match=r"epoch must be a non-negative integer, got 2\.5"):
        linear.step(2.5)  # fractional epochs are CosineAnnealingWarmRestarts' only, as in torch


@pytest.mark.parametrize("name", FAMILY)
def test_repr_pickle_and_deep_copy(name):
    opt = make_optimizer(LRS)
    sched = FAMILY[name](opt, steplr)
    run(opt, sched, 3)
    assert repr(sched).startswith(f"{name}(") and repr(sched).endswith("last_epoch=3)")
    assert type(sched).__module__ == "steplr.lr_scheduler"
    twin = copy.deepcopy({"opt": opt, "sched": sched})
    again = pickle.loads(pickle.dumps({"opt": opt, "sched": sched}))
    expected = run(opt, sched, 8)
    for copied in (twin, again):
        assert copied["sched"].optimizer is copied["opt"]
        assert (run(copied["opt"], copied["sched"], 8) == expected).all()


def test_the_docstring_examples_of_every_drop_in_run():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tested = set()
    for test in finder.find(steplr.lr_scheduler):
        if test.examples:
            runner.run(test)
            tested.add(test.name.rpartition(".")[2])
    family = {"ConstantLR", "LinearLR", "PolynomialLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "CyclicLR"}
    assert family | {"lr_scheduler"} <= tested
    assert runner.summarize(verbose=False).failed == 0


# -- OneCycleLR: the rate and the momentum ---------------------------------------------------------------------


def one_cycle_run(opt, sched, steps):
    """(rates, momenta) of each step: ``momentum``, or ``betas[0]`` for Adam."""
    rates, momenta = [], []
    for _ in range(steps):
        rates.append(lrs_of(opt))
        momenta.append([g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups])
        opt.step()
        if len(rates) < steps:  # torch's raises past total_steps
            sched.step()
    return np.asarray(rates), np.asarray(momenta)


def one_cycle_optimizer(adam, lrs=LRS):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return torch.optim.Adam(groups) if adam else torch.optim.SGD(groups, momentum=0.9)


@parity
@given(
    total_steps=st.integers(10, 600),
    pct_start=st.floats(0.05, 0.95),
    anneal_strategy=st.sampled_from(["cos", "linear"]),
    three_phase=st.booleans(),
    adam=st.booleans(),
    max_lrs=st.lists(st.floats(1e-4, 1.0), min_size=2, max_size=2),
)
def test_one_cycle_lr_matches_torch_rates_and_momentum(
    total_steps, pct_start, anneal_strategy, three_phase, adam, max_lrs
):
    arguments = {
        "max_lr": max_lrs,
        "total_steps": total_steps,
        "pct_start": pct_start,
        "anneal_strategy": anneal_strategy,
        "three_phase": three_phase,
        "base_momentum": [0.8, 0.85],
    }
    ours_opt, torch_opt = one_cycle_optimizer(adam), one_cycle_optimizer(adam)
    ours = one_cycle_run(ours_opt, steplr.OneCycleLR(ours_opt, **arguments), total_steps)
    theirs = one_cycle_run(torch_opt, torch_sched.OneCycleLR(torch_opt, **arguments), total_steps)
    assert_near_torch(ours[0], theirs[0], max_lrs)
    assert_near_torch(ours[1], theirs[1], [1.0, 1.0])
    assert [g["initial_lr"] for g in ours_opt.param_groups] == max_lrs  # the schedule's base: the peak
    assert [g["max_lr"] for g in ours_opt.param_groups] == [g["max_lr"] for g in torch_opt.param_groups]


def test_one_cycle_lr_takes_epochs_and_steps_per_epoch_and_holds_past_the_end():
    by_epochs, by_steps = one_cycle_optimizer(False), one_cycle_optimizer(False)
    ours = steplr.OneCycleLR(by_epochs, 1.0, epochs=4, steps_per_epoch=5)
    theirs = steplr.OneCycleLR(by_steps, 1.0, total_steps=20)
    a, b = one_cycle_run(by_epochs, ours, 25), one_cycle_run(by_steps, theirs, 25)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    assert ours.total_steps == 20 and ours.max_lrs == [1.0, 1.0]
    assert (a[0][19:] == a[0][19]).all() and (a[1][19:] == 0.95).all()
    assert a[0][19, 0] == 1.0 / 25 / 1e4  # the floor, max_lr / div_factor / final_div_factor


def test_one_cycle_lr_state_resumes_with_its_momentum_and_torchs_state_is_refused():
    arguments = {"max_lr": [0.5, 0.2], "total_steps": 30, "base_momentum": 0.7, "max_momentum": 0.9}
    opt = one_cycle_optimizer(True)
    uninterrupted = one_cycle_run(opt, steplr.OneCycleLR(opt, **arguments), 30)
    first_opt = one_cycle_optimizer(True)
    first = steplr.OneCycleLR(first_opt, **arguments)
    run(first_opt, first, 12)  # steps 0 to 11 trained, the scheduler at step 12
    buffer = io.BytesIO()
    torch.save({"opt": first_opt.state_dict(), "sched": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["sched"]["momentum"] == {"use_beta1": True, "base": [0.7, 0.7], "max": [0.9, 0.9]}
    opt = one_cycle_optimizer(True)
    resumed = steplr.OneCycleLR(opt, max_lr=[0.5, 0.2], total_steps=30)  # momentum settings from the checkpoint
    opt.load_state_dict(saved["opt"])
    resumed.load_state_dict(saved["sched"])
    rest = one_cycle_run(opt, resumed, 18)
    assert (rest[0] == uninterrupted[0][12:]).all() and (rest[1] == uninterrupted[1][12:]).all()
    torch_state = torch_sched.OneCycleLR(one_cycle_optimizer(False), 0.5, total_steps=30).state_dict()
    with pytest.raises(SteplrValueError, match="looks like a torch scheduler's state_dict"):
        resumed.load_state_dict(torch_state)


def test_one_cycle_lr_in_sequential_lr_matches_torch():
    def build(opt, lib):
        return torch_sched.SequentialLR(
            opt, [lib.OneCycleLR(opt, [0.4, 0.1], total_steps=12), torch_sched.ConstantLR(opt, 0.5, 3)], [12]
        )

    ours_opt, torch_opt = one_cycle_optimizer(False), one_cycle_optimizer(False)
    ours = run(ours_opt, build(ours_opt, steplr), 11)
    theirs = run(torch_opt, build(torch_opt, torch_sched), 11)
    assert_near_torch(ours, theirs, [0.4, 0.1])


def test_one_cycle_lr_refuses_what_it_cannot_schedule():
    cases = [
        (lambda o: steplr.OneCycleLR(o, 1.0), "needs total_steps, or epochs and steps_per_epoch"),
        (lambda o: steplr.OneCycleLR(o, [1.0], total_steps=10), "max_lr must be one number or 2"),
        (lambda o: steplr.OneCycleLR(o, 1.0, 10, base_momentum=[0.8] * 3), "base_momentum must be one number or 2"),
        (lambda o: steplr.OneCycleLR(o, float("nan"), 10), "max_lr must hold finite numbers"),
        (lambda o: steplr.OneCycleLR(o, 1.0, 10, anneal_strategy="cosine"), "anneal_strategy must be one of"),
        (lambda o: steplr.OneCycleLR(o, 1.0, 10, pct_start=0.1), r"pct_start \* total_steps must not be 1"),
        (lambda o: steplr.OneCycleLR(o, 1.0, 0), "total_steps must be a positive"),
    ]
    cases.append((lambda o: steplr.OneCycleLR(o, 1.0, 10, last_epoch=-2), "last_epoch must be an integer >= -1"))
    for build, message in cases:
        opt = one_cycle_optimizer(False)
        before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
        with pytest.raises((SteplrValueError, SteplrTypeError), match=message):
            build(opt)
        assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before  # untouched
    adagrad = torch.optim.Adagrad([torch.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(SteplrValueError, match="needs an optimizer with momentum or betas"):
        steplr.OneCycleLR(adagrad, 1.0, 10)
    sched = steplr.OneCycleLR(adagrad, 1.0, 10, cycle_momentum=False)
    assert not sched.cycle_momentum and "momentum" not in adagrad.param_groups[0]


@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_lr_momentum_is_the_schedules_at_every_step(three_phase):
    opt = one_cycle_optimizer(False)
    sched = steplr.OneCycleLR(opt, 1.0, 500, pct_start=0.4, three_phase=three_phase, base_momentum=[0.8, 0.6])
    momenta = one_cycle_run(opt, sched, 520)[1]
    for j, low in enumerate((0.8, 0.6)):
        assert momenta[:, j].tolist() == [sched.schedule.momentum(t, low, 0.95) for t in range(520)]


def test_one_cycle_lr_copies_and_pickles_with_its_momentum():
    opt = one_cycle_optimizer(False)
    sched = steplr.OneCycleLR(opt, [0.3, 0.2], total_steps=40)
    one_cycle_run(opt, sched, 5)
    twin = copy.deepcopy({"opt": opt, "sched": sched})
    again = pickle.loads(pickle.dumps({"opt": opt, "sched": sched}))
    expected = one_cycle_run(opt, sched, 10)
    for copied in (twin, again):
        got = one_cycle_run(copied["opt"], copied["sched"], 10)
        assert (got[0] == expected[0]).all() and (got[1] == expected[1]).all()


# -- CyclicLR ----------------------------------------------------------------------------------------------------


@parity
@given(
    up=st.integers(1, 60),
    down=st.one_of(st.none(), st.integers(1, 60)),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.99, 1.0),
    adam=st.booleans(),
    base_lrs=st.lists(st.floats(1e-5, 0.05), min_size=2, max_size=2),
)
def test_cyclic_lr_matches_torch_rates_and_momentum(up, down, mode, gamma, adam, base_lrs):
    arguments = {
        "base_lr": base_lrs,
        "max_lr": 0.3,
        "step_size_up": up,
        "step_size_down": down,
        "mode": mode,
        "gamma": gamma,
        "base_momentum": [0.7, 0.8],
    }
    ours_opt, torch_opt = one_cycle_optimizer(adam), one_cycle_optimizer(adam)
    ours = one_cycle_run(ours_opt, steplr.CyclicLR(ours_opt, **arguments), 1500)
    theirs = one_cycle_run(torch_opt, torch_sched.CyclicLR(torch_opt, **arguments), 1500)
    # torch places a step in its cycle from t / cycle_length in floating point: its error grows with t
    assert_near_torch(ours[0], theirs[0], [0.3, 0.3])
    assert_near_torch(ours[1], theirs[1], [1.0, 1.0])


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_lr_momentum_is_the_rates_curve_between_the_momenta_at_every_step(mode):
    opt = one_cycle_optimizer(False)
    sched = steplr.CyclicLR(opt, 0.01, 0.3, 5, 3, mode=mode, gamma=0.99, base_momentum=[0.7, 0.5], max_momentum=0.9)
    momenta = one_cycle_run(opt, sched, 300)[1]
    for j, low in enumerate((0.7, 0.5)):
        curve = steplr.schedules.Cyclic(low, 5, 3, mode=mode, gamma=0.99)  # from 0.9 at base_lr to low at max_lr
        assert momenta[:, j].tolist() == [curve.lr(0.9, t) for t in range(300)]


def test_cyclic_lr_repeats_its_cycle_exactly_far_out():
    opt = one_cycle_optimizer(False)
    sched = steplr.CyclicLR(opt, [0.01, 0.02], 0.3, step_size_up=7, step_size_down=5)
    first = one_cycle_run(opt, sched, 12)
    sched.step(12 * 10**9)  # a billion cycles later
    again = one_cycle_run(opt, sched, 12)
    assert (first[0] == again[0]).all() and (first[1] == again[1]).all()
    assert first[0][7].tolist() == [0.3, 0.3] and first[1][7].tolist() == [0.8, 0.8]  # the peak, the low momentum


def test_cyclic_lr_state_resumes_with_its_momentum():
    arguments = {"base_lr": 0.01, "max_lr": 0.2, "step_size_up": 4, "mode": "triangular2", "base_momentum": 0.6}
    opt = one_cycle_optimizer(True)
    uninterrupted = one_cycle_run(opt, steplr.CyclicLR(opt, **arguments), 30)
    first_opt = one_cycle_optimizer(True)
    first = steplr.CyclicLR(first_opt, **arguments)
    run(first_opt, first, 13)
    buffer = io.BytesIO()
    torch.save({"opt": first_opt.state_dict(), "sched": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    opt = one_cycle_optimizer(True)
    resumed = steplr.CyclicLR(opt, 0.01, 0.2, step_size_up=4)  # mode and momentum from the checkpoint
    opt.load_state_dict(saved["opt"])
    with pytest.warns(UserWarning, match="mode: constructor 'triangular', checkpoint 'triangular2'"):
        resumed.load_state_dict(saved["sched"])
    rest = one_cycle_run(opt, resumed, 17)
    assert (rest[0] == uninterrupted[0][13:]).all() and (rest[1] == uninterrupted[1][13:]).all()


def test_cyclic_lr_refuses_what_it_cannot_schedule():
    cases = [
        (lambda o: steplr.CyclicLR(o, 0.01, [0.1, 0.2]), r"max_lr must be one value for all param groups"),
        (lambda o: steplr.CyclicLR(o, [0.01] * 3, 0.1), "base_lr must be one number or 2"),
        (lambda o: steplr.CyclicLR(o, 0.01, 0.1, scale_fn=lambda x: 1.0), "takes no scale_fn"),
        (lambda o: steplr.CyclicLR(o, 0.01, 0.1, scale_mode="epochs"), "scale_mode must be 'cycle' or 'iterations'"),
        (lambda o: steplr.CyclicLR(o, 0.01, 0.1, mode="cosine"), "mode must be one of"),
        (lambda o: steplr.CyclicLR(o, 0.01, 0.1, step_size_up=0), "step_size_up must be a positive"),
        (lambda o: steplr.CyclicLR(o, 0.01, 0.1, last_epoch=-2), "last_epoch must be an integer >= -1"),
    ]
    for build, message in cases:
        opt = one_cycle_optimizer(False)
        before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
        with pytest.raises((SteplrValueError, SteplrTypeError), match=message):
            build(opt)
        assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before  # untouched
    adagrad = torch.optim.Adagrad([torch.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(SteplrValueError, match="needs an optimizer with momentum or betas"):
        steplr.CyclicLR(adagrad, 0.01, 0.1)
    assert not steplr.CyclicLR(adagrad, 0.01, 0.1, cycle_momentum=False).cycle_momentum


def test_cyclic_lr_in_chained_scheduler_writes_its_own_rate_as_torchs_does():
    def build(opt, lib):
        return torch_sched.ChainedScheduler(
            [torch_sched.ExponentialLR(opt, 0.9), lib.CyclicLR(opt, 0.01, 0.1, 3, cycle_momentum=False)]
        )

    ours_opt, torch_opt = make_optimizer(LRS), make_optimizer(LRS)
    ours = run(ours_opt, build(ours_opt, steplr), 20)
    theirs = run(torch_opt, build(torch_opt, torch_sched), 20)
    # From step 1 on, torch's CyclicLR writes its closed form over what ExponentialLR did, as steplr's does. At
    # step 0 torch's stands at the initial_lr ExponentialLR left in the groups (its own base_lrs are set only after
    # its first step); steplr's starts at base_lr.
    assert ours[0].tolist() == [0.01, 0.01] and theirs[0].tolist() == list(LRS)
    assert_near_torch(ours[1:], theirs[1:], [0.1, 0.1])
