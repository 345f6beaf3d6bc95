"""The torch.func engine: model i of a batch is the sequential run of config i, for models the stack engine cannot
run (LayerNorm, BatchNorm, dropout, a regression, a custom loss) and for every optimizer setting."""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from steplr.errors import DivergedError
from steplr.schedules.spec import ScheduleSpec
from steplr.training.config import TrainConfig
from steplr.training.data import Dataset, load_digits, load_qwerty
from steplr.training.functional import FunctionalModels, probe, train_functional
from steplr.training.task import Task
from steplr.training.train import CHECKPOINT, train

FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def layer_norm_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3))


class SmallCNN(nn.Module):
    """8x8 digits: conv (no bias: BatchNorm follows) -> BatchNorm -> ReLU -> pool -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv(x.view(-1, 1, 8, 8)))), 2)
        return self.fc(x.flatten(1))


def dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def schedules(base: TrainConfig) -> list[TrainConfig]:
    """Closed forms stepped per iteration, a constant LR and plateau, each with its own seed and LR."""
    return [
        dataclasses.replace(base, seed=0),
        dataclasses.replace(
            base, seed=1, lr=base.lr * 3, schedule=ScheduleSpec("step", {"step_size": 7, "gamma": 0.5})
        ),
        dataclasses.replace(base, seed=2, schedule=ScheduleSpec("none", {})),
        dataclasses.replace(base, seed=3, schedule=ScheduleSpec("plateau", {"gamma": 0.5, "plateau_patience": 0})),
    ]


def assert_model_i_is_the_sequential_run(configs, data, task, tmp_path, tolerance=1e-5):
    """Every model's LRs exactly, metrics and weights (and buffers) within ``tolerance``; the largest differences."""
    models: list[FunctionalModels] = []
    histories = train_functional(configs, data, task=task, models_out=models)
    worst_metric = worst_weight = 0.0
    for i, config in enumerate(configs):
        folder = tmp_path / f"run{i}"
        folder.mkdir(parents=True)
        reference = train(config, data, folder, task=task)
        assert histories[i].iteration_lrs == reference.iteration_lrs
        assert len(histories[i].epochs) == len(reference.epochs) == config.epochs
        for ours, theirs in zip(histories[i].epochs, reference.epochs):
            assert ours.lr == theirs.lr and ours.epoch == theirs.epoch
            for field in FIELDS:
                a, b = getattr(ours, field), getattr(theirs, field)
                assert math.isnan(a) == math.isnan(b), field
                if not math.isnan(a):
                    worst_metric = max(worst_metric, abs(a - b))
                    assert a == pytest.approx(b, abs=tolerance), (i, field)
        weights = torch.load(folder / CHECKPOINT, weights_only=True)["model"]
        state = models[0].state_dict(i)
        assert list(state) == list(weights)
        for name, value in state.items():
            worst_weight = max(worst_weight, (value.double() - weights[name].double()).abs().max().item())
            assert torch.allclose(value.double(), weights[name].double(), rtol=0, atol=tolerance), (i, name)
    return worst_metric, worst_weight


def test_mlp_with_layer_norm_equals_the_sequential_runs(tmp_path):
    base = TrainConfig(epochs=3, lr=0.05, validation=0.2, optimizer="sgd", momentum=0.9)
    worst = assert_model_i_is_the_sequential_run(schedules(base), load_qwerty(), Task(layer_norm_mlp), tmp_path)
    print("layer-norm MLP: max abs diff of metrics, weights", worst)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_cnn_with_batch_norm_equals_the_sequential_runs(optimizer, tmp_path):
    base = TrainConfig(epochs=2, lr=3e-3, batch_size=64, validation=0.2, optimizer=optimizer, weight_decay=0.01)
    worst = assert_model_i_is_the_sequential_run(schedules(base)[:3], load_digits(), Task(SmallCNN), tmp_path)
    print(f"BatchNorm CNN ({optimizer}): max abs diff of metrics, weights", worst)


