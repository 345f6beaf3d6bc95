"""``steplr compare|sweep --model SPEC --data SPEC`` end to end through main([...]), on files written to tmp_path:
the user's file imported once and its data loaded once, the run folder as for a recipe, and every failure in the
user's code or data one line on stderr with exit code 2 and nothing written."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import pytest

from steplr.cli.main import main
from steplr.cli.runs import ENGINES

NET = """
import pathlib
import torch
from torch import nn

# Counts imports and loads: each line written is one.
LOG = pathlib.Path(__file__).with_name("calls.txt")
with LOG.open("a") as log:
    log.write("import\\n")


def build_net():
    return nn.Sequential(nn.Linear(4, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 3))


def load():
    with LOG.open("a") as log:
        log.write("load\\n")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x[:96], y[:96], x[96:], y[96:]


def regression():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(80, 4, generator=g)
    return x[:64], x[:64, 0] * 2.0, x[64:], x[64:, 0] * 2.0


def one_output():
    return nn.Linear(4, 1)
"""


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def net(tmp_path: Path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


SMALL = ("--epochs", "2", "--batch-size", "16", "--lr", "0.05")


def test_compare_a_user_model_imports_its_file_once(net, tmp_path):
    out = tmp_path / "runs" / "mine"
    code, printed, err = run(
        "compare", "--model", f"{net}:build_net", "--data", f"{net}:load", "--schedules", "step,cosine",
        "--seeds", "3", "--momentum", "0.9", "--out", str(out), *SMALL,
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "calls.txt").read_text().split() == ["import", "load"]
    assert {"report.html", "summary.json", "summary.csv", "config.json", "lr.png", "loss.png", "accuracy.png"} <= {
        p.name for p in out.iterdir()
    }
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [row["schedule"] for row in rows] == ["none", "step", "cosine"]
    assert all(row["seeds"] == 3 for row in rows)
    config = json.loads((out / "config.json").read_text())["schedules"]["cosine"]
    assert (config["model"], config["momentum"], config["interval"]) == ("net:build_net", 0.9, "epoch")
    assert printed.startswith("net:build_net: 3 schedules x 3 seeds")
    assert f"report: {out / 'report.html'}" in printed


def test_auto_says_on_stderr_when_it_trains_one_model_after_another(net, tmp_path):
    from steplr.experiments.user import as_data, prepare_compare

    sys.path.insert(0, str(tmp_path))
    try:
        import net as module  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("net", None)
    prepared = prepare_compare(model=module.build_net, data=as_data(module.load()), schedules=["step"], seeds=1)
    code, _, err = run(
        "compare", "--model", f"{net}:build_net", "--data", f"{net}:load", "--schedules", "step", "--seeds", "1",
        "--out", str(tmp_path / "a"), *SMALL,
    )  # fmt: skip
    assert code == 0
    note = f"steplr: note: training the models one after another: {prepared.engine_reason}\n"
    assert (note in err) == (prepared.engine == "sequential")
    code, _, err = run(
        "compare", "--model", f"{net}:build_net", "--data", f"{net}:load", "--schedules", "step", "--seeds", "1",
        "--engine", "sequential", "--out", str(tmp_path / "b"), *SMALL,
    )  # fmt: skip
    assert code == 0 and "note:" not in err


def test_module_path_form_and_a_regression(net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "net", raising=False)
    code, _, err = run(
        "compare", "--model", "net:one_output", "--data", "net:regression", "--loss", "mse", "--schedules",
        "cosine", "--seeds", "2", "--out", "reg", *SMALL,
    )  # fmt: skip
    sys.modules.pop("net", None)
    assert code == 0, err
    rows = json.loads((tmp_path / "reg" / "summary.json").read_text())["rows"]
    assert [row["schedule"] for row in rows] == ["none", "cosine"] and rows[0]["test_loss_mean"] is not None


def test_sweep_a_user_model(net, tmp_path):
    out = tmp_path / "sweep"
    code, printed, err = run(
        "sweep", "--model", f"{net}:build_net", "--data", f"{net}:load", "--step-size", "1,2", "--gamma",
        "0.1,0.5", "--seeds", "2", "--engine", "sequential", "--optimizer", "adamw", "--weight-decay", "0.01",
        "--out", str(out), "--epochs", "2", "--lr", "0.01",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "calls.txt").read_text().split() == ["import", "load"]
    assert {"report.html", "summary.json", "results.csv", "config.json"} <= {p.name for p in out.iterdir()}
    assert len(json.loads((out / "summary.json").read_text())["rows"]) == 4
    assert f"report: {out / 'report.html'}" in printed


BROKEN = {
    "syntax.py": "def build_net(:\n",
    "raises.py": "raise RuntimeError('no GPU here')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
}


def _case(tmp_path: Path, net: Path, name: str) -> tuple[list[str], str]:
    """The arguments of a failing command and a piece of its one-line message."""
    for file, text in BROKEN.items():
        (tmp_path / file).write_text(text)
    (tmp_path / "bad.py").write_text(
        NET
        + textwrap.dedent(
            """
            def not_a_module():
                return 3

            def three():
                return load()[:3]

            def float_labels():
                x, y, xt, yt = load()
                return x, y.float(), xt, yt.float()

            def short_labels():
                x, y, xt, yt = load()
                return x, y[:-1], xt, yt

            def other_features():
                x, y, xt, yt = load()
                return x, y, xt[:, :3], yt

            def fails():
                raise OSError("disk gone")

            VALUE = 3
            """
        )
    )
    bad = tmp_path / "bad.py"
    model, data = ("--model", f"{net}:build_net"), ("--data", f"{net}:load")
    cases = {
        "missing file": ([*model[:1], f"{tmp_path}/nope.py:build_net", *data], "no file"),
        "syntax error": (["--model", f"{tmp_path}/syntax.py:build_net", *data], "importing"),
        "raises on import": (["--model", f"{tmp_path}/raises.py:build_net", *data], "RuntimeError: no GPU here"),
        "exits on import": (["--model", f"{tmp_path}/exits.py:build_net", *data], "SystemExit"),
        "no such function": (["--model", f"{net}:build", *data], "has no function 'build'"),
        "not a function": (["--model", f"{bad}:VALUE", *data], "not a function"),
        "no module": (["--model", "no_such_module_xyz:build", *data], "no module"),
        "no colon": (["--model", str(net), *data], "must be path/to/file.py:function"),
        "not a module": (["--model", f"{bad}:not_a_module", *data], "must return an nn.Module, got int"),
        "three tensors": ([*model, "--data", f"{bad}:three"], "got 3 items"),
        "float labels": ([*model, "--data", f"{bad}:float_labels"], "cross_entropy needs integer class labels"),
        "length mismatch": ([*model, "--data", f"{bad}:short_labels"], "x_train has 96 examples but y_train has 95"),
        "feature mismatch": ([*model, "--data", f"{bad}:other_features"], "train and test examples differ"),
        "load fails": ([*model, "--data", f"{bad}:fails"], "fails() failed: OSError: disk gone"),
        "wrong output": (["--model", f"{net}:one_output", *data], "outputs of shape (2, 1)"),
        "recipe and model": (["qwerty", *model, *data], "not both"),
        "model without data": ([*model], "--model needs --data"),
        "data without model": ([*data], "--data needs --model"),
        "nothing": ([], "give a recipe"),
        "mse on a recipe": (["qwerty", "--loss", "mse"], "--loss mse applies to --model"),
        "tiny budget": ([*model, *data, "--max-memory", "1000"], "--max-memory"),
        "nesterov alone": ([*model, *data, "--nesterov"], "nesterov needs a momentum"),
    }
    return cases[name]


CASES = [
    "missing file",
    "syntax error",
    "raises on import",
    "exits on import",
    "no such function",
    "not a function",
    "no module",
    "no colon",
    "not a module",
    "three tensors",
    "float labels",
    "length mismatch",
    "feature mismatch",
    "load fails",
    "wrong output",
    "recipe and model",
    "model without data",
    "data without model",
    "nothing",
    "mse on a recipe",
    "tiny budget",
    "nesterov alone",
]


@pytest.mark.parametrize("name", CASES)
def test_every_failure_is_one_line_and_exit_2(net, tmp_path, name):
    argv, message = _case(tmp_path, net, name)
    out = tmp_path / "never"
    code, printed, err = run("compare", *argv, "--out", str(out), *SMALL)
    assert code == 2, err
    assert printed == ""
    assert err.count("\n") == 1 and err.startswith("steplr: error: ") and "Traceback" not in err
    assert message in err
    assert not out.exists()


def test_sweep_refuses_the_model_with_optuna_and_shares_the_failures(net, tmp_path):
    code, _, err = run("sweep", "--engine", "optuna", "--model", f"{net}:build_net", "--data", f"{net}:load")
    assert code == 2 and "--model applies to --engine grid, not optuna" in err
    code, _, err = run("sweep", "--model", f"{net}:one_output", "--data", f"{net}:load", "--out", str(tmp_path / "x"))
    assert code == 2 and err.count("\n") == 1 and "outputs of shape (2, 1)" in err
    assert not (tmp_path / "x").exists()


def test_the_cli_engines_are_the_trainers():
    from steplr.training.engines import ENGINES as TRAINERS

    assert ENGINES == TRAINERS
