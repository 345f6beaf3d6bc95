"""One error hierarchy and one boundary: every error steplr raises on purpose is a SteplrError, which
``steplr.cli.main.main`` shows as one line (exit 2; 1 for a diverged run, 3 for a lost study storage), while anything
else is a bug and keeps its traceback (exit 1). Also: a negative number is read the same way by every command."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import steplr.cli.main as cli_main
from steplr._extras import MissingExtraError
from steplr.cli.args import UsageError
from steplr.cli.runs import RunUsageError
from steplr.errors import DivergedError, SteplrError, SteplrTypeError, SteplrValueError, TrainError
from steplr.experiments.tune_storage import StorageLost, SweepError
from steplr.training.budget import BudgetError
from steplr.training.data import DataError


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_main.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# --- the hierarchy ---


@pytest.mark.parametrize(
    ("error", "also"),
    [
        (UsageError, None),
        (RunUsageError, None),
        (SweepError, ValueError),
        (StorageLost, ValueError),
        (DataError, ValueError),
        (BudgetError, ValueError),
        (TrainError, RuntimeError),
        (DivergedError, RuntimeError),
        (MissingExtraError, ImportError),
        (SteplrValueError, ValueError),
        (SteplrTypeError, TypeError),
    ],
)
def test_every_error_steplr_raises_on_purpose_is_a_steplr_error(error, also):
    assert issubclass(error, SteplrError)
    if also is not None:  # the library's promise to code that catches the builtin kind
        assert issubclass(error, also)


def test_library_refusals_reachable_from_the_cli_are_steplr_errors():
    from steplr.experiments.grid import _check_list

    with pytest.raises(SteplrValueError, match="gamma lists a value twice"):
        _check_list([0.5, 0.5], "gamma")
    with pytest.raises(SteplrValueError, match="step_size must list at least one value"):
        _check_list([], "step_size")


# --- the boundary ---


def test_a_known_error_is_one_line_and_exit_code_2():
    code, out, err = run("explain", "--epochs", "10", "--gamma", "-1")
    assert (code, out) == (2, "")
    assert err == "steplr: error: gamma must be a finite number > 0, got -1.0\n"


def _raising(error: BaseException):
    def command(args, out, err):
        raise error

    return command


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug in explain"), ValueError("a bug: bare ValueError"), TypeError("a bug: bare TypeError")],
)
def test_an_unexpected_exception_keeps_its_traceback_and_exits_1(monkeypatch, error):
    # A command function that fails the way a bug would: the boundary must not disguise it as bad input.
    monkeypatch.setitem(cli_main.COMMANDS, "explain", _raising(error))
    code, out, err = run("explain", "--epochs", "10")
    assert (code, out) == (1, "")
    assert err.startswith("Traceback (most recent call last):")
    assert err.rstrip().endswith(f"{type(error).__name__}: {error}")
    assert "steplr: error:" not in err


def test_a_steplr_error_raised_anywhere_is_one_line(monkeypatch):
    monkeypatch.setitem(cli_main.COMMANDS, "explain", _raising(SteplrValueError("step_size must be positive, got 0")))
    assert run("explain", "--epochs", "10") == (2, "", "steplr: error: step_size must be positive, got 0\n")


def test_a_lost_storage_exits_3_and_a_divergence_1(monkeypatch):
    monkeypatch.setitem(cli_main.COMMANDS, "sweep", _raising(StorageLost("the study storage stopped answering")))
    assert run("sweep", "qwerty") == (3, "", "steplr: error: the study storage stopped answering\n")
    monkeypatch.setitem(cli_main.COMMANDS, "train", _raising(DivergedError(2, 7, float("nan"))))
    code, _, err = run("train", "qwerty")
    assert code == 1 and err == "steplr: loss became nan at epoch 2, iteration 7: stopped (history saved)\n"


def test_a_missing_module_of_steplr_itself_is_a_bug_not_a_missing_extra(monkeypatch):
    def command(args, out, err):
        import steplr.no_such_module  # noqa: F401

        return 0

    monkeypatch.setitem(cli_main.COMMANDS, "explain", command)
    code, _, err = run("explain", "--epochs", "10")
    assert code == 1 and "Traceback" in err and "No module named 'steplr.no_such_module'" in err


_BLOCKED = """
import sys
sys.modules[{module!r}] = None  # what an uninstalled package looks like to `import` (it raises ModuleNotFoundError)
from steplr.cli.main import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        (
            "matplotlib",
            ["plot", "--epochs", "4", "-o", "x.png"],
            "steplr: error: steplr plot needs matplotlib, which is not installed: pip install 'steplr[plot]'\n",
        ),
        (
            "scipy",
            ["compare", "qwerty", "--seeds", "2", "--out", "runs"],
            "steplr: error: steplr compare needs scipy, which is not installed: pip install 'steplr[experiments]'\n",
        ),
        (
            "optuna",
            ["sweep", "qwerty", "--engine", "optuna", "--out", "runs"],
            "steplr: error: steplr sweep needs optuna, which is not installed: pip install 'steplr[tune]'\n",
        ),
    ],
)
def test_a_missing_extra_is_named_in_one_line_and_nothing_is_written(tmp_path, module, argv, message):
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED.format(module=module, argv=argv)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)
    assert list(tmp_path.iterdir()) == []


