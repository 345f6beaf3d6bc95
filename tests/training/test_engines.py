"""Choosing an engine, and train_many: the functional engine for what the stack engine cannot run, the sequential
one for what vmap cannot take, models split into chunks that fit a memory budget without changing any result."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from steplr.errors import SteplrValueError
from steplr.experiments.compare import recipe_config
from steplr.training.budget import BudgetError, models_per_chunk
from steplr.training.config import EpochRecord, TrainConfig
from steplr.training.data import load_digits, load_qwerty
from steplr.training.engines import LARGE_ACTIVATIONS, choose_engine, chunk_size, train_many
from steplr.training.functional import ESTIMATE_MARGIN, EVAL_BYTES, probe
from steplr.training.task import Task
from steplr.training.train import train


def layer_norm_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3))


class ItemCalling(nn.Module):
    """Reads a value of its input in Python (``.item()``): vmap refuses it, the sequential trainer does not."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if x.abs().max().item() < 1e9 else 0.0
        return self.fc(x) * scale


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv(x.view(-1, 1, 8, 8)))), 2)
        return self.fc(x.flatten(1))


def test_auto_takes_the_stack_engine_then_torch_func_then_the_sequential_one():
    qwerty = load_qwerty()
    base = recipe_config("qwerty")
    assert choose_engine([base], qwerty) == ("stack", "a plain Linear/ReLU stack")
    assert choose_engine([base], qwerty, task=Task(layer_norm_mlp)) == ("functional", "torch.func for a user's model")
    engine, reason = choose_engine([dataclasses.replace(base, momentum=0.9)], qwerty)
    assert engine == "functional" and "momentum" in reason
    engine, reason = choose_engine([base], qwerty, task=Task(ItemCalling))
    assert engine == "sequential"
    assert reason.startswith("vmap cannot take this model: ") and "\n" not in reason
    assert choose_engine([base], qwerty, task=Task(layer_norm_mlp), engine="sequential") == ("sequential", "asked for")
    assert choose_engine([base], qwerty, task=Task(layer_norm_mlp), engine="batched")[0] == "functional"
    with pytest.raises(SteplrValueError, match="engine 'batched' cannot train these runs: vmap cannot take"):
        choose_engine([base], qwerty, task=Task(ItemCalling), engine="batched")
    with pytest.raises(SteplrValueError, match="engine must be one of auto, batched, sequential, got 'fast'"):
        choose_engine([base], qwerty, engine="fast")


def test_auto_trains_models_with_large_activations_one_at_a_time():
    """The same CNN at batch 32 stacks (0.2 MiB of activations a model), at batch 512 it does not (2.9 MiB: past
    LARGE_ACTIVATIONS), unless batched is asked for."""
    digits = load_digits()
    small = dataclasses.replace(recipe_config("digits"), batch_size=32)
    large = dataclasses.replace(small, batch_size=512)
    assert probe([small], digits, Task(SmallCNN), None).activations < LARGE_ACTIVATIONS
    assert probe([large], digits, Task(SmallCNN), None).activations > LARGE_ACTIVATIONS
    assert choose_engine([small, small], digits, task=Task(SmallCNN))[0] == "functional"
    engine, reason = choose_engine([large, large], digits, task=Task(SmallCNN))
    assert engine == "sequential" and reason.endswith("overflow the caches")
    assert choose_engine([large, large], digits, task=Task(SmallCNN), engine="batched")[0] == "functional"


def dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def test_a_sequential_run_with_dropout_is_reproducible_and_leaves_the_global_rng_alone():
    qwerty = load_qwerty()
    config = dataclasses.replace(recipe_config("qwerty"), epochs=2, seed=3)
    torch.manual_seed(123)
    first = train_many([config], qwerty, task=Task(dropout_mlp), engine="sequential")[0]
    after = torch.rand(3)
    torch.manual_seed(999)  # another state of the global RNG before the run: the same history
    second = train_many([config], qwerty, task=Task(dropout_mlp), engine="sequential")[0]
    assert first.as_dict() == second.as_dict()
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # the run consumed nothing from the caller's RNG
    other = train_many([dataclasses.replace(config, seed=4)], qwerty, task=Task(dropout_mlp), engine="sequential")
    assert other[0].as_dict() != first.as_dict()


def test_the_probe_leaves_torchs_global_rng_as_it_was():
    def dropout_mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 3))

    before = torch.get_rng_state()
    probe([TrainConfig()], load_qwerty(), Task(dropout_mlp), None)
    assert torch.equal(torch.get_rng_state(), before)


