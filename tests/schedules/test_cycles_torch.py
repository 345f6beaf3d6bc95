"""torch's closed-form family as steplr kinds, against torch itself: the rates torch's schedulers write into a real
optimizer over 10,000 steps, and an exact evaluation (fractions, mpmath) of the same definition.

Where steplr and torch differ by more than 1e-12 (relative), the test shows that torch's own rounding accounts for
it: at those steps steplr is within a few ulps of the exact value and torch is not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from steplr.schedules.cycles import CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.kinds import ConstantFactor, Linear, Schedule

N = 10_000
S = torch.optim.lr_scheduler
mpmath.mp.prec = 113


def torch_rates(make: Callable[[torch.optim.Optimizer], object], lr: float, steps: int = N) -> list[float]:
    """The LR torch's scheduler sets at steps 0..steps-1, stepping it on an SGD optimizer with momentum."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    scheduler = make(optimizer)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps - 1):  # no step past the last one asked for (OneCycleLR's step total_steps may divide by 0)
        optimizer.step()
        scheduler.step()  # type: ignore[attr-defined]
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def linear_exact(s: float, e: float, total: int, base: float) -> Callable[[int], Fraction]:
    return lambda t: Fraction(base) * (Fraction(s) + (Fraction(e) - Fraction(s)) * Fraction(min(t, total), total))


def constant_exact(factor: float, total: int, base: float) -> Callable[[int], Fraction]:
    return lambda t: Fraction(base) * Fraction(factor) if t < total else Fraction(base)


def restarts_exact(t_0: int, t_mult: int, eta_min: float, base: float) -> Callable[[int], mpmath.mpf]:
    def rate(t: int) -> mpmath.mpf:
        start, length = 0, t_0
        while start + length <= t:  # the cycles one by one, as the definition lists them
            start += length
            length *= t_mult
        half = (1 + mpmath.cos(mpmath.pi * (t - start) / length)) / 2
        return mpmath.mpf(eta_min) + (mpmath.mpf(base) - mpmath.mpf(eta_min)) * half

    return rate


def one_cycle_exact(total: int, pct: float, strategy: str, div: float, final: float, three: bool, base: float):
    """torch's phases (their float ends, its initial and final rates as floats), the anneal evaluated exactly."""
    initial = base / div
    floor = initial / final
    if three:
        phases = [
            (float(pct * total) - 1, initial, base),
            (float(2 * pct * total) - 2, base, initial),
            (total - 1, initial, floor),
        ]
    else:
        phases = [(float(pct * total) - 1, initial, base), (total - 1, base, floor)]

    def rate(t: int) -> mpmath.mpf:
        start = 0.0
        for i, (end, a, b) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                p = (mpmath.mpf(t) - mpmath.mpf(start)) / (mpmath.mpf(end) - mpmath.mpf(start))
                if strategy == "cos":
                    return mpmath.mpf(b) + (mpmath.mpf(a) - mpmath.mpf(b)) * (1 + mpmath.cos(mpmath.pi * p)) / 2
                return (mpmath.mpf(b) - mpmath.mpf(a)) * p + mpmath.mpf(a)
            start = end
        raise AssertionError

    return rate


def cyclic_exact(max_lr: float, up: int, down: int, mode: str, gamma: float, base: float):
    def rate(t: int) -> mpmath.mpf:
        n, cycle = t % (up + down), t // (up + down) + 1
        climb = Fraction(n, up) if n <= up else Fraction(up + down - n, down)
        scale = {"triangular": 1, "triangular2": mpmath.mpf(2) ** (1 - cycle), "exp_range": mpmath.mpf(gamma) ** t}
        height = (mpmath.mpf(max_lr) - mpmath.mpf(base)) * mpmath.mpf(climb.numerator) / climb.denominator
        return mpmath.mpf(base) + height * scale[mode]

    return rate