@pytest.mark.parametrize(
    "settings",
    [
        {"optimizer": "sgd"},
        {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        {"optimizer": "sgd", "momentum": 0.5, "weight_decay": 0.1},
        {"optimizer": "adam", "lr": 0.01},
        {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.1},
        {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1},
    ],
)
def test_every_optimizer_setting_equals_torch_optim(settings, tmp_path):
    base = dataclasses.replace(TrainConfig(epochs=2, lr=0.1), **settings)
    configs = [dataclasses.replace(base, seed=5), dataclasses.replace(base, seed=6, lr=base.lr / 2)]
    assert_model_i_is_the_sequential_run(configs, load_qwerty(), Task(layer_norm_mlp), tmp_path)


def regression_data() -> Dataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(300, generator=generator)
    return Dataset("regression", x[:240], y[:240], x[240:], y[240:], num_classes=0)


def regressor() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def test_a_regression_with_mse_and_a_custom_loss_equals_the_sequential_runs(tmp_path):
    base = TrainConfig(epochs=2, lr=0.05, loss="mse", validation=0.25)
    configs = [dataclasses.replace(base, seed=s) for s in (0, 1)]
    assert_model_i_is_the_sequential_run(configs, regression_data(), Task(regressor), tmp_path / "mse")
    histories = train_functional(configs, regression_data(), task=Task(regressor))
    assert all(math.isnan(r.train_acc) and math.isnan(r.test_acc) for h in histories for r in h.epochs)

    def huber(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.huber_loss(outputs.squeeze(-1), targets, delta=0.5)

    custom = [dataclasses.replace(c, loss="custom") for c in configs]
    assert_model_i_is_the_sequential_run(custom, regression_data(), Task(regressor, huber), tmp_path / "huber")


def test_dropout_differs_per_model_and_agrees_with_the_sequential_runs_in_distribution():
    """Copies of one config (same seed: same initial weights and orders) differ only by their dropout masks, so
    their results must differ from each other; their mean must agree with that of sequential runs, whose masks
    come from other streams."""
    data, task = load_qwerty(), Task(dropout_mlp)
    config = TrainConfig(epochs=2, lr=0.1, schedule=ScheduleSpec("none", {}))
    n = 16
    ours = [h.epochs[-1].train_loss for h in train_functional([config] * n, data, task=task)]
    assert len(set(ours)) == n  # every model drew its own masks
    theirs = []
    for seed in range(n):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1000 + seed)  # the sequential run's dropout draws from torch's global RNG
            theirs.append(train(config, data, task=task).epochs[-1].train_loss)
    assert len(set(theirs)) == n
    spread = math.sqrt(statistics.variance(ours) / n + statistics.variance(theirs) / n)
    assert abs(statistics.mean(ours) - statistics.mean(theirs)) < 4 * spread
    # Evaluation runs without dropout: the recorded test loss is the model's in eval mode.
    models: list[FunctionalModels] = []
    history = train_functional([config, config], data, task=task, models_out=models)
    model = dropout_mlp()
    model.load_state_dict(models[0].state_dict(1))
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(data.x_test), data.y_test).item()
    assert history[1].epochs[-1].test_loss == pytest.approx(loss, abs=1e-6)


def test_a_diverging_model_gets_nan_records_and_does_not_spoil_the_others():
    base = TrainConfig(epochs=3, lr=0.05, loss="mse", schedule=ScheduleSpec("none", {}))
    configs = [base, dataclasses.replace(base, lr=1e6, seed=1)]
    histories = train_functional(configs, regression_data(), task=Task(regressor))
    diverged = histories[1].epochs
    assert all(math.isnan(getattr(r, f)) for r in diverged for f in (*FIELDS, "lr"))
    assert [r.epoch for r in diverged] == [1, 2, 3]
    assert not math.isnan(histories[0].epochs[-1].test_loss)
    with pytest.raises(DivergedError, match="epoch 1"):  # where the sequential run stops
        train(configs[1], regression_data(), task=Task(regressor))
    alone = train_functional([base], regression_data(), task=Task(regressor))
    assert histories[0].as_dict() == alone[0].as_dict()


def test_on_epoch_sees_every_models_record_and_evaluation_chunks_change_nothing():
    base = TrainConfig(epochs=2, lr=0.1, validation=0.2)
    configs = [base, dataclasses.replace(base, seed=1), dataclasses.replace(base, seed=2, lr=0.3)]
    seen: list[list] = []
    histories = train_functional(configs, load_qwerty(), task=Task(layer_norm_mlp), on_epoch=seen.append)
    assert [[r.epoch for r in records] for records in seen] == [[1, 1, 1], [2, 2, 2]]
    for i, history in enumerate(histories):
        assert [records[i] for records in seen] == history.epochs
    one_at_a_time = train_functional(configs, load_qwerty(), task=Task(layer_norm_mlp), eval_models=1)
    assert [h.as_dict() for h in one_at_a_time] == [h.as_dict() for h in histories]


class PartlyUsed(nn.Module):
    """A model with a parameter its forward pass never reads (no gradient: torch's optimizers leave it alone)."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(2, 3)
        self.unused = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_a_parameter_without_gradient_stays_as_it_started(tmp_path):
    config = TrainConfig(epochs=1, lr=0.1, momentum=0.9, weight_decay=0.1)
    assert_model_i_is_the_sequential_run([config], load_qwerty(), Task(PartlyUsed), tmp_path)


def test_the_probe_names_what_vmap_cannot_take():
    class ItemCalling(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum().item() > 1e9:  # data-dependent control flow: vmap refuses .item()
                return x
            return self.fc(x)

    config = TrainConfig(epochs=1)
    refused = probe([config], load_qwerty(), Task(ItemCalling), None)
    assert refused.error is not None and refused.error.startswith("vmap cannot take this model: ")
    assert "\n" not in refused.error
    taken = probe([config], load_qwerty(), Task(layer_norm_mlp), None)
    assert taken.error is None and taken.bytes_per_model > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_model_i_is_the_sequential_run_on_cuda():
    base = TrainConfig(epochs=2, lr=0.05, batch_size=64, optimizer="adam", validation=0.2)
    configs = schedules(base)[:3]
    models: list[FunctionalModels] = []
    histories = train_functional(configs, load_digits(), task=Task(SmallCNN), device="cuda", models_out=models)
    assert models[0].parameters[0].device.type == "cuda"
    for i, config in enumerate(configs):
        reference = train(config, load_digits(), task=Task(SmallCNN), device="cuda")
        assert histories[i].iteration_lrs == reference.iteration_lrs
        for ours, theirs in zip(histories[i].epochs, reference.epochs):
            for field in FIELDS:
                assert getattr(ours, field) == pytest.approx(getattr(theirs, field), abs=1e-5, nan_ok=True)