def test_train_many_runs_each_engine_to_the_sequential_result():
    qwerty = load_qwerty()
    config = TrainConfig(epochs=2, lr=0.1, momentum=0.9, validation=0.2)
    for task in (Task(layer_norm_mlp), Task(ItemCalling)):
        (ours,) = train_many([config], qwerty, task=task)
        reference = train(config, qwerty, task=task)
        assert ours.iteration_lrs == reference.iteration_lrs
        for a, b in zip(ours.epochs, reference.epochs):
            assert a.test_loss == pytest.approx(b.test_loss, abs=1e-5)
            assert a.val_acc == pytest.approx(b.val_acc, abs=1e-5)


def test_chunks_fit_the_budget_and_change_no_result():
    data, task = load_digits(), Task(SmallCNN)
    base = TrainConfig(epochs=2, lr=0.05, batch_size=64, momentum=0.9, validation=0.2)
    configs = [dataclasses.replace(base, seed=seed, lr=0.01 * (1 + seed)) for seed in range(5)]
    per_model = probe(configs, data, task, None).bytes_per_model
    two = EVAL_BYTES + 2 * per_model + 1  # room for two models beside evaluation's allowance
    assert chunk_size(configs, data, task, max_memory=two) == 2
    assert chunk_size(configs, data, task, max_memory=EVAL_BYTES + 100 * per_model) == 5
    seen: list[list[EpochRecord]] = []
    chunked = train_many(configs, data, task=task, max_memory=two, on_epoch=seen.append)
    whole = train_many(configs, data, task=task, max_memory=EVAL_BYTES + 100 * per_model)
    assert [len(records) for records in seen] == [2, 2, 2, 2, 1, 1]  # each chunk's epochs, in turn
    for ours, theirs in zip(chunked, whole):
        assert ours.iteration_lrs == theirs.iteration_lrs
        for a, b in zip(ours.epochs, theirs.epochs):
            for field in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr"):
                assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-6, rel=0)
    with pytest.raises(BudgetError, match="more than --max-memory"):
        train_many(configs, data, task=task, max_memory=EVAL_BYTES + per_model // 2)


def test_the_estimate_grows_with_the_batch_and_the_optimizer_state():
    data, task = load_digits(), Task(SmallCNN)
    small = probe([TrainConfig(batch_size=16)], data, task, None).bytes_per_model
    large = probe([TrainConfig(batch_size=256)], data, task, None).bytes_per_model
    adam = probe([TrainConfig(batch_size=16, optimizer="adam")], data, task, None).bytes_per_model
    assert small < large and small < adam
    parameters = sum(p.numel() * 4 for p in SmallCNN().parameters())
    assert abs(adam - small - ESTIMATE_MARGIN * 2 * parameters) <= 1  # two moments a parameter


def test_models_per_chunk():
    assert models_per_chunk(100, 10_000, 1_000) == 10
    assert models_per_chunk(100, 5, 1_000) == 5
    assert models_per_chunk(100, 5, None) == 5
    assert models_per_chunk(1_000, 5, 1_000) == 1
    assert models_per_chunk(100, 10_000, 1_000, fixed=500) == 5
    with pytest.raises(BudgetError, match=r"one model needs about 1\.0 KiB to train, more than --max-memory 999 bytes"):
        models_per_chunk(1024, 5, 999)


def test_configs_of_different_shapes_train_in_separate_batches_in_order():
    qwerty = load_qwerty()
    base = TrainConfig(epochs=1, lr=0.1)
    configs = [base, dataclasses.replace(base, batch_size=16), dataclasses.replace(base, seed=1)]
    histories = train_many(configs, qwerty, task=Task(layer_norm_mlp))
    for config, history in zip(configs, histories):
        reference = train(config, qwerty, task=Task(layer_norm_mlp))
        assert history.iteration_lrs == reference.iteration_lrs
        assert history.epochs[0].test_loss == pytest.approx(reference.epochs[0].test_loss, abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_on_cuda_takes_the_functional_engine_and_trains_there():
    qwerty = load_qwerty()
    base = recipe_config("qwerty", epochs=2)
    engine, reason = choose_engine([base], qwerty, device="cuda")
    assert engine == "functional" and "device" in reason
    (ours,) = train_many([base], qwerty, device="cuda")
    reference = train(base, qwerty, device="cuda")
    assert ours.epochs[-1].test_loss == pytest.approx(reference.epochs[-1].test_loss, abs=1e-5)
