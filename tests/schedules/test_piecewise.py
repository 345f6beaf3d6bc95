"""The lookup table behind the Keras and JAX adapters: exact up to the horizon, held after it, exact for good once
the schedule has settled; and the core never imports Keras or JAX."""

from __future__ import annotations

import doctest
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import steplr.schedules.piecewise as piecewise_module
from steplr.schedules.cycles import CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.kinds import (
    Constant,
    ConstantFactor,
    Cosine,
    Exponential,
    Linear,
    LinearWarmup,
    MultiStep,
    PolynomialDecay,
    StepDecay,
    join,
)
from steplr.schedules.piecewise import MAX_ENTRIES, piecewise

gammas = st.floats(0.05, 1.0)
steps = st.integers(1, 40)
simple = st.one_of(
    st.builds(StepDecay, steps, gammas),
    st.builds(MultiStep, st.lists(st.integers(1, 300), min_size=1, max_size=5, unique=True).map(sorted), gamma=gammas),
    st.builds(Exponential, st.floats(0.5, 1.0)),
    st.builds(Cosine, steps, st.sampled_from([0.0, 1e-4])),
    st.just(Constant()),
    st.builds(ConstantFactor, st.floats(0.0, 1.0), steps),
    st.builds(Linear, st.floats(0.0, 1.0), st.floats(0.0, 1.0), steps),
    st.builds(PolynomialDecay, steps, st.floats(0.5, 3.0)),
    st.builds(CosineWarmRestarts, steps, st.integers(1, 3)),
    st.builds(OneCycle, st.integers(3, 300), st.sampled_from([0.25, 0.5]), st.sampled_from(["cos", "linear"])),
    st.builds(Cyclic, st.floats(0.0, 2.0), steps, st.none() | steps, st.sampled_from(["triangular", "triangular2"])),
)
schedules = st.one_of(
    simple,
    st.builds(lambda w, s: join([LinearWarmup(w, 0.1), s], [w]), steps, simple),
    st.builds(lambda a, b, cut: join([a, b], [cut]), simple, simple, st.integers(1, 200)),
)


@settings(max_examples=150, deadline=None)
@given(schedules, st.floats(1e-4, 10.0), st.integers(0, 2000))
def test_the_table_gives_the_schedules_rate_at_every_step_up_to_the_horizon(schedule, base_lr, max_steps):
    table = piecewise(schedule, base_lr, max_steps)
    t = np.arange(max_steps + 1)
    assert np.array_equal(table.lr(t), schedule.lr(base_lr, t))
    assert table.starts[0] == 0 and np.all(np.diff(table.starts) > 0) and table.starts[-1] <= max_steps
    assert np.all(table.values[1:] != table.values[:-1])  # no two neighbouring stretches of one rate
    after = np.arange(max_steps + 1, max_steps + 400)
    assert np.all(table.lr(after) == schedule.lr(base_lr, max_steps))  # after the horizon: held
    if table.settled:  # ... and then that is the schedule's rate
        assert np.array_equal(table.lr(after), schedule.lr(base_lr, after))


def test_step_decay_is_a_few_stretches_however_far_the_horizon():
    schedule = StepDecay(10, 0.5)
    table = piecewise(schedule, 0.1, max_steps=10**12)
    assert table.settled and len(table.starts) < 1100  # 0.0 after ~1074 decays, for good
    t = np.array([0, 9, 10, 10_739, 10_740, 10**6, 10**9, 10**12, 10**15])
    assert np.array_equal(table.lr(t), schedule.lr(0.1, t))
    assert table.lr(10**15)[()] == 0.0


def test_after_the_horizon_an_unsettled_schedule_holds_the_rate_of_the_horizon():
    cosine, multistep = Cosine(100), MultiStep([50, 5000], 0.1)
    for schedule in (cosine, multistep):
        table = piecewise(schedule, 1.0, max_steps=1000)
        assert not table.settled
        assert table.lr(1001)[()] == table.lr(10**9)[()] == schedule.lr(1.0, 1000)
    assert piecewise(multistep, 1.0, max_steps=1000).lr(6000)[()] != multistep.lr(1.0, 6000)  # not exact there
    assert piecewise(multistep, 1.0, max_steps=5000).settled  # a horizon past the last milestone is exact


def test_a_schedule_that_changes_every_step_has_one_entry_per_step_until_it_settles():
    assert len(piecewise(Exponential(0.999), 1.0, max_steps=10_000).starts) == 10_001
    assert len(piecewise(LinearWarmup(100, 0.1), 1.0, max_steps=10**9).starts) == 101
    assert len(piecewise(PolynomialDecay(50, 2.0), 1.0, max_steps=10**9).starts) == 51
    assert len(piecewise(OneCycle(1000), 1.0, max_steps=10**9).starts) == 1000  # the last step's rate from then on
    assert len(piecewise(Exponential(0.5), 1.0, max_steps=10**9).starts) == 1076  # 2**-1075 rounds to 0.0


def test_long_runs_of_decays_are_walked_to_the_same_rates():
    for schedule in (Exponential(0.9999), StepDecay(3, 0.99), join([Cosine(7), Exponential(0.999)], [20])):
        table = piecewise(schedule, 0.3, max_steps=50_000)
        t = np.arange(50_001)
        assert np.array_equal(table.lr(t), schedule.lr(0.3, t))


def test_float32_rounds_each_rate_once_and_merges_equal_neighbours():
    table = piecewise(Exponential(1 - 1e-9), 1.0, max_steps=1000)  # float64 rates all differ, float32 ones do not
    starts, values = table.float32()
    assert len(table.starts) == 1001 and values.dtype == np.float32 and np.all(values[1:] != values[:-1])
    t = np.arange(1001)
    index = np.searchsorted(starts, t, side="right") - 1
    assert np.array_equal(values[index], table.lr(t).astype(np.float32))


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("step", 0.1), TypeError, "schedule must be a steplr Schedule, got 'step'"),
        ((StepDecay(np.array([1, 2])), 0.1), ValueError, "not a table of them"),
        ((StepDecay(2), 0.0), ValueError, "base_lr must be a finite number > 0, got 0.0"),
        ((StepDecay(2), float("inf")), ValueError, "base_lr must be a finite number > 0, got inf"),
        ((StepDecay(2), True), ValueError, "base_lr must be a finite number > 0, got True"),
        ((StepDecay(2), 0.1, -1), ValueError, "max_steps must be an integer >= 0, got -1"),
        ((StepDecay(2), 0.1, 2.5), ValueError, "max_steps must be an integer >= 0, got 2.5"),
        ((StepDecay("5ep"), 0.1), ValueError, "steps_per_epoch"),
        ((Exponential(1.5), 1.0, 2000), ValueError, "overflows to inf at step 1751"),
        ((Cosine(10), 1.0, MAX_ENTRIES), ValueError, "needs more than 33,554,432 table entries"),
    ],
)
def test_bad_arguments_are_named(args, error, message):
    with pytest.raises(error, match=message):
        piecewise(*args)


def test_docstring_examples():
    result = doctest.testmod(piecewise_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_core_never_imports_keras_jax_or_optax():
    code = textwrap.dedent(
        """
        import sys
        import steplr, steplr.schedules, steplr.schedules.piecewise, steplr.lr_scheduler
        print(sorted(m for m in sys.modules if m.partition(".")[0] in ("keras", "jax", "jaxlib", "optax")))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
