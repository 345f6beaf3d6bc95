"""The steplr command end to end through main([...]); bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys

import matplotlib.image
import pytest

from steplr.cli import args as cli_args
from steplr.cli.main import main
from steplr.schedules.kinds import StepDecay


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
    assert "at epoch 4 (the 5th epoch)" in warnings[0]  # the training log prints this epoch as "Epoch 5"


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
    assert out.splitlines()[1:3] == [
        "  iterations 0-114 (epochs 0-4): lr 0.01",
        "  iterations 115-229 (epochs 5-9): lr 0.005",
    ]
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
    assert code == 0 and out.splitlines()[1:4] == [
        "  epochs 0-2: lr 0.1",
        "  epochs 3-6: lr 0.01",
        "  epochs 7-9: lr 0.001",
    ]
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
        (["explain", "--epochs", "40", "--step-size", "0"], "argument --step-size: duration must be positive, got '0'"),
        (
            ["explain", "--epochs", "40", "--step-size", "5,,10"],
            "expected a comma-separated list of durations, got '5,,10'",
        ),
        (["explain", "--epochs", "40", "--step-size", "5,2.5"], "in '5,2.5': duration must be a positive integer"),
        (["explain", "--epochs", "40", "--gamma", "0.5,x"], "in '0.5,x': expected a number, got 'x'"),
        (["explain", "--epochs", "40", "--gamma", "-1"], "gamma must be a finite number > 0, got -1.0"),
        (["explain", "--epochs", "40", "--gamma", "nan"], "gamma must be a finite number > 0, got nan"),
        (["explain", "--epochs", "40", "--lr", "-0.1"], "--lr must be a finite number > 0, got -0.1"),
        (
            ["explain", "--epochs", "5", "--schedule", "cosine", "--eta-min", "-1"],
            "eta_min must be a finite number >= 0, got -1.0",
        ),
        (["explain", "--epochs", "0"], "argument --epochs: must be a positive integer, got '0'"),
        (["explain", "--epochs", "4", "--step-size", "2.5"], "'2.5'"),
        (
            ["explain", "--epochs", "4", "--step-size", "5ep", "--steps-per-epoch", "0"],
            "argument --steps-per-epoch: must be",
        ),
        (["explain", "--epochs", "4", "--schedule", "lineal"], "unknown schedule 'lineal'"),
        (["explain", "--epochs", "4", "--schedule", "multistep"], "needs --milestones"),
        (["explain"], "the following arguments are required: --epochs"),
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


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--t-max", "3", "--epochs", "5", "--steps-per-epoch", "2"],
            "warning: the learning rate reaches 0 at epoch 3 (the 4th epoch) and rises again: 10% of the run "
            "(1 of 10 iterations = 0.5 of 5 epochs) trains at or below 1/100 of its start",
        ),
        (
            ["--t-max", "2", "--epochs", "5"],
            "warning: the learning rate reaches 0 at epoch 2 (the 3rd epoch) and rises again: 20% of the run "
            "(1 of 5 epochs) trains at or below 1/100 of its start",
        ),
        (
            ["--t-max", "4", "--epochs", "5"],
            "warning: the learning rate reaches 0 at epoch 4 (the 5th epoch): the rest of the run does not train",
        ),
    ],
)
def test_a_cosine_that_climbs_back_is_not_said_to_stop_training(argv, expected):
    code, out, _ = run("explain", "--schedule", "cosine", "--lr", "0.1", *argv)
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("warning:")] == [expected]


@pytest.mark.parametrize("warmup", [[], ["--warmup", "1"]])
def test_eta_min_above_the_base_lr_is_flagged(warmup):
    code, out, _ = run("explain", "--schedule", "cosine", "--eta-min", "0.5", "--lr", "0.1", "--epochs", "5", *warmup)
    assert code == 0
    assert "warning: eta_min 0.5 is above the base lr 0.1: the learning rate rises instead of decaying" in out
    _, below, _ = run("explain", "--schedule", "cosine", "--eta-min", "0.05", "--lr", "0.1", "--epochs", "5", *warmup)
    assert "eta_min" not in below


def test_a_negative_eta_min_stops_train_before_it_touches_the_disk(tmp_path):
    out_dir = tmp_path / "run"
    code, out, err = run("train", "qwerty", "--schedule", "cosine", "--eta-min", "-1", "--out", str(out_dir))
    assert (code, out, err) == (2, "", "steplr: error: eta_min must be a finite number >= 0, got -1.0\n")
    assert not out_dir.exists()


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
        (
            ["explain", "--lr", "1e308", "--gamma", "10", "--step-size", "1", "--epochs", "3"],
            "overflows to inf at step 1",
        ),
        (["explain", "--epochs", "10", "--step-size", "99999999999999999999"], "duration must be at most 2**62"),
        (["explain", "--epochs", "10", "--warmup", "10"], "--warmup 10 covers the whole run"),
        (
            ["explain", "--epochs", "10", "--schedule", "multistep", "--milestones", "1,6", "--warmup", "2"],
            "--milestones must come after the warm-up",
        ),
    ],
)
def test_more_bad_input_is_one_line(argv, message):
    code, out, err = run(*argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


# --- what the command line reads, and how (steplr.cli.args) ---


def test_bare_durations_are_epochs_and_it_marks_iterations():
    spe = ["--epochs", "20", "--steps-per-epoch", "23", "--gamma", "0.5", "--lr", "0.01"]
    _, bare, _ = run("explain", "--step-size", "5", *spe)
    _, epochs, _ = run("explain", "--step-size", "5ep", *spe)
    _, iterations, _ = run("explain", "--step-size", "115it", *spe)
    assert bare.splitlines()[1:3] == [
        "  iterations 0-114 (epochs 0-4): lr 0.01",
        "  iterations 115-229 (epochs 5-9): lr 0.005",
    ]
    assert bare.splitlines()[1:] == epochs.splitlines()[1:] == iterations.splitlines()[1:]
    assert bare.splitlines()[0].startswith("step, step 5, gamma 0.5")  # the label reads as typed: 5 = 5 epochs
    assert iterations.splitlines()[0].startswith("step, step 115it, gamma 0.5")
    _, five_it, _ = run("explain", "--step-size", "5it", *spe)
    assert "  iterations 0-4 (epochs 0.00 to 0.22): lr 0.01" in five_it.splitlines()


def test_milestones_warm_up_and_t_max_count_epochs_too():
    _, out, _ = run(
        "explain",
        "--schedule",
        "multistep",
        "--milestones",
        "3,70it",
        "--epochs",
        "10",
        "--steps-per-epoch",
        "10",
        "--json",
    )
    assert [i["first_step"] for i in json.loads(out)["intervals"]] == [0, 30, 70]
    _, out, _ = run(
        "explain",
        "--schedule",
        "cosine",
        "--t-max",
        "2",
        "--warmup",
        "1",
        "--epochs",
        "4",
        "--steps-per-epoch",
        "5",
        "--json",
    )
    warmup, cosine = json.loads(out)["schedule"]["schedules"]
    assert warmup["warmup_steps"] == 5 and cosine["t_max"] == 10


def test_abbreviated_flags_are_refused_not_guessed():
    for argv, flag in [
        (["compare", "qwerty", "--seed", "3"], "--seed"),  # not --seeds
        (["compare", "qwerty", "--schedule", "step"], "--schedule"),  # not --schedules
        (["sweep", "qwerty", "--step", "1"], "--step"),  # not --step-size
        (["explain", "--epochs", "4", "--step", "2"], "--step"),
        (["plot", "--epochs", "4", "--out", "x.png"], "--out"),  # not --output
    ]:
        code, out, err = run(*argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith(f"steplr: error: unrecognized arguments: {flag} ") and err.count("\n") == 1, err


def test_every_subcommand_gets_the_strict_parser():
    from steplr.cli.args import HelpFormatter, Parser
    from steplr.cli.main import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(commands.choices) == ["compare", "explain", "plot", "sweep", "train"]
    for name, sub in commands.choices.items():
        assert isinstance(sub, Parser) and sub.allow_abbrev is False and sub.formatter_class is HelpFormatter, name


def test_steplr_alone_prints_the_commands():
    code, out, err = run()
    assert code == 2 and out == ""
    assert err.startswith("usage: steplr")
    for command in ("explain", "plot", "train", "compare", "sweep"):
        assert f"    {command} " in err
    assert "5 or 5ep is 5 epochs, 115it is 115 iterations" in " ".join(err.split())


def test_version():
    import steplr

    assert run("--version") == (0, f"steplr {steplr.__version__}\n", "")


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (
            "explain",
            [
                "--gamma GAMMA decay factor (default: 0.1 for step, multistep, exponential; 1 for cyclic)",
                "(default: 10ep)",
                "(default: step)",
                "5 or 5ep is 5 epochs",
            ],
        ),
        (
            "plot",
            [
                "(default: lr.png)",
                "(comma-separated values draw one curve each) (default: 0.1)",
                "--force overwrite --output if it exists",
            ],
        ),
        ("train", ["(default: "]),
        ("compare", ["(default: none,step)", "(default: 5)"]),
        (
            "sweep",
            [
                "(default: grid 1ep,2ep,5ep,10ep; optuna 1ep:20ep)",
                "(default: 30)",
                "(default: 3; optuna --report: as the search)",
            ],
        ),
    ],
)
def test_help_shows_defaults(command, shown):
    code, out, err = run(command, "--help")
    assert code == 0 and err == ""
    flat = " ".join(out.split())
    for text in shown:
        assert text in flat
    assert "(default: None)" not in flat and "(default: False)" not in flat


def test_every_option_of_explain_and_plot_has_help():
    from steplr.cli.main import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in (parser, commands.choices["explain"], commands.choices["plot"]):
        for action in sub._actions:
            assert action.help, (sub.prog, action.option_strings)


def test_plot_does_not_overwrite_without_force(tmp_path):
    target = tmp_path / "lr.png"
    target.write_bytes(b"someone's figure")
    code, out, err = run("plot", "--epochs", "4", "-o", str(target))
    assert (code, out) == (2, "")
    assert err == f"steplr: error: {target} already exists: pass --force to overwrite it\n"
    assert target.read_bytes() == b"someone's figure"
    code, out, err = run("plot", "--epochs", "4", "-o", str(target), "--force")
    assert code == 0 and err == "" and matplotlib.image.imread(target).std() > 0
    assert [p.name for p in tmp_path.iterdir()] == ["lr.png"]


def test_bad_plot_input_leaves_an_existing_figure_alone(tmp_path):
    target = tmp_path / "lr.png"
    target.write_bytes(b"old")
    code, _, err = run("plot", "--epochs", "4", "-o", str(target), "--force", "--schedule", "lineal")
    assert code == 2 and "unknown schedule 'lineal'" in err and target.read_bytes() == b"old"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("5", "5ep"), ("5ep", "5ep"), ("5 epochs", "5ep"), ("115it", "115it"), ("115 iterations", "115it"), ("1", "1ep")],
)
def test_duration_text(text, canonical):
    assert cli_args.duration(text) == canonical


@pytest.mark.parametrize(
    ("function", "text", "message"),
    [
        (cli_args.duration, "0", "duration must be positive, got '0'"),
        (cli_args.duration, "-3", "got '-3'"),
        (cli_args.duration, "2.5", "got '2.5'"),
        (cli_args.duration, "5 weeks", "got '5 weeks'"),
        (cli_args.duration_list, "1,,2", "expected a comma-separated list of durations, got '1,,2'"),
        (cli_args.duration_list, "", "expected a comma-separated list of durations, got ''"),
        (cli_args.duration_list, "1ep,x", "in '1ep,x': duration must be"),
        (cli_args.number_list, "0.1,abc", "in '0.1,abc': expected a number, got 'abc'"),
        (cli_args.number_list, "0.1,", "expected a comma-separated list of numbers, got '0.1,'"),
        (cli_args.name_list, "step,,cosine", "expected a comma-separated list of names, got 'step,,cosine'"),
        (cli_args.positive_int, "0", "must be a positive integer, got '0'"),
        (cli_args.positive_int, "-2", "must be a positive integer, got '-2'"),
        (cli_args.positive_int, "2.5", "must be a positive integer, got '2.5'"),
        (cli_args.positive_int, "five", "must be a positive integer, got 'five'"),
        (cli_args.duration_space, "1,-3", "in '1,-3': duration must be a positive integer"),
        (cli_args.duration_space, "1:-3", "in '1:-3': duration must be a positive integer"),
        (cli_args.duration_space, "", "expected a comma-separated list of durations, got ''"),
        (cli_args.number_space, "0.1:x", "in '0.1:x': expected a number, got 'x'"),
        (cli_args.number_space, "0.1,,0.5", "expected a comma-separated list of numbers, got '0.1,,0.5'"),
        (cli_args.fraction, "-3", "expected a fraction in [0, 1), got '-3'"),
        (cli_args.fraction, "1", "expected a fraction in [0, 1), got '1'"),
        (cli_args.fraction, "a fifth", "expected a fraction such as 0.2, got 'a fifth'"),
        (cli_args.unit_fraction, "-3", "must be a number in [0, 1], got '-3'"),
        (cli_args.unit_fraction, "nan", "must be a number in [0, 1], got 'nan'"),
    ],
)
def test_bad_values_name_the_text(function, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        function(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_lists_and_integers():
    assert cli_args.duration_list("1, 2ep,50it") == ["1ep", "2ep", "50it"]
    assert cli_args.number_list("0.1,1e-3, 2") == [0.1, 0.001, 2.0]
    assert cli_args.name_list(" step , cosine") == ["step", "cosine"]
    assert cli_args.positive_int("7") == 7
    assert cli_args.fraction("0") == 0.0 and cli_args.unit_fraction("1") == 1.0


@pytest.mark.parametrize("text", ["1,2,5", "1ep:20ep", "100it:900", "1ep:5ep,8ep", "1:", "1:2:3"])
def test_a_space_is_returned_as_typed_for_the_engine_to_read(text):
    # Lists and ranges whose items parse come back unchanged; what is neither (both at once, a missing end) is left
    # for the engine, which names the problem with the whole text.
    assert cli_args.duration_space(text) == text


def test_parser_raises_instead_of_exiting():
    parser = cli_args.Parser(prog="x")
    parser.add_argument("--seeds", type=cli_args.positive_int, default=3, help="seeds")
    with pytest.raises(cli_args.UsageError, match="unrecognized arguments: --seed 2"):
        parser.parse_args(["--seed", "2"])
    with pytest.raises(cli_args.UsageError, match="argument --seeds: must be a positive integer, got '0'"):
        parser.parse_args(["--seeds", "0"])
    assert parser.parse_args(["--seeds", "2"]).seeds == 2


@pytest.mark.parametrize(
    ("lr", "shown"),
    [
        (0.1, "0.100000"),
        (0.001, "0.001000"),
        (1e-6, "0.000001"),
        (0.0, "0.000000"),
        (1e-3 * 0.1**4, "1.000000e-07"),
        (3.2e-12, "3.200000e-12"),
    ],
)
def test_format_lr(lr, shown):
    assert cli_args.format_lr(lr) == shown


def test_format_lr_never_shows_a_positive_rate_as_zero():
    for lr in [9.999999e-7, 5e-7, 1e-30, 5e-324]:
        text = cli_args.format_lr(lr)
        assert float(text) > 0 and float(text) == pytest.approx(lr, rel=1e-6), text
    assert cli_args.format_lr(1e-6) == f"{1e-6:.6f}"  # from 1e-6 up, the reference notes' format


# --- explain and plot at any length, and what they now say (issue 9) ---


def test_explain_json_of_a_long_plan_lists_head_and_tail_and_counts_the_rest():
    code, out, _ = run("explain", "--schedule", "cosine", "--epochs", "5000", "--json")
    data = json.loads(out)
    counts = data["interval_count"], data["intervals_omitted"], len(data["intervals"])
    assert code == 0 and counts == (5000, 4000, 1000)
    assert data["intervals"][-1]["last_step"] == 4999 and data["decays"] == 4999
    _, short, _ = run("explain", "--epochs", "40", "--json")
    assert (json.loads(short)["interval_count"], json.loads(short)["intervals_omitted"]) == (4, 0)


def test_explain_warns_about_milestones_past_the_end_of_the_run():
    code, out, _ = run("explain", "--schedule", "multistep", "--milestones", "30,60,90,120", "--epochs", "80")
    assert code == 0
    assert "warning: milestones 90ep, 120ep are past the end of the 80-epoch run: they never apply" in out.splitlines()
    _, warmed, _ = run("explain", "--schedule", "multistep", "--milestones", "30,90", "--warmup", "5", "--epochs", "80")
    assert "warning: milestone 90ep is past the end of the 80-epoch run: it never applies" in warmed.splitlines()
    _, inside, _ = run("explain", "--schedule", "multistep", "--milestones", "30,60", "--epochs", "80")
    assert "milestone" not in inside


def test_plot_title_is_plain_text_even_when_it_is_broken_mathtext(tmp_path):
    target = tmp_path / "lr.png"
    code, out, err = run("plot", "--epochs", "20", "--title", r"$\frac{a$", "-o", str(target))
    assert (code, err) == (0, "") and out == f"wrote {target} (1 schedule)\n"
    assert matplotlib.image.imread(target).std() > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "--epochs", "20", "--t-max", "5"], "--t-max applies to cosine; not to step"),
        (["explain", "--epochs", "20", "--eta-min", "0.01"], "--eta-min applies to cosine, restarts; not to step"),
        (
            ["plot", "--epochs", "20", "--schedule", "step,cosine", "--milestones", "5"],
            "--milestones applies to multistep",
        ),
    ],
)
def test_a_setting_no_chosen_schedule_reads_is_refused(argv, message):
    code, out, err = run(*argv)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_explain_and_plot_take_a_polynomial_decay(tmp_path):
    code, out, err = run("explain", "--schedule", "polynomial", "--power", "2", "--epochs", "10")
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert lines[0] == "polynomial, power 2, lr 0.1, 10 epochs"
    expected = [0.1 * (1 - epoch / 10) ** 2 for epoch in range(10)]  # torch's PolynomialLR(total_iters=10, power=2)
    assert [float(line.split("lr ")[1]) for line in lines[1:11]] == pytest.approx(expected, rel=1e-5)
    code, out, err = run(
        "explain",
        "--schedule",
        "polynomial",
        "--power",
        "1",
        "--end-lr",
        "0.01",
        "--total",
        "4",
        "--epochs",
        "6",
        "--json",
    )
    assert code == 0 and json.loads(out)["final_lr"] == pytest.approx(0.01)
    code, _, err = run("explain", "--schedule", "polynomial", "--power", "0", "--epochs", "10")
    assert code == 2 and "power must be a finite number > 0, got 0.0" in err
    code, _, err = run("explain", "--epochs", "10", "--power", "2")
    assert code == 2 and "--power applies to polynomial; not to step" in err
    target = tmp_path / "poly.png"
    code, out, err = run(
        "plot", "--schedule", "polynomial,cosine", "--power", "0.5,2", "--epochs", "10", "-o", str(target)
    )
    assert code == 0 and out == f"wrote {target} (3 schedules)\n" and matplotlib.image.imread(target).std() > 0