CASES: dict[str, tuple[Callable[[torch.optim.Optimizer], object], Schedule, float, Callable[[int], object]]] = {
    "linear-down": (
        lambda o: S.LinearLR(o, 0.25, 0.0, 7000),
        Linear(0.25, 0.0, 7000),
        0.1,
        linear_exact(0.25, 0.0, 7000, 0.1),
    ),
    "linear-up": (
        lambda o: S.LinearLR(o, 1 / 3, 1.0, 10),
        Linear(1 / 3, 1.0, 10),
        0.3,
        linear_exact(1 / 3, 1.0, 10, 0.3),
    ),
    "constant-factor": (
        lambda o: S.ConstantLR(o, 1 / 3, 4000),
        ConstantFactor(1 / 3, 4000),
        0.1,
        constant_exact(1 / 3, 4000, 0.1),
    ),
    "restarts-double": (
        lambda o: S.CosineAnnealingWarmRestarts(o, 10, 2, 1e-4),
        CosineWarmRestarts(10, 2, 1e-4),
        0.1,
        restarts_exact(10, 2, 1e-4, 0.1),
    ),
    "restarts-equal": (
        lambda o: S.CosineAnnealingWarmRestarts(o, 1000),
        CosineWarmRestarts(1000),
        0.1,
        restarts_exact(1000, 1, 0.0, 0.1),
    ),
    "onecycle-cos": (
        lambda o: S.OneCycleLR(o, 0.1, total_steps=N),
        OneCycle(N),
        0.1,
        one_cycle_exact(N, 0.3, "cos", 25.0, 1e4, False, 0.1),
    ),
    "onecycle-linear-three-phase": (
        lambda o: S.OneCycleLR(o, 0.1, total_steps=N, pct_start=0.25, anneal_strategy="linear", three_phase=True),
        OneCycle(N, 0.25, "linear", three_phase=True),
        0.1,
        one_cycle_exact(N, 0.25, "linear", 25.0, 1e4, True, 0.1),
    ),
    "onecycle-odd-ends": (
        lambda o: S.OneCycleLR(o, 2.0, total_steps=N - 7, pct_start=0.33, div_factor=7.0, final_div_factor=300.0),
        OneCycle(N - 7, 0.33, div_factor=7.0, final_div_factor=300.0),
        2.0,
        one_cycle_exact(N - 7, 0.33, "cos", 7.0, 300.0, False, 2.0),
    ),
    "cyclic": (
        lambda o: S.CyclicLR(o, 0.001, 0.1, step_size_up=7, step_size_down=13),
        Cyclic(0.1, 7, 13),
        0.001,
        cyclic_exact(0.1, 7, 13, "triangular", 1.0, 0.001),
    ),
    "cyclic-triangular2": (
        lambda o: S.CyclicLR(o, 0.001, 0.1, step_size_up=50, mode="triangular2"),
        Cyclic(0.1, 50, mode="triangular2"),
        0.001,
        cyclic_exact(0.1, 50, 50, "triangular2", 1.0, 0.001),
    ),
    "cyclic-exp-range": (
        lambda o: S.CyclicLR(o, 0.001, 0.1, step_size_up=25, mode="exp_range", gamma=0.9995),
        Cyclic(0.1, 25, mode="exp_range", gamma=0.9995),
        0.001,
        cyclic_exact(0.1, 25, 25, "exp_range", 0.9995, 0.001),
    ),
}


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    scale = np.maximum(np.abs(a), np.abs(b))
    return np.where(scale > 0, np.abs(a - b) / np.where(scale > 0, scale, 1.0), 0.0)


@pytest.mark.parametrize("name", list(CASES))
def test_each_kind_is_torchs_scheduler_over_ten_thousand_steps(name):
    make, ours, base, exact_rate = CASES[name]
    steps = min(N, ours.total_steps) if isinstance(ours, OneCycle) else N  # torch raises past total_steps
    theirs = np.array(torch_rates(make, base, steps))
    mine = np.asarray(ours.lr(base, np.arange(steps)))
    assert mine.tolist() == [ours.lr(base, t) for t in range(steps)]  # one formula for scalars and arrays
    exact = np.array([float(exact_rate(t)) for t in range(steps)])
    ours_error, torch_error = _relative(mine, exact), _relative(theirs, exact)
    assert ours_error.max() <= 2e-15, (name, ours_error.max())  # a few ulps at every step
    apart = _relative(mine, theirs)
    # torch's own rounding accounts for every difference above 1e-12
    assert (apart <= np.maximum(1e-12, torch_error + 2e-15)).all(), (name, apart.max(), torch_error.max())


