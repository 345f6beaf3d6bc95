"""steplr.optax under jax.jit on the CPU: the schedule's exact rates rounded once to float32 at every step up to a
million (where float32 ``gamma ** k`` drifts), and an optax optimizer that trains with them."""

from __future__ import annotations

import doctest
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

import steplr.optax  # noqa: E402
from steplr.schedules.kinds import Cosine, Exponential, LinearWarmup, MultiStep, StepDecay, join  # noqa: E402
from steplr.schedules.piecewise import piecewise  # noqa: E402

MILLION = 10**6


@pytest.mark.parametrize(
    "sched",
    [
        pytest.param(StepDecay(10, 0.5), id="step"),
        pytest.param(Cosine(1000), id="cosine"),
        pytest.param(MultiStep([30_000, 600_000, 900_000], 0.1), id="multistep"),
        # ~15 s on two busy cores, most of it the reference (a million exact powers); the next test is its fast form
        pytest.param(Exponential(0.9999), id="exponential", marks=pytest.mark.integration),
    ],
)
def test_every_step_up_to_a_million_under_jit(sched):
    lr = jax.jit(steplr.optax.schedule(sched, base_lr=0.1))
    got = np.asarray(lr(jnp.arange(MILLION + 1)))
    assert got.dtype == np.float32
    assert np.array_equal(got, np.float32(sched.lr(0.1, np.arange(MILLION + 1))))


def test_exponential_at_every_seventh_step_up_to_a_million_under_jit():
    sched = Exponential(0.9999)
    t = np.r_[np.arange(0, MILLION - 1000, 7), np.arange(MILLION - 1000, MILLION + 1)]
    got = np.asarray(jax.jit(steplr.optax.schedule(sched, base_lr=0.1))(jnp.asarray(t)))
    assert np.array_equal(got, np.float32(sched.lr(0.1, t)))


def test_float32_powers_would_drift_where_the_lookup_does_not():
    # What the test above guards against: 0.1 * 0.9999 ** k in float32 is off by many ulps after a million steps.
    k = np.arange(0, MILLION + 1, 1000)
    naive = np.asarray(jnp.float32(0.1) * jnp.float32(0.9999) ** jnp.asarray(k, dtype=jnp.float32))
    exact = np.float32(Exponential(0.9999).lr(0.1, k))
    assert np.max(np.abs(naive.view(np.int32) - exact.view(np.int32))) > 4


schedules = st.one_of(
    st.builds(StepDecay, st.integers(1, 50), st.floats(0.05, 1.0)),
    st.builds(Exponential, st.floats(0.99, 1.0)),
    st.builds(Cosine, st.integers(1, 3000), st.sampled_from([0.0, 1e-5])),
    st.builds(
        lambda w, s, g: join([LinearWarmup(w, 0.1), StepDecay(s, g)], [w]),
        st.integers(1, 500),
        st.integers(1, 50),
        st.floats(0.05, 1.0),
    ),
)


@settings(max_examples=10, deadline=None)  # each example compiles anew (~0.5 s)
@given(schedules, st.floats(1e-4, 1.0), st.lists(st.integers(0, 5000), min_size=1, max_size=50))
def test_scalar_counts_vmap_and_the_horizon(sched, base_lr, steps):
    lr = steplr.optax.schedule(sched, base_lr, max_steps=5000)
    jitted = jax.jit(lr)
    t = np.asarray(steps)
    expected = np.float32(sched.lr(base_lr, t))
    assert np.array_equal(np.asarray(jax.vmap(jitted)(jnp.asarray(t))), expected)
    assert float(lr(int(t[0]))) == expected[0]  # a Python int, not traced
    after = 7000 if piecewise(sched, base_lr, 5000).settled else 5000  # settled: exact; else the horizon's rate
    assert float(jitted(7000)) == np.float32(sched.lr(base_lr, after))


def test_after_the_horizon_the_rate_is_held_or_exact_when_settled():
    cosine = steplr.optax.schedule(Cosine(100), 1.0, max_steps=150)
    assert float(cosine(151)) == float(cosine(10**9)) == np.float32(Cosine(100).lr(1.0, 150))
    held = steplr.optax.schedule(StepDecay(10, 0.5), 0.1, max_steps=1000)
    assert float(held(2**31 - 1)) == float(held(1000)) == np.float32(0.1 * 0.5**100)
    settled = steplr.optax.schedule(StepDecay(10, 0.5), 0.1, max_steps=20_000)  # 0.0 from step 10720 on: exact
    assert float(settled(2**31 - 1)) == 0.0 and float(settled(995)) == np.float32(0.1 * 0.5**99)
    beyond = np.asarray(settled(np.array([995, 2**40])))  # concrete steps past int32: clamped, not wrapped
    assert float(settled(2**40)) == 0.0 and beyond.tolist() == [np.float32(0.1 * 0.5**99), 0.0]


def _loss(params, x, y):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def test_an_optax_optimizer_trains_with_the_schedules_rate_at_every_step():
    sched, base_lr = StepDecay(10, 0.5), 0.1
    optimizer = optax.sgd(learning_rate=steplr.optax.schedule(sched, base_lr))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 4)), dtype=jnp.float32)
    y = x @ jnp.array([1.0, -2.0, 0.5, 3.0]) + 0.1
    params = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(_loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss, grads, updates

    losses = []
    for i in range(40):
        params, state, loss, grads, updates = step(params, state)
        losses.append(float(loss))
        rate = np.float32(sched.lr(base_lr, i))  # plain SGD: the update is -lr * gradient, in float32
        for name in ("w", "b"):
            assert np.array_equal(np.asarray(updates[name]), np.asarray(grads[name]) * -rate)
    assert losses[-1] < 0.01 * losses[0]


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="sched must be a steplr Schedule, got 'step'"):
        steplr.optax.schedule("step", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_steps must be at most 2\\*\\*31 - 1"):
        steplr.optax.schedule(StepDecay(2), 0.1, max_steps=2**31)
    with pytest.raises(ValueError, match="base_lr must be a finite number > 0, got nan"):
        steplr.optax.schedule(StepDecay(2), float("nan"))


def test_docstring_examples():
    result = doctest.testmod(steplr.optax, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_without_jax_the_import_names_the_extra():
    code = textwrap.dedent(
        """
        import sys

        class NoJax:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "jax":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoJax())
        try:
            import steplr.optax
        except ImportError as error:
            print(type(error).__name__, error)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "MissingExtraError jax is not installed: pip install 'steplr[jax]'"
