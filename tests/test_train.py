"""The training loop: applied LRs, determinism, checkpoints, resume after SIGKILL, divergence."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys

import pytest
import torch

from steplr.data import load_digits, load_qwerty
from steplr.errors import DivergedError, TrainError
from steplr.experiments import recipe_config
from steplr.schedules import StepDecay
from steplr.train import CHECKPOINT, load_checkpoint, train


@pytest.fixture(scope="module")
def qwerty():
    return load_qwerty()


def test_iteration_lrs_are_the_ones_applied(qwerty):
    config = recipe_config("qwerty", epochs=12)
    history = train(config, qwerty)
    batches = 23  # 720 samples in batches of 32
    assert len(history.iteration_lrs) == 12 * batches
    schedule = StepDecay(5 * batches, 0.5)
    assert history.iteration_lrs == [schedule.lr(0.01, t) for t in range(12 * batches)]
    assert [e.lr for e in history.epochs] == [history.iteration_lrs[(e + 1) * batches - 1] for e in range(12)]


def test_per_epoch_stepping_follows_the_notes_mnist_recipe():
    history = train(recipe_config("digits"), load_digits())
    assert [e.lr for e in history.epochs] == [StepDecay(2, 0.1).lr(1e-3, t) for t in range(5)]
    assert history.epochs[-1].test_acc > 0.5


def test_same_seed_same_history_bit_for_bit(qwerty):
    config = recipe_config("qwerty", epochs=6, seed=3)
    assert train(config, qwerty).as_dict() == train(config, qwerty).as_dict()
    other = train(dataclasses.replace(config, seed=4), qwerty)
    assert other.as_dict() != train(config, qwerty).as_dict()


_KILLER = """
import os, signal, sys
from steplr.data import load_qwerty
from steplr.experiments import recipe_config
from steplr.train import train
count = 0
def on_iteration():
    global count
    count += 1
    if count == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
train(recipe_config("qwerty", epochs=int(sys.argv[3])), load_qwerty(), sys.argv[1], on_iteration=on_iteration,
      checkpoint_seconds=float(sys.argv[4]))
"""


@pytest.mark.parametrize(("kill_at", "every"), [(1, 0), (23, 0), (24, 0), (250, 0), (459, 0), (250, 3600)])
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, qwerty, kill_at, every):
    epochs = 20
    run = subprocess.run([sys.executable, "-c", _KILLER, str(tmp_path), str(kill_at), str(epochs), str(every)])
    assert run.returncode == -signal.SIGKILL
    config = recipe_config("qwerty", epochs=epochs)
    if kill_at <= 23 or every:  # killed before the first checkpoint: nothing to resume, start over
        assert not (tmp_path / CHECKPOINT).exists()
        resumed = train(config, qwerty, tmp_path)
    else:
        assert load_checkpoint(tmp_path / CHECKPOINT)["epoch"] == (kill_at - 1) // 23
        resumed = train(config, qwerty, tmp_path, resume=True)
    assert resumed.as_dict() == train(config, qwerty).as_dict()
    assert json.loads((tmp_path / "history.json").read_text()) == resumed.as_dict()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT, "history.csv", "history.json"]


def test_checkpoint_loads_with_weights_only(tmp_path, qwerty):
    train(recipe_config("qwerty", epochs=2), qwerty, tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 2 and state["config"]["recipe"] == "qwerty"
    assert state["scheduler"]["format"] == "steplr.scheduler/1"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_checkpoint_is_a_clear_error_and_left_alone(tmp_path, qwerty, damage):
    config = recipe_config("qwerty", epochs=3)
    train(config, qwerty, tmp_path)
    path = tmp_path / CHECKPOINT
    good = path.read_bytes()
    bad = b"not a checkpoint at all" if damage == "garbage" else good[: len(good) // 2]
    path.write_bytes(bad)
    with pytest.raises(TrainError, match="corrupt or unreadable"):
        train(config, qwerty, tmp_path, resume=True)
    assert path.read_bytes() == bad


def test_resume_refuses_another_config(tmp_path, qwerty):
    train(recipe_config("qwerty", epochs=2), qwerty, tmp_path)
    with pytest.raises(TrainError, match="another config"):
        train(recipe_config("qwerty", epochs=2, lr=0.1), qwerty, tmp_path, resume=True)
    with pytest.raises(TrainError, match="no checkpoint"):
        train(recipe_config("qwerty"), qwerty, tmp_path / "nowhere", resume=True)


def test_a_diverging_loss_stops_with_epoch_and_iteration_and_saves_history(tmp_path, qwerty):
    config = recipe_config("qwerty", lr=1e6, schedule="none", epochs=5)
    with pytest.raises(DivergedError) as info:
        train(config, qwerty, tmp_path)
    error = info.value
    assert f"at epoch {error.epoch}, iteration {error.iteration}" in str(error)
    assert error.epoch >= 1 and 1 <= error.iteration <= 23
    saved = json.loads((tmp_path / "history.json").read_text())
    assert len(saved["epochs"]) == error.epoch - 1
    assert len(saved["iteration_lrs"]) == (error.epoch - 1) * 23 + error.iteration - 1


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam, got 'rmsprop'"):
        recipe_config("qwerty", optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        recipe_config("qwerty", batch_size=0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        recipe_config("qwerty", lr=-1)
    with pytest.raises(ValueError, match="unknown recipe 'cifar'"):
        recipe_config("cifar")


def test_plateau_reacts_to_validation_then_training_loss_never_test():
    from steplr.train import EpochRecord, plateau_signal

    with_split = EpochRecord(1, train_loss=1.0, train_acc=0.5, test_loss=0.1, test_acc=0.9, lr=0.1, val_loss=0.5,
                             val_acc=0.7)
    assert plateau_signal(with_split) == 0.5
    without = EpochRecord(1, train_loss=1.0, train_acc=0.5, test_loss=0.1, test_acc=0.9, lr=0.1)
    assert plateau_signal(without) == 1.0


def test_plateau_in_train_cuts_on_the_validation_loss(qwerty):
    config = recipe_config("qwerty", schedule="plateau", gamma=0.5, plateau_patience=0, epochs=6, validation=0.25,
                           lr=0.5)
    history = train(config, qwerty)
    lrs = [e.lr for e in history.epochs]
    vals = [e.val_loss for e in history.epochs]
    # With patience 0 the LR halves right after every epoch whose validation loss is not a new best (torch's rule).
    best, expected, lr = float("inf"), [], 0.5
    for v in vals:
        expected.append(lr)
        if v < best * (1 - 1e-4):
            best = v
        else:
            lr *= 0.5
    assert lrs == expected
