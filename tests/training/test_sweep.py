"""Batched training equals sequential training; the grid sweep and its command."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
import pytest
import torch

from steplr.cli.main import main
from steplr.experiments.compare import recipe_config
from steplr.experiments.grid import grid_sweep
from steplr.schedules.kinds import StepDecay
from steplr.training.batched import train_batched
from steplr.training.data import load_digits, load_qwerty
from steplr.training.numerics import StackedModels
from steplr.training.plan import lr_table
from steplr.training.train import CHECKPOINT, train


def mixed_configs(recipe: str) -> list:
    base = recipe_config(recipe)
    configs = [
        base.with_settings(step_size=s, gamma=g, lr=lr, seed=seed)
        for s, g, lr, seed in [("1ep", 0.5, base.lr, 0), ("2ep", 0.1, base.lr * 3, 1), ("5ep", 0.9, base.lr, 2)]
    ]
    configs += [base.with_settings(schedule=name, seed=3) for name in ("none", "cosine", "plateau")]
    configs.append(base.with_settings(schedule="multistep", milestones=("2ep", "3ep"), seed=4))
    configs.append(base.with_settings(schedule="exponential", gamma=0.8, seed=5))
    return configs


@pytest.mark.parametrize(("recipe", "validation"), [("qwerty", 0.0), ("digits", 0.0), ("qwerty", 1 / 6)])
def test_model_i_of_a_batch_is_the_sequential_run(recipe, validation, tmp_path):
    data = load_qwerty() if recipe == "qwerty" else load_digits()
    # The whole recipe: 460 SGD steps for qwerty, 5 Adam epochs for digits; with a validation split, plateau steps
    # on the validation loss in both engines.
    configs = [dataclasses.replace(c, validation=validation) for c in mixed_configs(recipe)]
    models: list[StackedModels] = []
    batched = train_batched(configs, data, models_out=models)
    for i, config in enumerate(configs):
        folder = tmp_path / str(i)
        folder.mkdir()
        sequential = train(config, data, folder)
        assert batched[i].iteration_lrs == sequential.iteration_lrs, config.schedule
        for ours, theirs in zip(batched[i].epochs, sequential.epochs):
            for field in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
                assert getattr(ours, field) == pytest.approx(getattr(theirs, field), abs=1e-6, nan_ok=not validation), (
                    config.schedule,
                    field,
                )
            assert ours.lr == theirs.lr
        weights = torch.load(folder / CHECKPOINT, weights_only=True)["model"]
        for name, value in models[0].state_dict(i).items():
            assert torch.allclose(value, weights[name], rtol=0, atol=1e-6), (config.schedule, name)


def test_lr_table_is_one_broadcast_call_of_the_closed_form():
    base = recipe_config("digits")
    configs = [base.with_settings(step_size=s, gamma=g) for s, g in [("1ep", 0.5), ("2ep", 0.1), (3, 0.9)]]
    table = lr_table(configs, batches=23)
    assert table.shape == (3, 5)
    assert table[1].tolist() == [StepDecay(2, 0.1).lr(base.lr, t) for t in range(5)]
    assert table[2].tolist() == [StepDecay(3, 0.9).lr(base.lr, t) for t in range(5)]


def test_configs_trained_together_must_share_their_shape():
    base = recipe_config("qwerty")
    with pytest.raises(ValueError, match="must share batch_size"):
        train_batched([base, dataclasses.replace(base, batch_size=16)], load_qwerty())
    with pytest.raises(ValueError, match="at least one config"):
        train_batched([], load_qwerty())


def test_a_diverging_model_does_not_spoil_the_others():
    base = recipe_config("qwerty", epochs=2, schedule="none")
    configs = [base, dataclasses.replace(base, lr=1e6)]
    histories = train_batched(configs, load_qwerty())
    assert np.isnan(histories[1].epochs[-1].test_loss)
    assert histories[0].as_dict() == train_batched([base], load_qwerty())[0].as_dict()


def test_on_epoch_sees_every_models_record_of_each_epoch_and_may_stop_the_training():
    base = recipe_config("qwerty", epochs=3, schedule="none")
    configs = [base, dataclasses.replace(base, lr=1e6), dataclasses.replace(base, seed=1)]
    seen: list[list] = []
    histories = train_batched(configs, load_qwerty(), on_epoch=lambda records: seen.append(list(records)))
    assert [[r.epoch for r in records] for records in seen] == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    for i, history in enumerate(histories):
        assert [records[i] for records in seen] == history.epochs  # NaN fields compare by identity: same objects

    class Stop(Exception):
        pass

    def stop_after_two(records):
        if records[0].epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train_batched(configs, load_qwerty(), on_epoch=stop_after_two)


def test_grid_sweep_rows_and_baseline():
    result = grid_sweep(
        "qwerty",
        load_qwerty(),
        grid={"step_size": ["2ep", "10ep"], "gamma": [0.5, 0.9]},
        seeds=[0, 1],
        overrides={"epochs": 6},
    )
    assert len(result.rows) == 2 * 2 * 2 + 2
    summaries = result.summaries()
    # Ranked on validation accuracy (the choice), never on test.
    assert [s.val_acc_mean for s in summaries] == sorted((s.val_acc_mean for s in summaries), reverse=True)
    baseline = [r["test_acc"] for r in result.rows if r["schedule"] == "none"]
    assert summaries[0].baseline_test_acc_mean == pytest.approx(sum(baseline) / 2)
    assert all(0 <= r["val_acc"] <= 1 for r in result.rows)
    # step 10ep never decays within 6 epochs, so it trains exactly like the constant LR on the same seeds
    flat = [s for s in summaries if s.step_size == "10ep"]
    assert all(s.diff_mean == pytest.approx(0.0, abs=1e-12) and s.verdict == "no detectable difference" for s in flat)
    # Holm over the four configs: every adjusted p is at least its raw p.
    assert all(s.p_adjusted >= s.p for s in summaries)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_sweep_command_writes_results_heatmap_and_report(tmp_path):
    out = tmp_path / "sweep"
    code, text, err = run(
        "sweep",
        "qwerty",
        "--step-size",
        "1ep,5ep",
        "--gamma",
        "0.5,0.9",
        "--seeds",
        "2",
        "--epochs",
        "6",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {
        "results.csv",
        "summary.json",
        "heatmap.png",
        "best_lr.png",
        "report.html",
        "config.json",
    }
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["validation"] == pytest.approx(1 / 6) and config["seeds"] == [0, 1]
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 2 + 2 and {r["schedule"] for r in rows} == {"step", "none"}
    assert text.splitlines()[0] == "qwerty: 4 configs x 2 seeds (best five on validation)"
    assert "chosen on validation: step" in text and "pts" in text
    summary = json.loads((out / "summary.json").read_text())
    fields = {
        "step_size",
        "gamma",
        "lr",
        "val_acc_mean",
        "test_acc_mean",
        "test_acc_sd",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "p",
        "p_adjusted",
        "verdict",
    }
    assert len(summary["rows"]) == 4 and all(fields <= set(row) for row in summary["rows"])
    assert all(row["verdict"] in ("better", "worse", "no detectable difference") for row in summary["rows"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "chosen on validation" in page and "Holm" in page
    assert "beat" not in page and "beat" not in text  # only the verdict words


def test_a_two_lr_sweep_and_flags_of_the_other_engine(tmp_path):
    out = tmp_path / "two"
    code, _, err = run(
        "sweep",
        "qwerty",
        "--step-size",
        "2,5",
        "--gamma",
        "0.5",
        "--lr",
        "0.01,0.05",
        "--seeds",
        "1",
        "--epochs",
        "3",
        "--out",
        str(out),
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert {row["lr"] for row in summary["rows"]} == {0.01, 0.05}
    assert {row["step_size"] for row in summary["rows"]} == {"2ep", "5ep"}  # bare numbers are epochs
    assert all(row["verdict"] == "1 seed: no test" for row in summary["rows"])
    for flag, value in (
        ("--trials", "5"),
        ("--workers", "2"),
        ("--study", "s"),
        ("--storage", "x"),
        ("--grace", "5"),
        ("--db-timeout", "5"),
    ):
        code, _, err = run("sweep", "qwerty", flag, value, "--out", str(tmp_path / "n"))
        assert code == 2 and f"{flag} applies to --engine optuna, not grid" in err
        assert not (tmp_path / "n").exists()
    code, _, err = run("sweep", "qwerty", "--step-size", "1:5", "--out", str(tmp_path / "n"))
    assert code == 2 and "a range LOW:HIGH is for --engine optuna" in err


def test_the_sweep_command_tunes_any_registered_closed_form_kind(tmp_path):
    """`--schedule KIND` and that kind's flags as comma lists, from the registry: here polynomial decay's power."""
    out = tmp_path / "poly"
    code, text, err = run(
        "sweep",
        "qwerty",
        "--schedule",
        "polynomial",
        "--power",
        "1,2",
        "--seeds",
        "2",
        "--epochs",
        "3",
        "--out",
        str(out),
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert [list(row)[:2] for row in summary["rows"]] == [["power", "lr"]] * 2
    assert sorted(row["power"] for row in summary["rows"]) == [1.0, 2.0]
    assert "chosen on validation: power" in text and "step_size" not in text
    with open(out / "results.csv", newline="") as handle:
        assert {r["schedule"] for r in csv.DictReader(handle)} == {"polynomial", "none"}
    for argv, message in (
        (["--step-size", "2"], "--step-size"),
        (["--engine", "optuna"], "optuna tunes step only"),
        (["--schedule", "plateau"], "plateau"),
    ):
        code, _, err = run("sweep", "qwerty", "--schedule", "polynomial", *argv, "--out", str(tmp_path / "n"))
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "n").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--step-size", ""], "--step-size: expected a comma-separated list of durations"),
        (["--gamma", "0"], "gamma must be a finite number > 0, got 0.0"),
        (["--gamma", "0.5,abc"], "--gamma: in '0.5,abc': expected a number, got 'abc'"),
        (["--step-size", "0"], "--step-size: duration must be positive, got '0'"),
        (["--seeds", "0"], "argument --seeds: must be a positive integer, got '0'"),
        (["--gamma", "0.5,0.5"], "--gamma lists a value twice: 0.5,0.5"),
    ],
)
def test_bad_sweep_input_is_one_line(tmp_path, argv, message):
    code, out, err = run("sweep", "qwerty", *argv, "--epochs", "2", "--out", str(tmp_path / "x"))
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_grid_sweep_names_a_bad_value_before_training():
    with pytest.raises(ValueError, match=r"gamma must be a finite number > 0, got -0\.5"):
        grid_sweep("qwerty", load_qwerty(), grid={"step_size": ["1ep", "2ep"], "gamma": [0.5, -0.5]}, seeds=[0])
    with pytest.raises(ValueError, match="step sizes must list at least one value"):
        grid_sweep("qwerty", load_qwerty(), grid={"step_size": [], "gamma": [0.5]}, seeds=[0])
