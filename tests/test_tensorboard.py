"""``--tensorboard DIR`` of train, compare and sweep, and ``tensorboard=`` of steplr.compare and steplr.sweep: the
events are read back with TensorBoard's own reader and every value must equal the run's History (as the 32-bit
float TensorBoard stores), one run folder per schedule (or sweep config) and seed."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import steplr
from steplr._extras import MissingExtraError
from steplr.cli.main import main
from steplr.errors import SteplrValueError
from steplr.training.config import History

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

# The layout users read in TensorBoard (written out here, not imported: the test pins it).
EPOCH_TAGS = {
    "loss/train": "train_loss",
    "loss/validation": "val_loss",
    "loss/test": "test_loss",
    "accuracy/train": "train_acc",
    "accuracy/validation": "val_acc",
    "accuracy/test": "test_acc",
}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def read_run(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of one TensorBoard run folder, by tag: (step, value) in step order."""
    reader = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def expected(history: History) -> dict[str, list[tuple[int, float]]]:
    """What a run folder must hold: the LR at every 0-based iteration, each metric at every 1-based epoch, as
    float32; a NaN metric (no validation split, no accuracy) is no tag at all."""
    scalars = {"lr": [(i, float(np.float32(lr))) for i, lr in enumerate(history.iteration_lrs)]}
    for tag, name in EPOCH_TAGS.items():
        values = [(e.epoch, float(np.float32(getattr(e, name)))) for e in history.epochs]
        if not any(math.isnan(v) for _, v in values):
            scalars[tag] = values
    return scalars


def run_folders(root: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob("events.out.tfevents.*"))


# ------------------------------------------------------------------------------------------------- train


def test_train_writes_every_lr_and_epoch_metric_of_its_history(tmp_path):
    code, out, err = run(
        "train", "qwerty", "--epochs", "3", "--validation", "0.2", "--step-size", "1", "--gamma", "0.5",
        "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb"),
    )  # fmt: skip
    assert code == 0, err
    assert f"tensorboard: 1 run in {tmp_path / 'tb'}/" in out
    assert run_folders(tmp_path / "tb") == ["step/seed-0"]
    history = History.from_dict(json.loads((tmp_path / "run" / "history.json").read_text()))
    scalars = read_run(tmp_path / "tb" / "step" / "seed-0")
    assert sorted(scalars) == sorted(["lr", *EPOCH_TAGS])  # a validation split: all six metrics
    assert scalars == expected(history)
    assert len(scalars["lr"]) == len(history.iteration_lrs) > 3 and scalars["lr"][-1][1] < scalars["lr"][0][1]


