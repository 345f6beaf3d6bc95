"""The PyTorch drop-in: parity with torch.optim.lr_scheduler, and each place where it does better."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as torch_sched

import steplr
from steplr.lr_scheduler import STATE_FORMAT

SMALLEST_NORMAL = 2.2250738585072014e-308
STEPS = 10_000


def make_optimizer(lrs=(0.1,), kind=torch.optim.SGD):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return kind(groups)


def run_pair(build_ours, build_torch, lrs, steps=STEPS):
    """Step both schedulers side by side; return two (steps x groups) arrays of the LR each step used."""
    ours_opt, torch_opt = make_optimizer(lrs), make_optimizer(lrs)
    ours, theirs = build_ours(ours_opt), build_torch(torch_opt)
    a, b = np.empty((steps, len(lrs))), np.empty((steps, len(lrs)))
    for t in range(steps):
        a[t] = [g["lr"] for g in ours_opt.param_groups]
        b[t] = [g["lr"] for g in torch_opt.param_groups]
        ours_opt.step()
        ours.step()
        torch_opt.step()
        theirs.step()
    return a, b


def max_relative_gap(ours, theirs):
    normal = np.abs(theirs) >= SMALLEST_NORMAL
    if not normal.any():
        return 0.0
    return float(np.max(np.abs(ours[normal] - theirs[normal]) / np.abs(theirs[normal])))


group_lrs = st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=3)
parity = settings(max_examples=12, deadline=None)


@parity
@given(lrs=group_lrs, step_size=st.integers(1, 300), gamma=st.floats(0.05, 0.999))
def test_step_lr_matches_torch(lrs, step_size, gamma):
    ours, theirs = run_pair(
        lambda o: steplr.StepLR(o, step_size, gamma), lambda o: torch_sched.StepLR(o, step_size, gamma), lrs
    )
    assert max_relative_gap(ours, theirs) <= 1e-13


@parity
@given(
    lrs=group_lrs,
    milestones=st.lists(st.integers(1, STEPS), min_size=1, max_size=8, unique=True).map(sorted),
    gamma=st.floats(0.05, 0.999),
)
def test_multistep_lr_matches_torch(lrs, milestones, gamma):
    ours, theirs = run_pair(
        lambda o: steplr.MultiStepLR(o, milestones, gamma),
        lambda o: torch_sched.MultiStepLR(o, milestones, gamma),
        lrs,
    )
    assert max_relative_gap(ours, theirs) <= 1e-13


@parity
@given(
    lrs=group_lrs,
    milestones=st.lists(st.integers(0, 300), min_size=1, max_size=8).filter(lambda m: m != sorted(set(m))),
    gamma=st.floats(0.05, 0.999),
)
def test_multistep_lr_takes_milestones_as_torch_does(lrs, milestones, gamma):
    # unsorted, repeated (each listing decays once more) or 0 (decays from the first step): torch's Counter
    ours, theirs = run_pair(
        lambda o: steplr.MultiStepLR(o, milestones, gamma),
        lambda o: torch_sched.MultiStepLR(o, milestones, gamma),
        lrs,
        400,
    )
    assert max_relative_gap(ours, theirs) <= 1e-12


def test_multistep_lr_loads_a_checkpoint_written_before_counted_milestones():
    ours = steplr.MultiStepLR(make_optimizer([1.0]), [5, 3, 3], 0.5)
    state = ours.state_dict()
    old = {**state, "schedule": {"type": "MultiStep", "milestones": [2, 4], "gamma": 0.5}, "last_epoch": 4}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = steplr.MultiStepLR(make_optimizer([1.0]), [2, 4], 0.5)
        resumed.load_state_dict(old)
    assert resumed.get_last_lr() == [0.25]
    assert resumed.milestones == [2, 4]


@parity
@given(
    lrs=group_lrs,
    t_max=st.floats(0.5, 500.0).filter(lambda x: not x.is_integer()),
    eta_min=st.sampled_from([0.0, 1e-6]),
)
def test_cosine_lr_takes_a_float_t_max_as_torch_does(lrs, t_max, eta_min):
    steps = 400
    try:
        ours, theirs = run_pair(
            lambda o: steplr.CosineAnnealingLR(o, t_max, eta_min),
            lambda o: torch_sched.CosineAnnealingLR(o, t_max, eta_min),
            lrs,
            steps,
        )
    except ZeroDivisionError:  # torch's recursion divides by 1 + cos, zero when a step lands on the floor
        assume(False)
    mpmath.mp.prec = 120
    for t in range(steps):
        for g, base in enumerate(lrs):
            exact = float(eta_min + (mpmath.mpf(base) - eta_min) * (1 + mpmath.cos(mpmath.pi * t / t_max)) / 2)
            if exact < SMALLEST_NORMAL:
                continue
            assert abs(ours[t, g] - exact) <= 1e-12 * exact
            # torch's closed form as written: every gap is its own rounding error
            closed = eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
            assert abs(ours[t, g] - closed) <= abs(closed - exact) + 1e-12 * exact
            # torch's recursion: every gap is torch's own error, up to rounding
            assert abs(ours[t, g] - theirs[t, g]) <= abs(theirs[t, g] - exact) + 1e-12 * exact


@parity
@given(lrs=group_lrs, gamma=st.floats(0.9, 0.99999))
def test_exponential_lr_matches_torch(lrs, gamma):
    ours, theirs = run_pair(
        lambda o: steplr.ExponentialLR(o, gamma), lambda o: torch_sched.ExponentialLR(o, gamma), lrs
    )
    assert max_relative_gap(ours, theirs) <= 1e-13


@parity
@given(lrs=group_lrs, t_max=st.integers(2, 3000), eta_min=st.sampled_from([0.0, 1e-6]))
def test_cosine_lr_is_closer_to_exact_than_torch_wherever_they_differ(lrs, t_max, eta_min):
    # torch's recursive cosine drifts (2e-10 relative by step 10,000 at T_max=5000); ours stays within a few
    # ulps of the exact value. So: every gap between the two is torch's own error, up to rounding.
    steps = 3000
    ours, theirs = run_pair(
        lambda o: steplr.CosineAnnealingLR(o, t_max, eta_min),
        lambda o: torch_sched.CosineAnnealingLR(o, t_max, eta_min),
        lrs,
        steps,
    )
    mpmath.mp.prec = 120
    for t in range(0, steps, 7):
        for g, base in enumerate(lrs):
            exact = float(eta_min + (mpmath.mpf(base) - eta_min) * (1 + mpmath.cos(mpmath.pi * t / t_max)) / 2)
            if exact < SMALLEST_NORMAL:
                continue
            assert abs(ours[t, g] - exact) <= 8 * math.ulp(exact)
            assert abs(ours[t, g] - theirs[t, g]) <= abs(theirs[t, g] - exact) + 4e-15 * exact


@parity
@given(lrs=group_lrs, step_size=st.integers(1, 50), exponent=st.integers(-3, -1))
def test_power_of_two_gamma_is_bit_for_bit_torch(lrs, step_size, exponent):
    gamma = 2.0**exponent
    ours, theirs = run_pair(
        lambda o: steplr.StepLR(o, step_size, gamma), lambda o: torch_sched.StepLR(o, step_size, gamma), lrs, 3000
    )
    normal = np.abs(theirs) >= SMALLEST_NORMAL
    assert np.array_equal(ours[normal], theirs[normal])


def test_each_group_decays_from_its_own_base_lr():
    opt = make_optimizer((0.1, 0.003))
    sched = steplr.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(5):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.1 * 0.25, 0.003 * 0.25]
    assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    assert sched.base_lrs == [0.1, 0.003]


def test_underflow_reaches_zero_where_torch_sticks_at_a_subnormal():
    ours, theirs = run_pair(lambda o: steplr.StepLR(o, 1, 0.7), lambda o: torch_sched.StepLR(o, 1, 0.7), (1.0,), 2300)
    assert ours[-1, 0] == 0.0
    assert theirs[-1, 0] == 5e-324  # 5e-324 * 0.7 rounds back to 5e-324: torch's product never gets to 0


def test_no_drift_over_a_million_steps():
    opt = make_optimizer((0.1,))
    sched = steplr.StepLR(opt, step_size=997, gamma=0.999)
    opt.step()  # once: the call-order check is at the scheduler's first step only
    for _ in range(1_000_000):
        sched.step()
    k = 1_000_000 // 997
    assert opt.param_groups[0]["lr"] == float(Fraction(0.1) * Fraction(0.999) ** k)


def test_is_a_torch_lr_scheduler():
    opt = make_optimizer()
    for sched in (
        steplr.StepLR(opt, 3),
        steplr.MultiStepLR(make_optimizer(), [3, 6]),
        steplr.ExponentialLR(make_optimizer(), 0.9),
        steplr.CosineAnnealingLR(make_optimizer(), 10),
        steplr.ScheduleLR(make_optimizer(), steplr.join([steplr.LinearWarmup(5), steplr.StepDecay(10)], [5])),
    ):
        assert isinstance(sched, torch_sched.LRScheduler)


def test_epoch_step_size_with_steps_per_epoch():
    opt = make_optimizer((1.0,))
    sched = steplr.StepLR(opt, step_size="5ep", gamma=0.5, steps_per_epoch=23)
    assert sched.step_size == 115
    opt.step()
    for _ in range(115):
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="pass steps_per_epoch"):
        steplr.StepLR(make_optimizer(), step_size="5ep")


@pytest.mark.parametrize(
    ("step_size", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_bad_step_size_is_refused(step_size, error):
    with pytest.raises(error, match=f"step_size must be a positive integer, got {step_size!r}"):
        steplr.StepLR(make_optimizer(), step_size)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match=re.escape("optimizer must be a torch.optim.Optimizer, got list")):
        steplr.StepLR([], 3)
    with pytest.raises(ValueError, match="last_epoch must be an integer >= -1, got -2"):
        steplr.StepLR(make_optimizer(), 3, last_epoch=-2)
    with pytest.raises(ValueError, match=r"param_groups\[0\] has no 'initial_lr'"):
        steplr.StepLR(make_optimizer(), 3, last_epoch=5)


# -- better than torch -----------------------------------------------------------------------------------------


def test_tensor_lr_is_updated_in_place_and_exactly():
    lr = torch.tensor(0.01)  # float32, as the torch.compile recipe uses
    opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
    sched = steplr.ExponentialLR(opt, gamma=0.999)
    torch_lr = torch.tensor(0.01)
    torch_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=torch_lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = torch_sched.ExponentialLR(torch_opt, gamma=0.999)
    for _ in range(3000):
        opt.step()
        sched.step()
        torch_opt.step()
        reference.step()
    assert opt.param_groups[0]["lr"] is lr
    base = float(torch.tensor(0.01).item())
    exact = float(Fraction(base) * Fraction(0.999) ** 3000)
    ours = lr.item()
    assert ours == float(np.float32(exact))  # one float32 rounding of the exact value
    torch_error = abs(torch_lr.item() - exact) / exact
    assert abs(ours - exact) / exact <= 2**-24 < torch_error  # torch's float32 running product drifts
    last = sched.get_last_lr()[0]
    assert isinstance(last, torch.Tensor) and last is not lr and last.item() == ours


def test_resuming_with_last_epoch_gives_that_steps_lr():
    step_size, last = 4, 7  # step 7 is the last of a block: torch's constructor jumps into the next one
    opt = make_optimizer((0.1,))
    sched = steplr.StepLR(opt, step_size, 0.5)
    for _ in range(last):
        opt.step()
        sched.step()
    saved = opt.state_dict()

    restored = make_optimizer((0.1,))
    restored.load_state_dict(saved)
    resumed = steplr.StepLR(restored, step_size, 0.5, last_epoch=last)
    assert resumed.last_epoch == last
    assert restored.param_groups[0]["lr"] == 0.1 * 0.5 ** (last // step_size) == opt.param_groups[0]["lr"]

    torch_opt = make_optimizer((0.1,))
    torch_opt.load_state_dict(saved)
    torch_resumed = torch_sched.StepLR(torch_opt, step_size, 0.5, last_epoch=last)
    assert torch_resumed.last_epoch == last + 1  # one step ahead
    assert torch_opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** ((last + 1) // step_size))


def test_a_compiled_optimizer_step_is_left_alone():
    opt = make_optimizer((0.1,))
    opt.step = torch.compile(opt.step, backend="eager")
    sched = steplr.StepLR(opt, 2, 0.5)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.025
    other = make_optimizer((0.1,))
    other.step = torch.compile(other.step, backend="eager")
    with pytest.raises(AttributeError):
        torch_sched.StepLR(other, 2, 0.5)


# -- checkpoints ----------------------------------------------------------------------------------------------


def test_state_dict_has_explicit_keys_and_survives_weights_only_load(tmp_path):
    opt = make_optimizer((0.1, 0.01))
    sched = steplr.StepLR(opt, "2ep", 0.5, steps_per_epoch=3)
    for _ in range(8):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert state == {
        "format": STATE_FORMAT,
        "schedule": {"type": "StepDecay", "step_size": 6, "gamma": 0.5},
        "steps_per_epoch": 3,
        "last_epoch": 8,
        "base_lrs": [0.1, 0.01],
        "_step_count": 9,  # as torch counts: once when built, then every step()
    }
    path = tmp_path / "sched.pt"
    torch.save({"scheduler": state, "optimizer": opt.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)

    new_opt = make_optimizer((0.1, 0.01))
    new_opt.load_state_dict(loaded["optimizer"])
    resumed = steplr.StepLR(new_opt, "2ep", 0.5, steps_per_epoch=3)
    resumed.load_state_dict(loaded["scheduler"])
    assert resumed.last_epoch == 8 and resumed._step_count == 9
    for _ in range(10):
        opt.step(), sched.step(), new_opt.step(), resumed.step()
        assert [g["lr"] for g in new_opt.param_groups] == [g["lr"] for g in opt.param_groups]


def test_load_state_dict_names_what_is_wrong():
    sched = steplr.StepLR(make_optimizer(), 3, 0.5)
    good = sched.state_dict()
    with pytest.raises(ValueError, match=r"missing \['last_epoch'\]"):
        sched.load_state_dict({k: v for k, v in good.items() if k != "last_epoch"})
    torch_state = torch_sched.CyclicLR(make_optimizer(), 0.01, 0.1, cycle_momentum=False).state_dict()
    with pytest.raises(ValueError, match=r"torch scheduler's state_dict with parameters \['_scale_fn_custom'"):
        sched.load_state_dict(torch_state)
    with pytest.raises(ValueError, match=re.escape("unknown scheduler state format 'steplr.scheduler/99'")):
        sched.load_state_dict({**good, "format": "steplr.scheduler/99"})
    with pytest.raises(ValueError, match="checkpoint has 2 base_lrs but the optimizer has 1 param groups"):
        sched.load_state_dict({**good, "base_lrs": [0.1, 0.2]})


@pytest.mark.parametrize("bad", ["abc", 0, -3, 2.5, True])
def test_load_state_dict_checks_steps_per_epoch_like_the_constructor(bad):
    opt = make_optimizer((1.0,))
    sched = steplr.StepLR(opt, "2ep", 0.5, steps_per_epoch=4)
    opt.step()
    for _ in range(9):
        sched.step()
    good = sched.state_dict()
    with pytest.raises((TypeError, ValueError), match="steps_per_epoch must be a positive integer"):
        steplr.StepLR(make_optimizer(), "2ep", 0.5, steps_per_epoch=bad)
    with pytest.raises(ValueError, match=rf"checkpoint steps_per_epoch must be a positive integer, got {bad!r}$"):
        sched.load_state_dict({**good, "steps_per_epoch": bad})
    with pytest.raises(ValueError, match=re.escape("checkpoint base_lrs must be a list of numbers, got 1.0")):
        sched.load_state_dict({**good, "base_lrs": 1.0})
    assert sched.state_dict() == good and opt.param_groups[0]["lr"] == 0.5  # nothing changed (one decay at 8)
    sched.load_state_dict({**good, "steps_per_epoch": None})  # a schedule given in steps needs none
    assert sched.steps_per_epoch is None and sched.last_epoch == 9


def test_checkpoint_parameters_win_and_the_difference_is_reported():
    opt = make_optimizer((1.0,))
    old = steplr.StepLR(opt, 3, 0.5)
    opt.step()
    for _ in range(7):
        old.step()
    state = old.state_dict()
    new = steplr.StepLR(make_optimizer((1.0,)), 5, 0.1)
    with pytest.warns(
        UserWarning, match=r"gamma: constructor 0.1, checkpoint 0.5; step_size: constructor 5, checkpoint 3"
    ):
        new.load_state_dict(state)
    assert new.step_size == 3 and new.gamma == 0.5
    assert new.optimizer.param_groups[0]["lr"] == 0.25 and new.last_epoch == 7


def test_public_surface_is_pinned():
    assert sorted(steplr.__all__) == [
        "Constant",
        "ConstantLR",
        "Cosine",
        "CosineAnnealingLR",
        "CosineAnnealingWarmRestarts",
        "CyclicLR",
        "Exponential",
        "ExponentialLR",
        "LinearLR",
        "LinearWarmup",
        "MultiStep",
        "MultiStepLR",
        "OneCycleLR",
        "PolynomialLR",
        "Schedule",
        "ScheduleLR",
        "Sequence",
        "StepDecay",
        "StepLR",
        "compare",
        "join",
        "sweep",
    ]
    for name in steplr.__all__:
        assert callable(getattr(steplr, name)), name


def test_torch_attribute_names_are_there():
    pairs = [
        (steplr.MultiStepLR(make_optimizer(), [3, 6], 0.2), torch_sched.MultiStepLR(make_optimizer(), [3, 6], 0.2)),
        (steplr.ExponentialLR(make_optimizer(), 0.9), torch_sched.ExponentialLR(make_optimizer(), 0.9)),
        (
            steplr.CosineAnnealingLR(make_optimizer(), 12, 1e-4),
            torch_sched.CosineAnnealingLR(make_optimizer(), 12, 1e-4),
        ),
        (steplr.StepLR(make_optimizer(), 4, 0.3), torch_sched.StepLR(make_optimizer(), 4, 0.3)),
    ]
    for ours, theirs in pairs:
        for name in ("milestones", "gamma", "T_max", "eta_min", "step_size"):
            if hasattr(theirs, name):
                expected = getattr(theirs, name)
                expected = sorted(expected) if name == "milestones" else expected
                assert getattr(ours, name) == expected, name


# -- with other schedulers and hand-set values (issue 11): exact when alone, torch's chainable rule otherwise --


def run_twins(build, lr, steps=30, touch=None):
    """Build the same composition twice, ours (``build(opt, steplr)``) and torch's (``build(opt, torch_sched)``),
    on twin optimizers; step both and return the learning rates each step used. ``touch(opt, t)`` runs before
    each step on both (a hand-set value, a new param group, a plateau step)."""
    opts = make_optimizer((lr,)), make_optimizer((lr,))
    scheds = build(opts[0], steplr), build(opts[1], torch_sched)
    seen: tuple[list[list[float]], list[list[float]]] = ([], [])
    for t in range(steps):
        for opt, sched, out in zip(opts, scheds, seen):
            if touch is not None:
                touch(opt, t)
            out.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
    return seen


def assert_same_lrs(ours, theirs):
    assert len(ours) == len(theirs)
    for mine, torch_row in zip(ours, theirs):
        assert len(mine) == len(torch_row)
        for a, b in zip(mine, torch_row):
            if abs(b) >= SMALLEST_NORMAL:  # below, torch's product sticks at subnormals (see the underflow test)
                assert abs(a - b) <= 1e-12 * abs(b), (ours, theirs)


def test_chained_after_linear_lr_matches_torch():
    def build(opt, lib):
        return torch_sched.ChainedScheduler([torch_sched.LinearLR(opt, 0.25, total_iters=3), lib.StepLR(opt, 2, 0.5)])

    ours, theirs = run_twins(build, 1.0)
    assert [row[0] for row in theirs[:5]] == [0.25, 0.5, 0.375, 0.5, 0.25]
    assert_same_lrs(ours, theirs)


@parity
@given(step_size=st.integers(1, 7), gamma=st.floats(0.05, 0.99), exp_gamma=st.floats(0.5, 0.999))
def test_chained_with_exponential_lr_matches_torch(step_size, gamma, exp_gamma):
    def build(opt, lib):
        return torch_sched.ChainedScheduler(
            [lib.StepLR(opt, step_size, gamma), torch_sched.ExponentialLR(opt, exp_gamma)]
        )

    ours, theirs = run_twins(build, 0.1, steps=200)
    assert_same_lrs(ours, theirs)


def test_chained_step_and_exponential_row_of_the_issue():
    def build(opt, lib):
        return torch_sched.ChainedScheduler([lib.StepLR(opt, 2, 0.5), torch_sched.ExponentialLR(opt, 0.9)])

    ours, theirs = run_twins(build, 0.1, steps=4)
    assert [row[0] for row in ours] == pytest.approx([0.1, 0.09, 0.0405, 0.03645], rel=1e-12)
    assert_same_lrs(ours, theirs)


def test_plateau_cuts_are_kept_like_torch():
    plateaus = {}

    def build(opt, lib):
        plateaus[id(opt)] = torch_sched.ReduceLROnPlateau(opt, factor=0.1, patience=0)
        return lib.StepLR(opt, 3, 0.5)

    def touch(opt, t):
        plateaus[id(opt)].step(1.0)  # the loss never improves: the plateau cuts every step after the first

    ours, theirs = run_twins(build, 1.0, steps=6, touch=touch)
    assert_same_lrs(ours, theirs)
    lrs = [row[0] for row in ours]
    assert lrs[1] == 0.1 and all(b < a for a, b in itertools.pairwise(lrs))  # every cut kept, never undone


def test_a_hand_set_lr_then_decays_like_torch():
    def touch(opt, t):
        if t == 3:
            opt.param_groups[0]["lr"] = 0.02

    ours, theirs = run_twins(lambda opt, lib: lib.StepLR(opt, 2, 0.5), 0.1, steps=12, touch=touch)
    assert [row[0] for row in theirs[3:6]] == [0.02, 0.01, 0.01]
    assert_same_lrs(ours, theirs)


def test_a_hand_set_tensor_lr_is_scaled_in_place():
    lr = torch.tensor(0.1, dtype=torch.float64)
    opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
    sched = steplr.StepLR(opt, 2, 0.5)
    opt.step()
    sched.step()
    lr.fill_(0.02)  # by hand, in place
    for _ in range(3):
        sched.step()
    assert opt.param_groups[0]["lr"] is lr
    assert lr.item() == pytest.approx(0.005, rel=1e-15)


def test_alone_it_stays_the_exact_closed_form():
    opt = make_optimizer((0.1,))
    sched = steplr.ExponentialLR(opt, 0.999)
    opt.step()
    for _ in range(3000):
        sched.step()
    assert opt.param_groups[0]["lr"] == float(Fraction(0.1) * Fraction(0.999) ** 3000)


def test_a_param_group_added_later_decays_from_its_own_lr_like_torch():
    def touch(opt, t):
        if t == 3:
            opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": 0.04})

    ours, theirs = run_twins(lambda opt, lib: lib.StepLR(opt, 2, 0.5), 0.1, steps=12, touch=touch)
    assert theirs[-1][1] < 0.04
    assert_same_lrs(ours, theirs)


def test_missing_initial_lr_on_resume_is_a_key_error_too():
    with pytest.raises(KeyError) as info:
        steplr.StepLR(make_optimizer(), 3, last_epoch=5)
    assert isinstance(info.value, ValueError) and isinstance(info.value, steplr.errors.SteplrError)
    assert str(info.value).startswith("last_epoch=5 resumes a run, but param_groups[0] has no 'initial_lr'")


def test_repr_names_the_class_and_its_arguments():
    opt = make_optimizer()
    sched = steplr.StepLR(opt, 2, 0.5)
    opt.step()
    for _ in range(3):
        sched.step()
    assert repr(sched) == "StepLR(step_size=2, gamma=0.5, last_epoch=3)"
    assert (
        repr(steplr.MultiStepLR(make_optimizer(), [3, 6], 0.2))
        == "MultiStepLR(milestones=[3, 6], gamma=0.2, last_epoch=0)"
    )
    assert repr(steplr.ExponentialLR(make_optimizer(), 0.9)) == "ExponentialLR(gamma=0.9, last_epoch=0)"
    assert (
        repr(steplr.CosineAnnealingLR(make_optimizer(), 12, 1e-4))
        == "CosineAnnealingLR(T_max=12, eta_min=0.0001, last_epoch=0)"
    )
    assert repr(steplr.StepLR(make_optimizer(), "2ep", steps_per_epoch=3)) == (
        "StepLR(step_size=6, gamma=0.1, steps_per_epoch=3, last_epoch=0)"
    )
    schedule = steplr.StepDecay(4, 0.5)
    assert repr(steplr.ScheduleLR(make_optimizer(), schedule)) == f"ScheduleLR(schedule={schedule!r}, last_epoch=0)"


def test_load_state_dict_takes_step_count_like_torch():
    opt, torch_opt = make_optimizer(), make_optimizer()
    sched, theirs = steplr.StepLR(opt, 3, 0.5), torch_sched.StepLR(torch_opt, 3, 0.5)
    for _ in range(5):
        opt.step(), sched.step(), torch_opt.step(), theirs.step()
    assert sched._step_count == theirs.state_dict()["_step_count"] == 6
    state = {**sched.state_dict(), "_step_count": 6}
    fresh = steplr.StepLR(make_optimizer(), 3, 0.5)
    fresh.load_state_dict(state)
    assert fresh._step_count == 6 and fresh.last_epoch == 5
    older = steplr.StepLR(make_optimizer(), 3, 0.5)
    older.load_state_dict({k: v for k, v in state.items() if k != "_step_count"})  # a state dict from before
    assert older.last_epoch == 5 and older.optimizer.param_groups[0]["lr"] == 0.05
    with pytest.raises(ValueError, match="checkpoint _step_count must be a non-negative integer, got -1"):
        older.load_state_dict({**state, "_step_count": -1})
