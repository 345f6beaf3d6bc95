"""The command line with torch's closed-form family: explain prints, plot draws, train and compare run linear-factor,
constant-factor, restarts, onecycle and cyclic plans; bad values are one line and exit code 2."""

from __future__ import annotations

import io
import itertools
import json

import matplotlib.image
import pytest

from steplr.cli.main import main
from steplr.schedules.cycles import CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.kinds import ConstantFactor, Linear


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def rates(text: str) -> list[float]:
    return [float(line.split(": lr ")[1]) for line in text.splitlines() if ": lr " in line]


@pytest.mark.parametrize(
    ("argv", "title", "schedule"),
    [
        (["linearlr", "--start-factor", "1", "--end-factor", "0.1"], "linearlr, lr 0.1", Linear(1.0, 0.1, 12)),
        (
            ["constant-factor", "--factor", "0.5", "--total-iters", "3"],
            "constant-factor, lr 0.1",
            ConstantFactor(0.5, 3),
        ),
        (["sgdr", "--t-0", "2", "--t-mult", "2"], "sgdr, lr 0.1", CosineWarmRestarts(2, 2)),
        (
            ["onecycle", "--anneal-strategy", "linear", "--three-phase"],
            "onecycle, lr 0.1",
            OneCycle(12, 0.3, "linear", three_phase=True),
        ),
        (
            ["cyclic", "--max-lr", "1", "--step-size-up", "2", "--step-size-down", "1", "--mode", "triangular2"],
            "cyclic, lr 0.1",
            Cyclic(1.0, 2, 1, "triangular2"),
        ),
    ],
)
def test_explain_prints_each_new_kind_s_plan(argv, title, schedule):
    code, out, err = run("explain", "--schedule", *argv, "--epochs", "12")
    assert code == 0 and err == "", err
    assert out.splitlines()[0] == f"{title}, 12 epochs"
    expected = [schedule.lr(0.1, t) for t in range(12)]
    shown = rates(out)
    assert shown == pytest.approx([expected[0], *(b for a, b in itertools.pairwise(expected) if a != b)], rel=1e-5)
    code, out, err = run("explain", "--schedule", *argv, "--epochs", "12", "--json")
    assert code == 0 and json.loads(out)["final_lr"] == schedule.lr(0.1, 11)


def test_plot_draws_the_new_kinds_on_one_figure(tmp_path):
    target = tmp_path / "cycles.png"
    code, out, err = run(
        "plot",
        "--schedule",
        "onecycle,cyclic,restarts,linear-factor,constant-factor",
        "--max-lr",
        "0.5",
        "--gamma",
        "0.99,1",
        "--mode",
        "exp_range",
        "--epochs",
        "30",
        "--steps-per-epoch",
        "4",
        "-o",
        str(target),
    )
    assert code == 0, err
    assert out == f"wrote {target} (6 schedules)\n" and matplotlib.image.imread(target).std() > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--schedule", "cyclic", "--max-lr", "-1"], "max_lr must be a finite number >= 0, got -1.0"),
        (
            ["--schedule", "onecycle", "--anneal-strategy", "cosine"],
            "argument --anneal-strategy: invalid choice: 'cosine'",
        ),
        (["--schedule", "onecycle", "--pct-start", "0.1"], "--pct-start * --total-steps must not be 1"),
        (["--schedule", "restarts", "--t-mult", "0"], "t_mult must be an integer >= 1, got 0"),
        (["--schedule", "restarts", "--t-mult", "1.5"], "argument --t-mult: invalid int value: '1.5'"),
        (["--schedule", "linear-factor", "--start-factor", "2"], "start_factor must be a number in [0, 1], got 2.0"),
        (["--three-phase"], "--three-phase applies to onecycle; not to step"),
        (["--schedule", "cyclic", "--max-lr", "1", "--step-size-up", "0"], "duration must be positive, got '0'"),
    ],
)
def test_bad_values_of_the_new_kinds_are_one_line_and_exit_2(argv, message):
    code, out, err = run("explain", "--epochs", "10", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err.replace("pct_start", "--pct-start").replace("total_steps", "--total-steps"), err


def test_train_runs_a_cyclic_plan_and_records_its_rates(tmp_path):
    out = tmp_path / "cyclic"
    code, _text, err = run(
        "train",
        "qwerty",
        "--schedule",
        "cyclic",
        "--max-lr",
        "0.05",
        "--step-size-up",
        "5it",
        "--mode",
        "triangular2",
        "--epochs",
        "2",
        "--out",
        str(out),
    )
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    saved = {k: v for k, v in config["schedule"].items() if k != "gamma"}  # the recipe's gamma: mode ignores it
    assert saved == {
        "kind": "cyclic",
        "max_lr": 0.05,
        "step_size_up": "5it",
        "step_size_down": None,
        "mode": "triangular2",
    }
    lrs = json.loads((out / "history.json").read_text())["iteration_lrs"]
    base = config["lr"]
    assert lrs == [Cyclic(0.05, 5, mode="triangular2").lr(base, t) for t in range(len(lrs))]
    assert max(lrs) == 0.05 and len(set(lrs)) > 3


def test_train_runs_a_one_cycle_over_the_whole_run(tmp_path):
    out = tmp_path / "onecycle"
    code, _text, err = run(
        "train", "qwerty", "--schedule", "onecycle", "--three-phase", "--epochs", "2", "--out", str(out)
    )
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["schedule"]["three_phase"] is True and config["schedule"]["total_steps"] is None
    lrs = json.loads((out / "history.json").read_text())["iteration_lrs"]
    schedule = OneCycle(len(lrs), three_phase=True)
    assert lrs == [schedule.lr(config["lr"], t) for t in range(len(lrs))]
    assert lrs[-1] == config["lr"] / 25 / 1e4


def test_compare_runs_the_new_kinds_with_their_fair_defaults(tmp_path):
    code, text, err = run(
        "compare",
        "qwerty",
        "--schedules",
        "none,restarts,cyclic,linear-factor",
        "--max-lr",
        "0.05",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "c"),
    )
    assert code == 0, err
    assert "plan restarts (t_0 " in text and "t_mult 2" in text
    assert "plan cyclic (max_lr 0.05, step_size_up " in text and "gamma 1)" in text  # not the recipe's gamma
    for kind in ("restarts", "cyclic", "linear-factor"):
        assert f"- {kind}: " in text
    code, _, err = run("compare", "qwerty", "--schedules", "none,cyclic", "--out", str(tmp_path / "d"))
    assert code == 2 and "cyclic" in err and "max_lr" in err and err.count("\n") == 1


def test_sweep_takes_a_word_and_a_flag_of_the_new_kinds_as_lists(tmp_path):
    code, _text, err = run(
        "sweep",
        "qwerty",
        "--schedule",
        "onecycle",
        "--anneal-strategy",
        "cos,linear",
        "--three-phase",
        "false,true",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "s"),
    )
    assert code == 0, err
    code, _, err = run(
        "sweep", "qwerty", "--schedule", "onecycle", "--three-phase", "maybe", "--out", str(tmp_path / "t")
    )
    assert code == 2 and "expected comma-separated true or false, got 'maybe'" in err