def test_train_without_validation_has_no_validation_tags_and_a_second_run_is_refused(tmp_path):
    tb = tmp_path / "tb"
    args = ["train", "qwerty", "--epochs", "1", "--seed", "3", "--tensorboard", str(tb)]
    assert run(*args, "--out", str(tmp_path / "a"))[0] == 0
    scalars = read_run(tb / "step" / "seed-3")
    assert "loss/validation" not in scalars and "accuracy/validation" not in scalars
    history = History.from_dict(json.loads((tmp_path / "a" / "history.json").read_text()))
    assert scalars == expected(history)
    # The same run folder again: refused before anything is written, unless --force replaces it.
    code, out, err = run(*args, "--out", str(tmp_path / "b"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"--tensorboard: {tb / 'step' / 'seed-3'} already holds a run" in err
    assert not (tmp_path / "b").exists()
    assert run(*args, "--out", str(tmp_path / "b"), "--force")[0] == 0
    assert len(list((tb / "step" / "seed-3").iterdir())) == 1  # the old events replaced, not added to


def test_train_resume_rewrites_the_run_with_the_whole_history(tmp_path):
    args = ["train", "qwerty", "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]
    assert run(*args, "--epochs", "1")[0] == 0
    assert run(*args, "--epochs", "2", "--resume")[0] == 0  # a finished run extended by one epoch
    history = History.from_dict(json.loads((tmp_path / "run" / "history.json").read_text()))
    assert [e.epoch for e in history.epochs] == [1, 2]
    assert read_run(tmp_path / "tb" / "step" / "seed-0") == expected(history)
    assert len(list((tmp_path / "tb" / "step" / "seed-0").iterdir())) == 1


def test_a_file_as_the_tensorboard_folder_is_one_line_and_nothing_is_written(tmp_path):
    (tmp_path / "tb").write_text("")
    code, out, err = run("train", "qwerty", "--epochs", "1", "--out", str(tmp_path / "run"), "--tensorboard",
                         str(tmp_path / "tb"))  # fmt: skip
    assert (code, out) == (2, "")
    assert err == f"steplr: error: --tensorboard {str(tmp_path / 'tb')!r} exists and is not a folder\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "compare", "sweep"])
def test_without_tensorboard_installed_the_extra_is_named_before_training(tmp_path, monkeypatch, command):
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith(("tensorboard.", "torch.utils.tens"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what `import tensorboard` meets when it is missing
    code, out, err = run(command, "qwerty", "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb"))
    assert (code, out) == (2, "")
    assert err == f"steplr: error: steplr {command} needs tensorboard, which is not installed: " \
                  "pip install 'steplr[tensorboard]'\n"  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_optuna_refuses_tensorboard_in_one_line(tmp_path):
    code, _, err = run("sweep", "qwerty", "--engine", "optuna", "--tensorboard", str(tmp_path / "tb"))
    assert code == 2 and err == "steplr: error: --tensorboard applies to --engine grid, not optuna\n"


# ------------------------------------------------------------------------------------------- compare, sweep


def test_compare_writes_one_run_per_schedule_and_seed(tmp_path):
    tb = tmp_path / "tb"
    code, _, err = run(
        "compare", "qwerty", "--schedules", "step", "--seeds", "2", "--epochs", "2",
        "--out", str(tmp_path / "cmp"), "--tensorboard", str(tb),
    )  # fmt: skip
    assert code == 0, err
    assert run_folders(tb) == ["none/seed-0", "none/seed-1", "step/seed-0", "step/seed-1"]
    summary = {row["schedule"]: row for row in json.loads((tmp_path / "cmp" / "summary.json").read_text())["rows"]}
    for schedule in ("none", "step"):
        runs = [read_run(tb / schedule / f"seed-{seed}") for seed in (0, 1)]
        for scalars in runs:
            assert sorted(scalars) == sorted(["lr", *EPOCH_TAGS])
            assert [step for step, _ in scalars["accuracy/test"]] == [1, 2]
        final = [scalars["accuracy/test"][-1][1] for scalars in runs]
        assert np.mean(final) == pytest.approx(summary[schedule]["test_acc_mean"], abs=1e-7)
        validation = [scalars["accuracy/validation"][-1][1] for scalars in runs]
        assert np.mean(validation) == pytest.approx(summary[schedule]["val_acc_mean"], abs=1e-7)
    assert {value for _, value in read_run(tb / "none" / "seed-0")["lr"]} == {float(np.float32(0.01))}


def test_sweep_writes_one_run_per_config_and_seed_with_the_final_metrics_of_results_csv(tmp_path):
    tb = tmp_path / "tb"
    code, _, err = run(
        "sweep", "qwerty", "--step-size", "1,2", "--gamma", "0.5", "--seeds", "2", "--epochs", "2",
        "--out", str(tmp_path / "sweep"), "--tensorboard", str(tb),
    )  # fmt: skip
    assert code == 0, err
    labels = ["none_lr-0.01", "step-1ep_gamma-0.5_lr-0.01", "step-2ep_gamma-0.5_lr-0.01"]
    assert run_folders(tb) == [f"{label}/seed-{seed}" for label in labels for seed in (0, 1)]
    with (tmp_path / "sweep" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    for row in rows:
        label = "none_lr-0.01" if row["schedule"] == "none" else f"step-{row['step_size']}_gamma-0.5_lr-0.01"
        scalars = read_run(tb / label / f"seed-{row['seed']}")
        for tag, column in (
            ("accuracy/test", "test_acc"),
            ("loss/validation", "val_loss"),
            ("loss/train", "train_loss"),
        ):
            assert scalars[tag][-1] == (2, float(np.float32(float(row[column])))), (label, tag)


def test_grid_sweep_runs_is_grid_sweep_with_the_histories_kept():
    """The TensorBoard path of a sweep is grid_sweep with on_run keeping the histories: the same result."""
    from steplr.experiments.grid import grid_sweep
    from steplr.experiments.tensorboard import grid_sweep_runs
    from steplr.training.data import load_qwerty

    arguments = {
        "grid": {"power": [1.0, 2.0]},
        "seeds": [0, 1],
        "lrs": [0.01, 0.05],
        "overrides": {"epochs": 2},
        "schedule": "polynomial",
    }
    plain = grid_sweep("qwerty", load_qwerty(), **arguments)
    kept, runs = grid_sweep_runs("qwerty", load_qwerty(), **arguments)
    assert kept == plain  # every row, final metric, baseline loss and setting
    assert len(runs) == len(plain.rows) == (2 + 1) * 2 * 2
    for row, (label, seed, history) in zip(plain.rows, runs):
        assert seed == row["seed"] and history.epochs[-1].test_acc == row["test_acc"]
        assert label == (f"none, lr {row['lr']:g}" if row["schedule"] == "none" else
                         f"power {row['power']:g}, lr {row['lr']:g}")  # fmt: skip


# ---------------------------------------------------------------------------------------------- the API


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def blobs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x[:96], y[:96], x[96:], y[96:]


SMALL = {"epochs": 3, "batch_size": 16, "lr": 0.05, "engine": "sequential"}


def test_api_compare_writes_each_history_exactly(tmp_path):
    result = steplr.compare(
        model=mlp, data=blobs(), schedules=["step", "cosine"], seeds=2, interval="iteration",
        tensorboard=tmp_path / "tb", **SMALL,
    )  # fmt: skip
    assert sorted(result.histories) == [(s, seed) for s in ("cosine", "none", "step") for seed in (0, 1)]
    assert len(run_folders(tmp_path / "tb")) == 6
    for (schedule, seed), history in result.histories.items():
        assert read_run(tmp_path / "tb" / schedule / f"seed-{seed}") == expected(history), (schedule, seed)
    # A second call into the same folder is refused before training; another folder beside them is fine.
    with pytest.raises(SteplrValueError, match=r"^tensorboard: .*none/seed-0 already holds a run: give another"):
        steplr.compare(model=mlp, data=blobs(), schedules=["step"], seeds=1, tensorboard=tmp_path / "tb", **SMALL)
    with pytest.raises(SteplrValueError, match="tensorboard must name a folder, got ''"):
        steplr.compare(model=mlp, data=blobs(), schedules=["step"], seeds=1, tensorboard="", **SMALL)


def test_api_sweep_writes_each_history_and_keeps_the_sweep_s_result(tmp_path):
    arguments = {"model": mlp, "data": blobs(), "step_size": ["1ep"], "gamma": [0.1, 0.5], "seeds": 2, **SMALL}
    result = steplr.sweep(**arguments, tensorboard=tmp_path / "tb")
    plain = steplr.sweep(**arguments)  # the same sweep without TensorBoard: the same runs and the same summary
    assert result.runs == plain.runs and result.rows == plain.rows and plain.histories == []
    assert [(label, seed) for label, seed, _ in result.histories] == [
        (label, seed)
        for label in ("step 1ep, gamma 0.1, lr 0.05", "step 1ep, gamma 0.5, lr 0.05", "none, lr 0.05")
        for seed in (0, 1)
    ]
    for label, seed, history in result.histories:
        folder = tmp_path / "tb" / label.replace(", ", "_").replace(" ", "-") / f"seed-{seed}"
        assert read_run(folder) == expected(history), folder
    assert len(run_folders(tmp_path / "tb")) == 6


def test_a_regression_has_no_accuracy_tags(tmp_path):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(80, 3, generator=g)
    y = x @ torch.tensor([0.5, -1.0, 2.0])
    result = steplr.compare(
        model=lambda: nn.Linear(3, 1), data=(x[:64], y[:64], x[64:], y[64:]), schedules=["step"], seeds=1,
        loss="mse", tensorboard=tmp_path / "tb", **SMALL,
    )  # fmt: skip
    scalars = read_run(tmp_path / "tb" / "step" / "seed-0")
    assert sorted(scalars) == ["loss/test", "loss/train", "loss/validation", "lr"]
    assert scalars == expected(result.histories[("step", 0)])


def test_api_without_tensorboard_installed_names_the_extra_before_training(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith(("tensorboard.", "torch.utils.tens"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    trained: list[object] = []
    with pytest.raises(MissingExtraError, match=r"^tensorboard is not installed: pip install 'steplr\[tensorboard\]'$"):
        steplr.sweep(model=mlp, data=blobs(), gamma=[0.5], step_size=["1ep"], seeds=1, progress=trained.append,
                     tensorboard=tmp_path / "tb", **SMALL)  # fmt: skip
    assert trained == [] and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ --model and --data

NET = """
import torch
from torch import nn


def build_net():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def load():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x[:96], y[:96], x[96:], y[96:]
"""


@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_a_user_model_on_the_command_line_writes_the_runs_the_api_writes(tmp_path, command):
    (tmp_path / "net.py").write_text(NET)
    model = ["--model", f"{tmp_path / 'net.py'}:build_net", "--data", f"{tmp_path / 'net.py'}:load"]
    chosen = ["--schedules", "step"] if command == "compare" else ["--step-size", "1", "--gamma", "0.5"]
    code, out, err = run(
        command, *model, *chosen, "--seeds", "2", "--epochs", "2", "--batch-size", "16", "--lr", "0.05",
        "--engine", "sequential", "--out", str(tmp_path / "out"), "--tensorboard", str(tmp_path / "cli"),
    )  # fmt: skip
    assert code == 0, err
    labels = ["none", "step"] if command == "compare" else ["none_lr-0.05", "step-1ep_gamma-0.5_lr-0.05"]
    folders = [f"{label}/seed-{seed}" for label in labels for seed in (0, 1)]
    assert run_folders(tmp_path / "cli") == folders
    assert f"tensorboard: 4 runs in {tmp_path / 'cli'}/" in out
    # The same runs through the API write the same scalars.
    spec = importlib.util.spec_from_file_location("tensorboard_test_net", tmp_path / "net.py")
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    same = {"model": net.build_net, "data": net.load(), "seeds": 2, "epochs": 2, "batch_size": 16, "lr": 0.05}
    if command == "compare":
        steplr.compare(**same, schedules=["step"], engine="sequential", tensorboard=tmp_path / "api")
    else:
        steplr.sweep(**same, step_size=["1ep"], gamma=[0.5], engine="sequential", tensorboard=tmp_path / "api")
    for folder in folders:
        assert read_run(tmp_path / "cli" / folder) == read_run(tmp_path / "api" / folder), folder


def test_schedule_labels_become_folders_inside_the_tensorboard_folder(tmp_path):
    tb = tmp_path / "inside" / "tb"
    steplr.compare(model=mlp, data=blobs(), schedules={"..": "step", "a/b": "cosine"}, seeds=1, tensorboard=tb,
                   **SMALL)  # fmt: skip
    assert run_folders(tb) == ["a-b/seed-0", "none/seed-0", "run/seed-0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inside"] and list((tmp_path / "inside").iterdir()) == [tb]
    with pytest.raises(SteplrValueError, match=r"^tensorboard: the runs of 'a b' and 'a-b' would share .*a-b/seed-0"):
        steplr.compare(model=mlp, data=blobs(), schedules={"a b": "step", "a-b": "cosine"}, seeds=1,
                       tensorboard=tmp_path / "other", **SMALL)  # fmt: skip
    assert not (tmp_path / "other").exists()
