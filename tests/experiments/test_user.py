"""steplr.compare and steplr.sweep on models and data written here: an MLP with LayerNorm, a tiny CNN fed from
map-style datasets, a regression with mse and a loss function of the user's; paired results, the out folder as the
CLI writes it, schedule objects as config specs, and every bad argument named before anything trains or is
written."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

import steplr
from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.experiments.results import COMPARE_COLUMNS, LOSS_COMPARE_COLUMNS
from steplr.experiments.user import as_data, model_label, schedule_spec
from steplr.schedules.kinds import Constant, Cosine, LinearWarmup, MultiStep, StepDecay, join


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 3))


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.head = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))


def regressor() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def blobs(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)

    def part(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(size, 4, generator=g)
        return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

    return (*part(n), *part(n // 4))


def images() -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 1, 4, 4, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:])


def targets() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(80, 3, generator=g)
    y = x @ torch.tensor([0.5, -1.0, 2.0])
    return x[:64], y[:64], x[64:], y[64:]


SMALL = {"epochs": 3, "batch_size": 16, "lr": 0.05, "engine": "sequential"}


@pytest.fixture(scope="module")
def mlp_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "mine"
    result = steplr.compare(
        model=mlp,
        data=blobs(),
        schedules={"step": StepDecay(1, 0.5), "late": StepDecay(100, 0.1), "cosine": "cosine"},
        seeds=3,
        momentum=0.9,
        weight_decay=5e-4,
        out=out,
        **SMALL,
    )
    return result, out


def test_compare_pairs_every_schedule_on_the_same_seeds(mlp_result):
    result, _ = mlp_result
    assert [row["schedule"] for row in result.rows] == ["none", "step", "late", "cosine"]
    assert set(result.histories) == {(name, seed) for name in ("none", "step", "late", "cosine") for seed in (0, 1, 2)}
    # A step decay that never decays within the run trains exactly as the constant LR on each seed: the same
    # initial weights and batch orders per seed, so the runs are paired.
    for seed in range(3):
        assert result.histories[("late", seed)].as_dict() == result.histories[("none", seed)].as_dict()
    assert result.histories[("none", 0)].as_dict() != result.histories[("none", 1)].as_dict()
    step = result.histories[("step", 0)].iteration_lrs
    assert step[0] == 0.05 and math.isclose(step[-1], 0.05 * 0.5**2)
    assert result.engine == "sequential" and result.engine_reason


def test_compare_records_the_user_model_and_optimizer_settings(mlp_result):
    result, out = mlp_result
    config = result.configs["step"]
    assert config.model == model_label(mlp) == f"{__name__}:mlp"
    assert (config.momentum, config.weight_decay, config.optimizer, config.interval) == (0.9, 5e-4, "sgd", "epoch")
    assert config.schedule.kind == "step" and dict(config.schedule.params) == {"step_size": 1, "gamma": 0.5}
    saved = json.loads((out / "config.json").read_text())
    assert saved["schedules"]["step"]["momentum"] == 0.9


def test_compare_writes_the_cli_folder(mlp_result):
    result, out = mlp_result
    assert {p.name for p in out.iterdir()} >= {
        "report.html",
        "summary.json",
        "summary.csv",
        "config.json",
        "lr.png",
        "loss.png",
        "accuracy.png",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == result.rows
    assert list(result.rows[0]) == list(COMPARE_COLUMNS)
    assert "mlp" in (out / "report.html").read_text()


def test_a_cnn_from_map_style_datasets_with_adamw():
    result = steplr.compare(
        model=TinyCNN, data=images(), schedules=["step"], seeds=2, optimizer="adamw", weight_decay=0.01, **SMALL
    )
    assert [row["schedule"] for row in result.rows] == ["none", "step"]
    history = result.histories[("step", 1)]
    assert len(history.epochs) == 3 and all(0 <= e.test_acc <= 1 for e in history.epochs)


def test_a_regression_with_mse_and_with_a_loss_function(tmp_path):
    out = tmp_path / "regression"
    mse = steplr.compare(model=regressor, data=targets(), schedules=["cosine"], seeds=2, loss="mse", out=out, **SMALL)
    last = mse.histories[("cosine", 0)].epochs[-1]
    assert math.isfinite(last.test_loss) and math.isnan(last.test_acc)
    # judged on loss: the rows, summary.json and figures of a regression (no accuracy figure)
    assert list(mse.rows[0]) == list(LOSS_COMPARE_COLUMNS)
    assert json.loads((out / "summary.json").read_text())["rows"] == mse.rows
    assert {p.name for p in out.iterdir()} >= {"report.html", "lr.png", "loss.png"}
    assert not (out / "accuracy.png").exists()

    def l1(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (outputs.squeeze(-1) - y).abs().mean()

    custom = steplr.compare(model=regressor, data=targets(), schedules=["cosine"], seeds=[4], loss=l1, **SMALL)
    assert custom.configs["cosine"].loss == "custom"
    first = custom.histories[("cosine", 4)].epochs[0]
    assert math.isfinite(first.train_loss)


def test_sweep_chooses_on_validation_and_writes_the_folder(tmp_path):
    out = tmp_path / "sweep"
    result = steplr.sweep(
        model=mlp, data=blobs(), step_size=[1, 2], gamma=[0.1, 0.5], seeds=2, out=out, **{**SMALL, "lr": [0.05, 0.1]}
    )
    assert len(result.rows) == 8 and result.best == result.rows[0]
    assert result.best["val_acc_mean"] == max(row["val_acc_mean"] for row in result.rows)
    assert result.best_config.lr == result.best["lr"] and result.best_config.schedule.kind == "step"
    assert len(result.runs) == (8 + 2) * 2  # every config and the constant LR per lr, on each seed
    assert {"report.html", "summary.json", "results.csv", "config.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "summary.json").read_text())["rows"][0]["lr"] == result.best["lr"]


def _bad(**changes):
    return {"model": mlp, "data": blobs(), "seeds": 2, **SMALL, **changes}


def _net_of(width: int):
    def net() -> nn.Module:
        return nn.Linear(4, width)

    return net


BAD = [
    ({"model": mlp()}, SteplrTypeError, "model must be a callable"),
    ({"model": lambda: 3}, SteplrTypeError, r"must return an nn.Module, got int"),
    ({"model": _net_of(2)}, SteplrValueError, r"model: net\(\) gives outputs of shape \(2, 2\).*3 classes"),
    ({"data": blobs()[:3]}, SteplrValueError, "data must be .* got 3 items"),
    (
        {"data": (torch.zeros(5, 4), torch.zeros(4).long(), torch.zeros(2, 4), torch.zeros(2).long())},
        SteplrValueError,
        "x_train has 5 examples but y_train has 4",
    ),
    (
        {"data": (torch.zeros(5, 4), torch.zeros(5).long(), torch.zeros(2, 3), torch.zeros(2).long())},
        SteplrValueError,
        r"train and test examples differ in shape: \(4,\) and \(3,\)",
    ),
    (
        {"data": (torch.zeros(5, 4), torch.zeros(5), torch.zeros(2, 4), torch.zeros(2))},
        SteplrTypeError,
        "cross_entropy needs integer class labels",
    ),
    ({"data": [1, 2]}, SteplrTypeError, "map-style dataset"),
    ({"seeds": 0}, SteplrValueError, "seeds must be"),
    ({"seeds": [1, 1]}, SteplrValueError, "seeds lists a seed twice"),
    ({"schedules": ["steep"]}, SteplrValueError, r"schedules\['steep'\]: unknown schedule"),
    ({"schedules": {"none": StepDecay(2)}}, SteplrValueError, "constant-LR baseline"),
    (
        {"schedules": {"x": join([Constant(), StepDecay(1), Constant()], [2, 4])}},
        SteplrValueError,
        r"schedules\['x'\]: a joined schedule",
    ),
    (
        {"schedules": {"w": join([LinearWarmup("5ep"), Cosine(3)], ["5ep"])}},
        SteplrValueError,
        r"schedules\['w'\]: warmup 5ep covers the whole run",
    ),
    ({"optimizer": "rmsprop"}, SteplrValueError, "optimizer must be one of"),
    ({"optimizer": "adam", "momentum": 0.9}, SteplrValueError, "momentum is SGD's setting"),
    ({"lr": -1.0}, SteplrValueError, "lr must be a finite number > 0"),
    ({"nesterov": True}, SteplrValueError, "nesterov needs a momentum"),
    ({"engine": "fast"}, SteplrValueError, "engine must be one of"),
    ({"loss": "hinge"}, SteplrValueError, "loss must be one of"),
    ({"max_memory": 1000}, SteplrValueError, "needs about"),
]


@pytest.mark.parametrize(("changes", "error", "message"), BAD)
def test_bad_arguments_are_named_before_anything_is_written(tmp_path, changes, error, message):
    out = tmp_path / "never"
    with pytest.raises(error, match=message):
        steplr.compare(**_bad(out=out, **changes))
    assert not out.exists()


def test_a_full_out_folder_and_a_bad_grid_are_refused_before_training(tmp_path):
    (tmp_path / "kept.txt").write_text("mine")
    with pytest.raises(SteplrValueError, match="is not empty"):
        steplr.compare(**_bad(out=tmp_path))
    with pytest.raises(SteplrValueError, match="gamma"):
        steplr.sweep(**_bad(gamma=[0.5, -0.5], out=tmp_path / "new"))
    with pytest.raises(SteplrValueError, match="validation 0"):
        steplr.sweep(**_bad(validation=0))
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]


def test_data_as_datasets_is_stacked_once():
    train, test = images()
    data = as_data((train, test))
    assert data.x_train.shape == (48, 1, 4, 4) and data.y_test.shape == (12,) and data.num_classes == 2
    assert torch.equal(data.x_train, train.tensors[0])


@settings(max_examples=60, deadline=None)
@given(
    step_size=st.integers(1, 12),
    gamma=st.floats(0.05, 1.0),
    warm=st.integers(0, 5),
    epochs=st.integers(6, 20),
    spe=st.integers(1, 4),
)
def test_a_schedule_object_becomes_a_spec_with_the_same_rates(step_size, gamma, warm, epochs, spe):
    schedule = StepDecay(step_size, gamma)
    if warm:
        schedule = join([LinearWarmup(warm, 0.2), schedule], [warm])
    built = schedule_spec(schedule).build(epochs, spe)
    for t in range(epochs * spe):
        assert built.lr(0.1, t) == schedule.lr(0.1, t)


def test_schedule_objects_of_each_closed_form_kind_map_to_their_kind():
    assert schedule_spec(Constant()).kind == "none"
    assert schedule_spec(Cosine("4ep", 0.001)).params["t_max"] == "4ep"
    assert dict(schedule_spec(MultiStep(["2ep", "4ep"], 0.5)).params) == {"milestones": ("2ep", "4ep"), "gamma": 0.5}
    with pytest.raises(SteplrValueError, match="counted"):
        schedule_spec(MultiStep([2, 2], 0.5, counted=True))


def wide() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 12_500), nn.ReLU(), nn.Linear(12_500, 3))  # ~100k parameters, ~1.6 MB of state


def test_the_budget_refuses_only_what_one_model_cannot_fit_when_the_engines_split():
    from steplr.experiments.compare import takes_max_memory
    from steplr.experiments.user import prepare_compare
    from steplr.training.budget import BudgetError

    settings = {"model": wide, "data": blobs(), "schedules": ["step"], "seeds": 10, "epochs": 2}
    with pytest.raises(BudgetError, match="needs about"):
        prepare_compare(**settings, max_memory=500_000)  # not even one model's state
    if takes_max_memory():  # 20 models' state (~32 MB) need not fit at once: the engines split them
        assert prepare_compare(**settings, max_memory=4 * 2**20).models == 20
    else:
        with pytest.raises(BudgetError):
            prepare_compare(**settings, max_memory=4 * 2**20)
