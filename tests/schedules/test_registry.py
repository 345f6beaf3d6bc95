"""The schedule registry, the schedule spec and LR tables: one list of kinds that everything else is made from."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from steplr.cli.main import build_parser
from steplr.errors import SteplrValueError
from steplr.schedules.kinds import (
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    MultiStep,
    PolynomialDecay,
    Sequence,
    StepDecay,
)
from steplr.schedules.registry import KINDS, RunShape, compared, lookup, names, params_by_name
from steplr.schedules.spec import ScheduleSpec
from steplr.schedules.table import lr_table
from steplr.training.config import TrainConfig


def test_names_come_from_the_entries_with_synonyms_and_the_reactive_kind():
    assert names()[:8] == ("none", "constant", "step", "multistep", "exponential", "cosine", "plateau", "polynomial")
    assert "plateau" not in names(reactive=False)
    assert compared()[:6] == ("none", "step", "multistep", "exponential", "cosine", "plateau")
    assert lookup("constant") is lookup("none")
    assert lookup("plateau").reactive and not lookup("step").reactive
    with pytest.raises(SteplrValueError, match="unknown schedule 'lineal'; expected one of none, constant, step"):
        lookup("lineal")
    with pytest.raises(SteplrValueError, match="'plateau' reacts to the loss and has no closed form"):
        lookup("plateau", reactive=False)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ScheduleSpec("none"), Constant()),
        (ScheduleSpec("constant"), Constant()),
        (ScheduleSpec("step", {"step_size": "2ep", "gamma": 0.5}), StepDecay(6, 0.5)),
        (ScheduleSpec("multistep", {"milestones": ["1ep", 7]}), MultiStep([3, 7], 0.1)),
        (ScheduleSpec("exponential", {"gamma": 0.9}), Exponential(0.9)),
        (ScheduleSpec("cosine", {"eta_min": 0.01}), Cosine(12, 0.01)),  # t_max: the whole run of 4 x 3 steps
        (ScheduleSpec("cosine", {"t_max": "1ep"}), Cosine(3, 0.0)),
        (ScheduleSpec("polynomial", {"power": 2.0}), PolynomialDecay(12, 2.0)),  # total: the whole run
    ],
)
def test_a_spec_builds_its_kind_resolved_in_steps(spec, expected):
    assert spec.build(epochs=4, steps_per_epoch=3) == expected


def test_a_warm_up_comes_first_and_the_kind_takes_the_rest_of_the_run():
    cosine = ScheduleSpec("cosine", warmup="1ep", warmup_start_factor=0.5).build(epochs=4, steps_per_epoch=3)
    assert cosine == Sequence([LinearWarmup(3, 0.5), Cosine(9, 0.0)], [3])
    multistep = ScheduleSpec("multistep", {"milestones": ["2ep"]}, warmup="1ep").build(epochs=4, steps_per_epoch=3)
    assert multistep == Sequence([LinearWarmup(3, 0.1), MultiStep([3], 0.1)], [3])  # still at epoch 2 of the run
    with pytest.raises(SteplrValueError, match="warmup 4ep covers the whole run of 4 epochs"):
        ScheduleSpec("step", {"step_size": 1}, warmup="4ep").build(epochs=4, steps_per_epoch=3)
    with pytest.raises(SteplrValueError, match=r"milestones must come after the warm-up \(2ep\), got \['1ep'\]"):
        ScheduleSpec("multistep", {"milestones": ["1ep"]}, warmup="2ep").build(epochs=4, steps_per_epoch=3)


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("lineal", {}, "unknown schedule 'lineal'; expected one of none, constant, step"),
        ("step", {}, "schedule 'step' needs step_size"),
        ("step", {"step_size": 2, "t_max": 3}, "schedule 'step' has no parameter 't_max' (it reads step_size, gamma)"),
        ("step", {"step_size": 0}, "step_size must be a positive integer, got 0"),
        ("step", {"step_size": 2, "gamma": True}, "gamma must be a finite number > 0, got True"),
        ("step", {"step_size": 2, "gamma": -1}, "gamma must be a finite number > 0, got -1"),
        ("multistep", {"milestones": [3, 2]}, "milestones must be strictly increasing, got [3, 2]"),
        ("multistep", {"milestones": "3"}, "milestones must be a list of steps, got '3'"),
        ("cosine", {"eta_min": -0.5}, "eta_min must be a finite number >= 0, got -0.5"),
        ("cosine", {"t_max": "5x"}, "t_max"),
        ("plateau", {"gamma": 1.0}, "gamma of plateau must be a number in (0, 1), got 1.0"),
        ("plateau", {"plateau_patience": -1}, "plateau_patience must be an integer >= 0, got -1"),
        ("none", {"gamma": 0.5}, "schedule 'none' has no parameter 'gamma' (it reads none)"),
    ],
)
def test_a_bad_spec_is_refused_when_made_naming_the_bad_value(kind, params, message):
    with pytest.raises(SteplrValueError) as info:
        ScheduleSpec(kind, params)
    assert message in str(info.value)


def test_warm_up_applies_to_closed_forms_only_and_is_checked():
    with pytest.raises(SteplrValueError, match="warmup applies to closed-form schedules, not to 'plateau'"):
        ScheduleSpec("plateau", warmup=2)
    with pytest.raises(SteplrValueError, match="warmup_start_factor must be a number in"):
        ScheduleSpec("step", {"step_size": 2}, warmup=2, warmup_start_factor=1.5)
    with pytest.raises(SteplrValueError, match="warmup must be"):
        ScheduleSpec("step", {"step_size": 2}, warmup=0)


specs = st.one_of(
    st.builds(
        lambda s, g: ScheduleSpec("step", {"step_size": s, "gamma": g}),
        st.one_of(st.integers(1, 50), st.sampled_from(["1ep", "3ep", "7it"])),
        st.floats(0.01, 2.0),
    ),
    st.builds(
        lambda m, g: ScheduleSpec("multistep", {"milestones": sorted(m), "gamma": g}),
        st.sets(st.integers(1, 60), min_size=1, max_size=4),
        st.floats(0.01, 1.0),
    ),
    st.builds(lambda g: ScheduleSpec("exponential", {"gamma": g}), st.floats(0.5, 1.0)),
    st.builds(
        lambda t, e: ScheduleSpec("cosine", {"t_max": t, "eta_min": e}),
        st.one_of(st.none(), st.integers(1, 40)),
        st.floats(0.0, 0.05),
    ),
    st.builds(lambda w: ScheduleSpec("cosine", warmup=w), st.integers(1, 2)),
    st.builds(
        lambda t, p, e: ScheduleSpec("polynomial", {"total": t, "power": p, "end_lr": e}),
        st.one_of(st.none(), st.integers(1, 40)),
        st.floats(0.1, 4.0),
        st.floats(0.0, 0.01),
    ),
    st.builds(lambda: ScheduleSpec("none")),
    st.builds(lambda: ScheduleSpec("plateau")),
)


@given(
    specs=st.lists(specs, min_size=1, max_size=8),
    lrs=st.lists(st.floats(1e-4, 1.0), min_size=8, max_size=8),
    epochs=st.integers(3, 12),
    spe=st.integers(1, 4),
)
def test_a_table_row_is_the_spec_evaluated_alone(specs, lrs, epochs, spe):
    table = lr_table(specs, lrs[: len(specs)], epochs, spe)
    steps = np.arange(epochs * spe)
    assert table.shape == (len(specs), epochs * spe)
    for spec, lr, row in zip(specs, lrs, table):
        if spec.reactive:
            assert np.isnan(row).all()
        else:
            schedule = spec.build(epochs, spe)
            assert row.tolist() == [schedule.lr(lr, int(t)) for t in steps], spec


def test_a_table_evaluates_each_kind_in_one_broadcast_call(monkeypatch):
    calls: list[object] = []
    original = StepDecay._lr_array

    def counted(self, base_lr, t):
        calls.append(self.step_size)
        return original(self, base_lr, t)

    monkeypatch.setattr(StepDecay, "_lr_array", counted)
    specs = [ScheduleSpec("step", {"step_size": s, "gamma": g}) for s, g in [(1, 0.5), (2, 0.1), ("1ep", 0.9)]]
    table = lr_table(specs, [0.1, 0.2, 0.3], epochs=3, steps_per_epoch=2)
    assert len(calls) == 1 and np.asarray(calls[0]).ravel().tolist() == [1, 2, 2]
    assert table[1].tolist() == [StepDecay(2, 0.1).lr(0.2, t) for t in range(6)]


@given(specs)
def test_a_spec_round_trips_through_json(spec):
    again = ScheduleSpec.from_dict(json.loads(json.dumps(spec.as_dict())))
    assert again == spec and hash(again) == hash(spec)


def test_a_config_holds_one_spec_checked_before_anything_runs():
    config = TrainConfig(schedule=ScheduleSpec("cosine", {"eta_min": 0.001}), epochs=4, interval="epoch")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    assert config.build_schedule(batches=10) == Cosine(4, 0.001)
    assert TrainConfig(schedule=ScheduleSpec("plateau", {"gamma": 0.3})).plateau() == (0.3, 2)
    with pytest.raises(SteplrValueError, match="has no closed form"):
        TrainConfig(schedule=ScheduleSpec("plateau")).build_schedule(10)
    with pytest.raises(SteplrValueError, match="is not plateau"):
        config.plateau()
    with pytest.raises(SteplrValueError, match="schedule 'step' needs step_size"):
        TrainConfig(schedule=ScheduleSpec("none")).with_settings(schedule="step")
    with pytest.raises(SteplrValueError, match="t_max does not apply to schedule 'step'"):
        TrainConfig().with_settings(t_max=3)
    with pytest.raises(SteplrValueError, match="unknown setting 'decay'"):
        TrainConfig().with_settings(decay=3)


def test_an_old_flat_config_still_loads():
    """config.json and checkpoints written before the spec: the schedule's name with every kind's settings."""
    old = {
        "recipe": "qwerty",
        "dataset": "qwerty",
        "model": "qwerty",
        "optimizer": "sgd",
        "lr": 0.01,
        "batch_size": 32,
        "epochs": 20,
        "schedule": "multistep",
        "step_size": "5ep",
        "gamma": 0.5,
        "milestones": ["10ep", "15ep"],
        "t_max": None,
        "eta_min": 0.0,
        "interval": "iteration",
        "plateau_patience": 2,
        "seed": 0,
        "validation": 0.0,
        "warmup": "1ep",
        "warmup_start_factor": 0.2,
    }
    config = TrainConfig.from_dict(old)
    assert config.schedule == ScheduleSpec(
        "multistep", {"milestones": ("10ep", "15ep"), "gamma": 0.5}, warmup="1ep", warmup_start_factor=0.2
    )
    plateau = TrainConfig.from_dict({**old, "schedule": "plateau", "warmup": None, "plateau_patience": 0})
    assert plateau.plateau() == (0.5, 0)
    with pytest.raises(SteplrValueError, match="unknown config keys"):
        TrainConfig.from_dict({**old, "dampening": 0.9})


def test_every_parameter_has_a_flag_in_every_command_that_takes_schedules():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, (param, readers) in params_by_name().items():
        for command in ("train", "compare"):
            assert param.flag in commands[command]._option_string_actions, (command, name)
        closed = [k for k in readers if not lookup(k).reactive]
        for command in ("explain", "plot"):
            assert (param.flag in commands[command]._option_string_actions) == bool(closed), (command, name)
    for command in ("explain", "plot", "train", "compare"):
        assert {"--warmup", "--warmup-start-factor"} <= set(commands[command]._option_string_actions)
    assert compared(by_default=True) == ("none", "step")
    assert commands["compare"].get_default("schedules") == list(compared(by_default=True))


def test_every_kind_has_help_for_its_parameters_and_compare_says_its_fair_default():
    for kind in KINDS:
        assert kind.summary
        for param in kind.params:
            assert param.help and param.flag.startswith("--")
    run = RunShape(epochs=8, steps=80)
    assert lookup("multistep").fair(run) == {"milestones": ("4ep", "6ep")}
    assert lookup("exponential").fair(run)["gamma"] == pytest.approx(0.01 ** (1 / 80))
    assert lookup("plateau").fair(run) == {"gamma": 0.5, "plateau_patience": 2}