def test_where_torch_loses_digits_steplr_keeps_them():
    """At the foot of a long restart cycle and the end of a one-cycle anneal, torch's 1 + cos cancels: its rates
    are off by more than 1e-12 there, and steplr's are not (the figures the parity test allows for)."""
    for name in ("restarts-equal", "onecycle-cos"):
        make, ours, base, exact_rate = CASES[name]
        theirs = np.array(torch_rates(make, base))
        exact = np.array([float(exact_rate(t)) for t in range(N)])
        assert _relative(theirs, exact).max() > 1e-12
        assert _relative(np.asarray(ours.lr(base, np.arange(N))), exact).max() < 1e-14


@settings(max_examples=40, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    ratio=st.floats(1.5, 100.0),
    up=st.integers(1, 40),
    down=st.none() | st.integers(1, 40),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.9, 1.0),
)
def test_cyclic_follows_torch_for_any_settings(lr, ratio, up, down, mode, gamma):
    theirs = torch_rates(
        lambda o: S.CyclicLR(o, lr, lr * ratio, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma),
        lr,
        steps=300,
    )
    ours = Cyclic(lr * ratio, up, down, mode, gamma)
    assert [ours.lr(lr, t) for t in range(300)] == pytest.approx(theirs, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    total=st.integers(2, 400),
    pct=st.floats(0.0, 1.0),
    strategy=st.sampled_from(["cos", "linear"]),
    div=st.floats(1.0, 100.0),
    final=st.floats(1.0, 1e4),
    three=st.booleans(),
)
def test_one_cycle_follows_torch_for_any_settings(lr, total, pct, strategy, div, final, three):
    if pct * total == 1.0:
        return  # torch divides by zero at step 0; steplr refuses it (tested with the checks)
    ours = OneCycle(total, pct, strategy, div, final, three)
    theirs = torch_rates(
        lambda o: S.OneCycleLR(
            o,
            lr,
            total_steps=total,
            pct_start=pct,
            anneal_strategy=strategy,
            div_factor=div,
            final_div_factor=final,
            three_phase=three,
        ),
        lr,
        steps=total,
    )
    exact = one_cycle_exact(total, pct, strategy, div, final, three, lr)
    for t, theirs_t in enumerate(theirs):
        ours_t, exact_t = ours.lr(lr, t), float(exact(t))
        assert ours_t == pytest.approx(exact_t, rel=4e-15, abs=1e-300)
        assert ours_t == pytest.approx(theirs_t, rel=max(1e-12, 2 * abs(theirs_t - exact_t) / abs(exact_t)))


@settings(max_examples=40, deadline=None)
@given(lr=st.floats(1e-4, 1.0), t_0=st.integers(1, 30), t_mult=st.integers(1, 4), eta_min=st.floats(0.0, 1e-3))
def test_restarts_follow_torch_for_any_settings(lr, t_0, t_mult, eta_min):
    theirs = torch_rates(lambda o: S.CosineAnnealingWarmRestarts(o, t_0, t_mult, eta_min), lr, steps=500)
    ours = CosineWarmRestarts(t_0, t_mult, eta_min)
    exact = restarts_exact(t_0, t_mult, eta_min, lr)
    for t, theirs_t in enumerate(theirs):
        ours_t, exact_t = ours.lr(lr, t), float(exact(t))
        assert ours_t == pytest.approx(exact_t, rel=4e-15, abs=1e-300)
        assert ours_t == pytest.approx(theirs_t, rel=max(1e-12, 2 * abs(theirs_t - exact_t) / exact_t), abs=1e-300)


@settings(max_examples=40, deadline=None)
@given(lr=st.floats(1e-4, 1.0), start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0), total=st.integers(1, 60))
def test_linear_and_constant_factor_follow_torch_for_any_settings(lr, start, end, total):
    linear = torch_rates(lambda o: S.LinearLR(o, start, end, total), lr, steps=total + 5)
    constant = torch_rates(lambda o: S.ConstantLR(o, start, total), lr, steps=total + 5)
    for t in range(total + 5):
        assert Linear(start, end, total).lr(lr, t) == pytest.approx(linear[t], rel=1e-12, abs=1e-15 * lr)
        assert ConstantFactor(start, total).lr(lr, t) == pytest.approx(constant[t], rel=1e-12)
        assert math.isclose(ConstantFactor(start, total).lr(lr, t), lr * start if t < total else lr)