# --- a negative number, in every command ---

_COMMANDS = {
    "explain": ["explain", "--epochs", "5"],
    "plot": ["plot", "--epochs", "5", "-o", "{tmp}/lr.png"],
    "train": ["train", "qwerty", "--out", "{tmp}/out"],
    "compare": ["compare", "qwerty", "--out", "{tmp}/out"],
    "sweep": ["sweep", "qwerty", "--out", "{tmp}/out"],
    "optuna": ["sweep", "qwerty", "--engine", "optuna", "--out", "{tmp}/out"],
}
_STEP_SIZE = (
    "argument --step-size: duration must be a positive integer or a duration such as '5ep' or '230it', "
    "got '-3' (a bare number counts epochs)"
)


def _negative(tmp_path: Path, command: str, flag: str) -> tuple[int, str, str]:
    argv = [a.format(tmp=tmp_path) for a in _COMMANDS[command]]
    return run(*argv, flag, "-3")


@pytest.mark.parametrize("command", list(_COMMANDS))
def test_a_negative_step_size_is_one_duration_error_everywhere(tmp_path, command):
    assert _negative(tmp_path, command, "--step-size") == (2, "", f"steplr: error: {_STEP_SIZE}\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "compare", "sweep", "optuna"])
def test_a_negative_validation_is_one_fraction_error_everywhere(tmp_path, command):
    expected = "steplr: error: argument --validation: expected a fraction in [0, 1), got '-3'\n"
    assert _negative(tmp_path, command, "--validation") == (2, "", expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["explain", "plot", "train", "compare", "sweep"])
def test_a_negative_lr_is_one_error_everywhere(tmp_path, command):
    expected = "steplr: error: --lr must be a finite number > 0, got -3.0\n"
    assert _negative(tmp_path, command, "--lr") == (2, "", expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["explain", "plot", "train", "compare"])
def test_a_negative_warmup_start_factor_is_refused_everywhere(tmp_path, command):
    # It used to be accepted (exit 0) whenever --warmup was not given.
    expected = "steplr: error: argument --warmup-start-factor: must be a number in [0, 1], got '-3'\n"
    assert _negative(tmp_path, command, "--warmup-start-factor") == (2, "", expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", list(_COMMANDS))
@pytest.mark.parametrize("flag", ["--epochs", "--seeds", "--batch-size", "--max-memory"])
def test_a_negative_count_is_read_as_a_value_not_an_option(tmp_path, command, flag):
    code, out, err = _negative(tmp_path, command, flag)
    assert (code, out) == (2, "") and err.count("\n") == 1
    if "unrecognized arguments" not in err:  # a flag the command has: its type refuses '-3', naming it
        assert err.startswith(f"steplr: error: argument {flag}: ") and err.endswith("got '-3'\n")
    assert list(tmp_path.iterdir()) == []
