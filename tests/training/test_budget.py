"""Work is sized before anything is allocated: caps and the memory budget, one line naming the flag."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from steplr.cli.main import main
from steplr.training.budget import MAX_RUN_STEPS, BudgetError, Work, check, estimate, parse_size


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("text", "size"),
    [("4G", 4 * 2**30), ("512M", 512 * 2**20), ("1.5GB", int(1.5 * 2**30)), ("800000", 800000), ("64k", 65536)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "4X", "-1G", "0", "G"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


def test_estimate_grows_with_models_and_iterations():
    small = Work(models=10, iterations=1000, steps=1000, together=10, parameters=51, data_bytes=5760)
    assert estimate(Work(20, 1000, 1000, 20, 51, 5760)) > estimate(small)
    assert estimate(Work(10, 2000, 2000, 10, 51, 5760)) > estimate(small)
    check(small, estimate(small), "x")  # exactly the estimate fits
    with pytest.raises(BudgetError, match="more than --max-memory"):
        check(small, estimate(small) - 1, "x")
    with pytest.raises(BudgetError, match="lower --epochs"):
        check(Work(1, MAX_RUN_STEPS + 1, 1, 1, 51, 0), None, "x")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "qwerty", "--epochs", "100000000"], "1,900,000,000 iterations per run, more than steplr runs"),
        (["compare", "qwerty", "--seeds", "99999999999"], "models, more than steplr trains in one command"),
        (["sweep", "qwerty", "--epochs", "100000000"], "iterations per run, more than steplr runs"),
        (["sweep", "qwerty", "--seeds", "99999999999"], "lower --seeds"),
        (["train", "qwerty", "--epochs", "100000000"], "lower --epochs"),
        (
            ["compare", "qwerty", "--epochs", "2000", "--seeds", "50", "--max-memory", "100M"],
            "more than --max-memory 100.0 MiB",
        ),
        (["compare", "qwerty", "--max-memory", "4X"], "argument --max-memory: expected a size"),
    ],
)
def test_oversized_work_is_refused_before_anything_is_allocated(tmp_path, argv, message):
    code, out, err = run(*argv, "--out", str(tmp_path / "x"))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_refused_request_is_refused_fast_and_small(tmp_path):
    # What used to allocate a 17.8 GB LR table: the check comes first, so the process stays near its start-up size.
    # The peak is VmHWM, this process's own: getrusage's ru_maxrss carries over the RSS of the process that started
    # it (Linux keeps the larger across exec), and the test session's process holds over 1 GB once it has run the
    # Keras, JAX and Hugging Face tests.
    script = (
        "import re, sys; from pathlib import Path; from steplr.cli.main import main; "
        f"code = main(['compare', 'qwerty', '--epochs', '100000000', '--out', {str(tmp_path / 'x')!r}]); "
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1)); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2
    assert int(done.stdout.strip()) < 1_000_000  # KiB: under 1 GB, torch included


def test_a_recipe_name_that_is_a_path_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in ("train", "compare", "sweep"):
        code, _, err = run(command, "../../x")
        assert code == 2 and "unknown recipe '../../x'" in err
    code, _, err = run("sweep", "../../x", "--engine", "optuna")
    assert code == 2 and "../../x" in err
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent.parent / "x").exists()


def test_an_optuna_search_is_sized_before_it_starts(tmp_path):
    code, _, err = run("sweep", "qwerty", "--engine", "optuna", "--epochs", "100000000", "--out", str(tmp_path / "o"))
    assert code == 2 and "(a trial) asks for 1,900,000,000 iterations per run" in err
    code, _, err = run(
        "sweep",
        "qwerty",
        "--engine",
        "optuna",
        "--epochs",
        "2000",
        "--seeds",
        "500",
        "--max-memory",
        "50M",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "(the confirmation) needs about" in err
    assert not (tmp_path / "o").exists()
