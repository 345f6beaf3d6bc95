"""steplr.keras on Keras 3's torch backend (no TensorFlow): the schedule's exact rates rounded once to float32,
through the config round trip, a saved ``.keras`` model and ``model.fit``."""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"  # before Keras is first imported; these tests need no TensorFlow

import doctest
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")
import steplr.keras  # noqa: E402
from steplr.schedules.kinds import Cosine, Exponential, LinearWarmup, MultiStep, StepDecay, join  # noqa: E402

if keras.backend.backend() != "torch":  # Keras was imported earlier in this process with another backend
    pytest.skip(f"these tests run Keras on torch, not {keras.backend.backend()}", allow_module_level=True)

schedules = st.one_of(
    st.builds(StepDecay, st.integers(1, 50), st.floats(0.05, 1.0)),
    st.builds(
        MultiStep, st.lists(st.integers(1, 5000), min_size=1, max_size=4, unique=True).map(sorted), st.floats(0.05, 1.0)
    ),
    st.builds(Exponential, st.floats(0.99, 1.0)),
    st.builds(Cosine, st.integers(1, 3000), st.sampled_from([0.0, 1e-5])),
    st.builds(
        lambda w, s, g: join([LinearWarmup(w, 0.1), StepDecay(s, g)], [w]),
        st.integers(1, 500),
        st.integers(1, 50),
        st.floats(0.05, 1.0),
    ),
)


def _rates(schedule: steplr.keras.Schedule, steps: np.ndarray) -> np.ndarray:
    # torch's tensor.numpy(): keras.ops.convert_to_numpy goes through np.array(tensor), which warns under NumPy 2
    return np.asarray(schedule(keras.ops.convert_to_tensor(steps)).cpu().numpy())


@settings(max_examples=60, deadline=None)
@given(schedules, st.floats(1e-4, 1.0), st.lists(st.integers(0, 10_000), min_size=1, max_size=200))
def test_rates_are_the_exact_rates_rounded_once_to_float32(sched, base_lr, steps):
    lr = steplr.keras.schedule(sched, base_lr, max_steps=10_000)
    t = np.asarray(steps, dtype=np.int64)
    got = _rates(lr, t)
    assert got.dtype == np.float32
    assert np.array_equal(got, np.float32(sched.lr(base_lr, t)))


@pytest.mark.parametrize("sched", [StepDecay(10, 0.5), Cosine(1000), MultiStep([30_000, 600_000], 0.1)])
def test_every_step_up_to_a_million(sched):
    lr = steplr.keras.schedule(sched, 0.1)
    t = np.arange(10**6 + 1)
    assert np.array_equal(_rates(lr, t), np.float32(sched.lr(0.1, t)))


def test_a_scalar_step_and_the_optimizers_iteration_variable():
    lr = steplr.keras.schedule(StepDecay(10, 0.5), base_lr=0.1)
    assert float(lr(25)) == np.float32(0.025)
    assert float(lr(2**40)) == 0.0  # settled: 0.0 from step 10720 on
    held = steplr.keras.schedule(Cosine(100), base_lr=0.1, max_steps=150)
    assert float(held(151)) == float(held(2**40)) == np.float32(Cosine(100).lr(0.1, 150))  # after the horizon
    optimizer = keras.optimizers.SGD(learning_rate=lr)
    optimizer.iterations.assign(30)
    assert float(optimizer.learning_rate) == np.float32(0.0125)


def test_the_config_round_trips_through_keras_serialization():
    sched = join([LinearWarmup(5, 0.1), StepDecay(10, 0.5)], [5])
    lr = steplr.keras.schedule(sched, 0.2, max_steps=500)
    config = lr.get_config()
    assert config == {"schedule": sched.params(), "base_lr": 0.2, "max_steps": 500}
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(lr))
    assert isinstance(again, steplr.keras.Schedule) and again.get_config() == config
    t = np.arange(600)
    assert np.array_equal(_rates(again, t), _rates(lr, t))


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32) + 0.1)[:, None]
    return x, y


def _model(lr: steplr.keras.Schedule) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


