"""The run plan: what both engines read from it (step indices, LR table, batch orders, initial weights, gather)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from steplr.errors import SteplrValueError
from steplr.experiments.compare import recipe_config
from steplr.training.batched import _Gather
from steplr.training.budget import SMALL_DATA_BYTES
from steplr.training.data import Dataset, load_qwerty
from steplr.training.numerics import StackedModels
from steplr.training.plan import RunPlan, lr_table, scheduler_steps
from steplr.training.train import train


@pytest.fixture(scope="module")
def qwerty():
    return load_qwerty()


def mixed(**overrides):
    base = recipe_config("qwerty", epochs=3, **overrides)
    return [
        base.with_settings(step_size="1ep", gamma=0.5, seed=0),
        base.with_settings(schedule="cosine", seed=1),
        base.with_settings(schedule="plateau", seed=2),
        base.with_settings(step_size=7, gamma=0.3, seed=3),
    ]


@pytest.mark.parametrize("interval", ["iteration", "epoch"])
def test_every_batch_has_its_step_index(qwerty, interval):
    plan = RunPlan(mixed(interval=interval), qwerty)
    assert plan.batches == 23 and plan.examples == 720
    expected = [e * 23 + b if interval == "iteration" else e for e in range(3) for b in range(23)]
    assert [plan.step(e, b) for e in range(3) for b in range(23)] == expected
    assert plan.steps_per_epoch == (23 if interval == "iteration" else 1)
    assert [plan.steps_after_each_batch(i) for i in range(4)] == [interval == "iteration"] * 2 + [False] + [
        interval == "iteration"
    ]


@pytest.mark.parametrize("interval", ["iteration", "epoch"])
def test_the_sequential_trainer_applies_the_table_at_the_plan_step_of_each_batch(qwerty, interval):
    configs = mixed(interval=interval)
    plan = RunPlan(configs, qwerty)
    table = lr_table(configs, plan.batches)
    for i in (0, 1, 3):  # the closed forms (plateau's row is filled while training)
        applied = train(configs[i], qwerty).iteration_lrs
        assert applied == [table[i, plan.step(e, b)] for e in range(3) for b in range(plan.batches)]
    assert np.isnan(table[2]).all()


def test_batch_orders_and_initial_weights_come_from_the_seed_alone(qwerty):
    configs = mixed()
    plan = RunPlan(configs, qwerty)
    for i, config in enumerate(configs):
        alone = RunPlan([config], qwerty)  # the sequential trainer's plan of the same config
        together, single = plan.generator(i), alone.generator(0)
        for _ in range(3):
            order = plan.order(together)
            assert torch.equal(order, alone.order(single))
            assert sorted(order.tolist()) == list(range(720))
        ours, theirs = plan.initial_model(i).state_dict(), alone.initial_model(0).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    first, second = (plan.order(plan.generator(i)) for i in (0, 1))
    assert not torch.equal(first, second)  # another seed, another order
    state = torch.random.get_rng_state()
    plan.initial_model(0)
    assert torch.equal(torch.random.get_rng_state(), state)  # torch's global generator left alone


def synthetic(rows: int, features: int) -> Dataset:
    x = torch.arange(rows * features, dtype=torch.float32).reshape(rows, features)
    return Dataset("synthetic", x, torch.arange(rows) % 3, x[:5], torch.arange(5) % 3, 3)


def test_one_threshold_picks_the_gather_for_all_copies_together():
    config = recipe_config("qwerty", model="linear", batch_size=1000, epochs=1)
    features = 1024  # 4 KiB an example
    fits = SMALL_DATA_BYTES // (features * 4)
    assert RunPlan([config], synthetic(fits, features)).copy_per_epoch
    assert not RunPlan([config], synthetic(fits + 1, features)).copy_per_epoch
    half = synthetic(fits // 2, features)
    assert RunPlan([config] * 2, half).copy_per_epoch
    assert not RunPlan([config] * 3, half).copy_per_epoch


@pytest.mark.parametrize("copy", [True, False])
def test_both_gathers_give_both_engines_the_same_batches(qwerty, copy):
    configs = [dataclasses.replace(c, batch_size=50) for c in mixed()]  # a short last batch
    plan = RunPlan(configs, qwerty)
    plan.copy_per_epoch = copy
    orders = [plan.order(plan.generator(i)) for i in range(len(configs))]
    stacked = list(_Gather(plan).batches(torch.stack(orders)))
    assert len(stacked) == plan.batches == 15
    for i, order in enumerate(orders):
        expected = [
            (plan.split.x_train[order[s]], plan.split.y_train[order[s]])
            for s in (plan.batch_rows(b) for b in range(plan.batches))
        ]
        assert expected[-1][1].shape == (20,)
        together = plan.batches_of(torch.stack(orders))  # K models' batches at once (the torch.func engine's)
        for (x, y), (xb, yb), (xk, yk), (want_x, want_y) in zip(plan.batches_of(order), stacked, together, expected):
            assert torch.equal(x, want_x) and torch.equal(y, want_y)
            assert torch.equal(xb[i].t(), want_x) and torch.equal(yb[i], want_y)
            assert torch.equal(xk[i], want_x) and torch.equal(yk[i], want_y)


def test_reactive_rows_are_filled_an_epoch_at_a_time(qwerty):
    configs = mixed(interval="epoch")
    plan = RunPlan(configs, qwerty)
    lrs = plan.learning_rates(torch.float32)
    assert lrs.reactive == [2]
    lrs.start_epoch(0)
    assert lrs.table[2].tolist()[:1] == [configs[2].lr] and np.isnan(lrs.table[2, 1:].numpy()).all()
    records = [plan.record(0, 23.0, 360, 0.1, (1.0, 0.5), (float("nan"), float("nan")))] * 4
    for epoch in (1, 2):  # the same training loss again and again: a best, then two bad epochs (patience 2)
        lrs.end_epoch(records)
        lrs.start_epoch(epoch)
    lrs.end_epoch(records)
    assert lrs.table[2].tolist() == [configs[2].lr] * 3
    assert lrs.controller.lrs.tolist() == [configs[2].lr]
    lrs.end_epoch(records)  # the third bad epoch in a row is past the patience
    assert lrs.controller.lrs.tolist() == [configs[2].lr * 0.5]
    per_iteration = lrs.per_iteration()
    assert len(per_iteration) == 4 and all(len(row) == 3 * 23 for row in per_iteration)
    assert per_iteration[0][:23] == [lrs.table[0, 0].item()] * 23


def test_records_divide_by_batches_and_examples(qwerty):
    plan = RunPlan(mixed(), qwerty)
    record = plan.record(1, 46.0, 360, 0.01, (0.5, 0.75), (0.25, 0.8))
    assert (record.epoch, record.train_loss, record.train_acc) == (2, 2.0, 0.5)
    assert (record.test_loss, record.test_acc, record.val_loss, record.val_acc, record.lr) == (
        0.5,
        0.75,
        0.25,
        0.8,
        0.01,
    )


def test_scheduler_steps_after_some_epochs():
    step, plateau = mixed()[0], mixed()[2]
    assert scheduler_steps(step, 2, 23) == 46
    assert scheduler_steps(dataclasses.replace(step, interval="epoch"), 2, 23) == 2
    assert scheduler_steps(plateau, 2, 23) == 2


def test_a_plan_needs_configs_of_one_shape(qwerty):
    with pytest.raises(SteplrValueError, match="at least one config, got none"):
        RunPlan([], qwerty)
    config = recipe_config("qwerty")
    with pytest.raises(SteplrValueError, match=r"must share epochs, got \['20', '3'\]"):
        RunPlan([config, dataclasses.replace(config, epochs=3)], qwerty)


def test_the_batched_models_start_from_the_plans_initial_weights(qwerty):
    plan = RunPlan(mixed(), qwerty)
    stacked = StackedModels([plan.initial_model(i) for i in range(4)])
    for i in range(4):
        expected = plan.initial_model(i).state_dict()
        assert all(torch.equal(stacked.state_dict(i)[k], v) for k, v in expected.items())
