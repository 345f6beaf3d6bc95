"""The steplr command end to end through main([...]); bad input exits 2 with one line."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import matplotlib.image
import pytest

from steplr.cli import main
from steplr.schedules import StepDecay


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_explain_prints_the_reference_plan():
    code, out, err = run("explain", "--lr", "0.1", "--step-size", "10", "--gamma", "0.5", "--epochs", "40")
    assert code == 0 and err == ""
    schedule = StepDecay(10, 0.5)
    expected = [f"  epochs {a}-{a + 9}: lr {schedule.lr(0.1, a):.6g}" for a in (0, 10, 20, 30)]
    lines = out.splitlines()
    assert lines[1:5] == expected
    assert expected[1] == "  epochs 10-19: lr 0.05"
    assert lines[5] == f"3 decays; final lr {schedule.lr(0.1, 39):.6g}"
    assert not any(line.startswith("warning") for line in lines)


def test_reference_mnist_recipe_warns_that_the_lr_collapses():
    code, out, _ = run("explain", "--lr", "1e-3", "--step-size", "2", "--gamma", "0.1", "--epochs", "5")
    assert code == 0
    assert "  epoch 4: lr 1e-05" in out.splitlines()
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "falls to 1e-05" in warnings[0] and "at epoch 4" in warnings[0]


def test_a_plan_that_never_decays_is_flagged():
    _, out, _ = run("explain", "--step-size", "50", "--gamma", "0.5", "--epochs", "20")
    assert "warning: the learning rate never changes within the run (step_size 50 epochs" in out
    _, healthy, _ = run("explain", "--step-size", "10", "--gamma", "0.5", "--epochs", "20")
    assert "never changes" not in healthy


def test_gamma_above_one_is_flagged():
    _, out, _ = run("explain", "--step-size", "5", "--gamma", "1.5", "--epochs", "20")
    assert "warning: gamma 1.5 > 1" in out


def test_iteration_step_size_shows_iterations_and_epochs():
    code, out, _ = run(
        "explain", "--lr", "0.01", "--step-size", "115it", "--gamma", "0.5", "--epochs", "20", "--steps-per-epoch", "23"
    )
    assert code == 0
    assert out.splitlines()[1:3] == ["  iterations 0-114 (epochs 0-4): lr 0.01", "  iterations 115-229 (epochs 5-9): lr 0.005"]
    _, uneven, _ = run("explain", "--step-size", "100it", "--epochs", "20", "--steps-per-epoch", "23")
    assert "  iterations 0-99 (epochs 0.00 to 4.35): lr 0.1" in uneven.splitlines()
    _, in_epochs, _ = run("explain", "--step-size", "5ep", "--epochs", "20", "--steps-per-epoch", "23")
    assert "  iterations 0-114 (epochs 0-4): lr 0.1" in in_epochs.splitlines()


def test_explain_json_is_the_same_plan_as_data():
    code, out, _ = run("explain", "--lr", "1e-3", "--step-size", "2", "--gamma", "0.1", "--epochs", "5", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["schedule"] == {"type": "StepDecay", "step_size": 2, "gamma": 0.1}
    assert [(i["first_epoch"], i["last_epoch"]) for i in data["intervals"]] == [(0, 1), (2, 3), (4, 4)]
    assert data["final_lr"] == StepDecay(2, 0.1).lr(1e-3, 4)
    assert data["decays"] == 2 and len(data["warnings"]) == 1


def test_other_schedules_are_reachable():
    code, out, _ = run("explain", "--schedule", "multistep", "--milestones", "3,7", "--gamma", "0.1", "--epochs", "10")
    assert code == 0 and out.splitlines()[1:4] == ["  epochs 0-2: lr 0.1", "  epochs 3-6: lr 0.01", "  epochs 7-9: lr 0.001"]
    code, out, _ = run("explain", "--schedule", "exponential", "--gamma", "0.5", "--epochs", "3")
    assert out.splitlines()[1:4] == ["  epoch 0: lr 0.1", "  epoch 1: lr 0.05", "  epoch 2: lr 0.025"]
    code, out, _ = run("explain", "--schedule", "cosine", "--epochs", "4", "--warmup", "1")
    assert code == 0 and out.splitlines()[1] == "  epoch 0: lr 0.01"
    code, out, _ = run("explain", "--schedule", "constant", "--epochs", "4")
    assert out.splitlines()[1] == "  epochs 0-3: lr 0.1"


def test_long_plans_show_head_and_tail():
    _, out, _ = run("explain", "--schedule", "exponential", "--gamma", "0.9", "--epochs", "100")
    assert "  ... 85 more intervals ..." in out
    assert "  epoch 99: lr" in out


def test_plot_writes_an_image_with_several_schedules(tmp_path):
    target = tmp_path / "lr.png"
    code, out, err = run(
        "plot", "--schedule", "step,cosine", "--gamma", "0.5,0.1", "--epochs", "40", "--log", "-o", str(target)
    )
    assert code == 0 and err == ""
    assert "3 schedules" in out
    image = matplotlib.image.imread(target)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas
    assert [p.name for p in tmp_path.iterdir()] == ["lr.png"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "--epochs", "40", "--bogus"], "unrecognized arguments: --bogus"),
        (["explain", "--epochs", "40", "--lr", "abc"], "'abc'"),
        (["explain", "--epochs", "forty"], "'forty'"),
        (["explain", "--epochs", "40", "--step-size", "0"], "step_size must be a positive integer, got 0"),
        (["explain", "--epochs", "40", "--gamma", "-1"], "gamma must be a finite number > 0, got -1.0"),
        (["explain", "--epochs", "40", "--gamma", "nan"], "gamma must be a finite number > 0, got nan"),
        (["explain", "--epochs", "40", "--lr", "-0.1"], "--lr must be a finite number > 0, got -0.1"),
        (["explain", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
        (["explain", "--epochs", "4", "--step-size", "2.5"], "'2.5'"),
        (["explain", "--epochs", "4", "--step-size", "5ep", "--steps-per-epoch", "0"], "--steps-per-epoch must be"),
        (["explain", "--epochs", "4", "--schedule", "linear"], "unknown schedule 'linear'"),
        (["explain", "--epochs", "4", "--schedule", "multistep"], "needs --milestones"),
        (["explain"], "the following arguments are required: --epochs"),
        ([], "the following arguments are required: command"),
        (["plot", "--epochs", "4", "-o", "/nonexistent-folder/lr.png"], "folder '/nonexistent-folder' does not exist"),
        (["plot", "--epochs", "4", "-o", "lr.txt"], "--output must end in .png, .svg or .pdf"),
        (["explain", "--epochs", "10000000000"], "10,000,000,000 steps is more than steplr tabulates"),
        (["explain", "--epochs", "100", "--steps-per-epoch", "1000000"], "100,000,000 steps is more than"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message):
    code, out, err = run(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("steplr: error: ")
    assert message in err


def test_unwritable_output_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run("plot", "--epochs", "4", "-o", str(blocker / "lr.png"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_console_script_reports_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "steplr", "explain", "--epochs", "10", "--gamma", "-1"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == "steplr: error: gamma must be a finite number > 0, got -1.0\n"
    ok = subprocess.run([sys.executable, "-m", "steplr", "explain", "--epochs", "20"], capture_output=True, text=True)
    assert ok.returncode == 0 and "epochs 10-19: lr 0.01" in ok.stdout


def test_warm_up_is_not_mistaken_for_a_collapse_and_keeps_its_checks():
    _, out, _ = run("explain", "--lr", "0.1", "--epochs", "30", "--warmup", "5", "--warmup-start-factor", "0")
    assert "reaches 0" not in out and "falls to" not in out.split("epochs 5-")[0]
    _, grows, _ = run("explain", "--epochs", "30", "--warmup", "5", "--gamma", "2", "--step-size", "5")
    assert "warning: gamma 2 > 1" in grows


def test_warm_up_shortens_the_default_cosine_and_keeps_milestones_absolute():
    _, out, _ = run("explain", "--lr", "0.1", "--epochs", "20", "--schedule", "cosine", "--warmup", "10", "--json")
    data = json.loads(out)
    assert data["schedule"]["schedules"][1]["t_max"] == 10
    assert data["final_lr"] == pytest.approx(0.1 * (1 + math.cos(math.pi * 9 / 10)) / 2, rel=1e-12)
    _, ms, _ = run("explain", "--epochs", "10", "--schedule", "multistep", "--milestones", "3,6", "--warmup", "2")
    assert "  epochs 3-5: lr 0.01" in ms.splitlines() and "  epochs 6-9: lr 0.001" in ms.splitlines()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "--lr", "1e308", "--gamma", "10", "--step-size", "1", "--epochs", "3"], "overflows to inf at step 1"),
        (["explain", "--epochs", "10", "--step-size", "99999999999999999999"], "step_size must be at most 2**62"),
        (["explain", "--epochs", "10", "--warmup", "10"], "--warmup 10 covers the whole run"),
        (["explain", "--epochs", "10", "--schedule", "multistep", "--milestones", "1,6", "--warmup", "2"],
         "--milestones must come after the warm-up"),
    ],
)
def test_more_bad_input_is_one_line(argv, message):
    code, out, err = run(*argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