class _Rates(keras.callbacks.Callback):  # type: ignore[misc]
    """The optimizer's learning rate before each batch, with the iteration it is for."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, float]] = []

    def on_train_batch_begin(self, batch: int, logs: object = None) -> None:
        optimizer = self.model.optimizer
        self.seen.append((int(optimizer.iterations), float(optimizer.learning_rate)))


def test_model_fit_trains_with_the_schedules_rate_at_every_iteration():
    sched = StepDecay(6, 0.5)
    lr = steplr.keras.schedule(sched, 0.05)
    model, rates = _model(lr), _Rates()
    x, y = _data()
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0, callbacks=[rates])
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert [i for i, _ in rates.seen] == list(range(24))  # 4 batches an epoch
    assert [r for _, r in rates.seen] == [float(np.float32(sched.lr(0.05, i))) for i in range(24)]


# Saving reads the weights with keras.ops.convert_to_numpy, whose np.array(tensor) warns under NumPy 2 (Keras' code)
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_a_saved_model_loads_back_with_the_schedule(tmp_path):
    sched = MultiStep([3, 7], 0.1)
    model = _model(steplr.keras.schedule(sched, 0.05, max_steps=100))
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    lr = loaded.optimizer._learning_rate  # the schedule object itself (``learning_rate`` is its current value)
    assert isinstance(lr, steplr.keras.Schedule)
    assert lr.get_config() == {"schedule": sched.params(), "base_lr": 0.05, "max_steps": 100}
    assert int(loaded.optimizer.iterations) == 4
    assert float(loaded.optimizer.learning_rate) == np.float32(sched.lr(0.05, 4))
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert float(loaded.optimizer.learning_rate) == np.float32(sched.lr(0.05, 8))


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="sched must be a steplr Schedule, got 'step'"):
        steplr.keras.schedule("step", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_lr must be a finite number > 0, got -1"):
        steplr.keras.schedule(StepDecay(2), -1)
    with pytest.raises(ValueError, match="max_steps must be an integer >= 0, got -5"):
        steplr.keras.schedule(StepDecay(2), 0.1, max_steps=-5)


def test_docstring_examples():
    result = doctest.testmod(steplr.keras, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_without_keras_the_import_names_the_extra():
    code = textwrap.dedent(
        """
        import sys

        class NoKeras:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "keras":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoKeras())
        try:
            import steplr.keras
        except ImportError as error:
            print(type(error).__name__, error)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "MissingExtraError keras is not installed: pip install 'steplr[keras]'"


def test_a_missing_keras_backend_is_named():
    code = textwrap.dedent(
        """
        import os, sys

        os.environ["KERAS_BACKEND"] = "tensorflow"

        class NoTensorflow:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "tensorflow":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoTensorflow())
        try:
            import steplr.keras
        except ImportError as error:
            print(type(error).__name__, error)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().startswith(
        "KerasBackendError Keras' backend tensorflow is not installed: set KERAS_BACKEND"
    )


def test_the_same_rates_and_training_on_the_jax_backend():
    pytest.importorskip("jax")
    code = textwrap.dedent(
        """
        import os, warnings

        os.environ["KERAS_BACKEND"] = "jax"
        warnings.simplefilter("error")
        import numpy as np, keras, steplr.keras
        from steplr.schedules.kinds import Exponential, StepDecay

        assert keras.backend.backend() == "jax"
        t = np.arange(10**5 + 1)
        for sched in (StepDecay(10, 0.5), Exponential(0.9999)):
            lr = steplr.keras.schedule(sched, 0.1, max_steps=10**5)
            assert np.array_equal(np.asarray(lr(keras.ops.convert_to_tensor(t))), np.float32(sched.lr(0.1, t)))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32")
        y = x @ np.float32([1.0, -2.0, 0.5, 3.0])[:, None]
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(learning_rate=steplr.keras.schedule(StepDecay(8, 0.5), 0.05)), "mse")
        losses = model.fit(x, y, batch_size=16, epochs=6, verbose=0).history["loss"]
        assert losses[-1] < 0.5 * losses[0], losses
        assert float(model.optimizer.learning_rate) == np.float32(StepDecay(8, 0.5).lr(0.05, 24))
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
