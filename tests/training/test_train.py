"""The training loop: applied LRs, determinism, checkpoints, resume after SIGKILL, divergence."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys

import pytest
import torch

from steplr.errors import DivergedError, TrainError
from steplr.experiments.compare import recipe_config
from steplr.schedules.kinds import StepDecay
from steplr.training.data import load_digits, load_qwerty
from steplr.training.train import CHECKPOINT, load_checkpoint, train


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
from steplr.training.data import load_qwerty
from steplr.experiments.compare import recipe_config
from steplr.training.train import train
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
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam, adamw, got 'rmsprop'"):
        recipe_config("qwerty", optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        recipe_config("qwerty", batch_size=0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        recipe_config("qwerty", lr=-1)
    with pytest.raises(ValueError, match="unknown recipe 'cifar'"):
        recipe_config("cifar")


def test_plateau_reacts_to_validation_then_training_loss_never_test():
    from steplr.training.config import EpochRecord
    from steplr.training.train import plateau_signal

    with_split = EpochRecord(
        1, train_loss=1.0, train_acc=0.5, test_loss=0.1, test_acc=0.9, lr=0.1, val_loss=0.5, val_acc=0.7
    )
    assert plateau_signal(with_split) == 0.5
    without = EpochRecord(1, train_loss=1.0, train_acc=0.5, test_loss=0.1, test_acc=0.9, lr=0.1)
    assert plateau_signal(without) == 1.0


def test_plateau_in_train_cuts_on_the_validation_loss(qwerty):
    config = recipe_config(
        "qwerty", schedule="plateau", gamma=0.5, plateau_patience=0, epochs=6, validation=0.25, lr=0.5
    )
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


def _fc1_wider(state):
    state["model"]["fc1.weight"] = torch.zeros(8, 3)


def _adam_state_of_another_shape(state):
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)


def _one_param_group_more(state):
    state["optimizer"]["param_groups"].append(dict(state["optimizer"]["param_groups"][0]))


def _iteration_lr_missing(state):
    state["history"]["iteration_lrs"].pop()


def _scheduler_attribute_injected(state):
    state["scheduler"]["step"] = 5  # ReduceLROnPlateau.load_state_dict copies every key onto the object


# (settings of the run, damage, what the message must name)
_DAMAGES = {
    "missing key": ({}, lambda s: s.pop("generator"), "missing generator"),
    "model weight shape": ({}, _fc1_wider, "model weight fc1.weight has shape (8, 3), expected (8, 2)"),
    "model weight missing": ({}, lambda s: s["model"].pop("fc2.bias"), "missing ['fc2.bias']"),
    "model weight not a tensor": (
        {},
        lambda s: s["model"].update({"fc1.bias": [0.0] * 8}),
        "model weight fc1.bias is a list, not a tensor",
    ),
    "optimizer state shape": (
        {"optimizer": "adam"},
        _adam_state_of_another_shape,
        "optimizer exp_avg of parameter 0 has shape (3,), expected (8, 2)",
    ),
    "optimizer state missing": (
        {"optimizer": "adam"},
        lambda s: s["optimizer"]["state"][1].pop("exp_avg_sq"),
        "optimizer state of parameter 1 has keys ['exp_avg', 'step']",
    ),
    "optimizer param groups": ({}, _one_param_group_more, "optimizer has 2 param groups, expected 1"),
    "optimizer lr": (
        {},
        lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"),
        "optimizer param_groups[0] lr is 'fast'",
    ),
    "generator content": (
        {},
        lambda s: s.update(generator=torch.zeros(5056, dtype=torch.uint8)),
        "bad generator state: Invalid mt19937 state",
    ),
    "generator size": ({}, lambda s: s.update(generator=torch.zeros(10, dtype=torch.uint8)), "bad generator state"),
    "history iteration LRs": (
        {},
        _iteration_lr_missing,
        "history has 45 iteration LRs, expected 46 finite numbers >= 0 (2 epochs of 23 batches)",
    ),
    "history epochs": ({}, lambda s: s["history"]["epochs"].pop(), "history has 1 epochs, expected 2"),
    "config type": ({}, lambda s: s["config"].update(lr="0.01"), "config: lr must be a finite number > 0, got '0.01'"),
    "config milestones type": ({}, lambda s: s["config"].update(milestones=5), "config: "),
    "config not a dict": ({}, lambda s: s.update(config=[1, 2]), "config is a list, not a dict"),
    "epoch type": ({}, lambda s: s.update(epoch="2"), "epoch is '2', expected an integer in [0, 2]"),
    "scheduler steps_per_epoch": (
        {},
        lambda s: s["scheduler"].update(steps_per_epoch="abc"),
        "scheduler steps_per_epoch is 'abc', expected 23",
    ),
    "scheduler step count": (
        {},
        lambda s: s["scheduler"].update(_step_count=-3),
        "scheduler _step_count is -3, expected an integer >= 0",
    ),
    "plateau scheduler key": ({"schedule": "plateau"}, _scheduler_attribute_injected, "unknown ['step']"),
    "plateau scheduler progress": (
        {"schedule": "plateau"},
        lambda s: s["scheduler"].update(num_bad_epochs=-1),
        "scheduler num_bad_epochs is -1, expected an integer >= 0",
    ),
}


@pytest.mark.parametrize("damage", list(_DAMAGES))
def test_a_loadable_but_damaged_checkpoint_is_refused_in_one_line_and_left_alone(tmp_path, qwerty, damage):
    settings, spoil, named = _DAMAGES[damage]
    config = recipe_config("qwerty", epochs=2, **settings)
    train(config, qwerty, tmp_path)
    path = tmp_path / CHECKPOINT
    state = torch.load(path, weights_only=True)
    spoil(state)
    torch.save(state, path)
    damaged = path.read_bytes()
    torch.load(path, weights_only=True)  # still loads: only the checks can tell
    with pytest.raises(TrainError) as info:
        train(dataclasses.replace(config, epochs=3), qwerty, tmp_path, resume=True)
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} is corrupt or unreadable (") and "\n" not in message
    assert named in message and message.endswith("; it was left as is")
    assert path.read_bytes() == damaged


def test_an_intact_checkpoint_of_each_optimizer_and_schedule_still_resumes(tmp_path, qwerty):
    for number, settings in enumerate([{}, {"optimizer": "adam"}, {"schedule": "plateau"}, {"interval": "epoch"}]):
        folder = tmp_path / str(number)
        folder.mkdir()
        config = recipe_config("qwerty", epochs=2, **settings)
        train(config, qwerty, folder)
        longer = dataclasses.replace(config, epochs=4)
        assert train(longer, qwerty, folder, resume=True).as_dict() == train(longer, qwerty).as_dict()


def test_gamma_patience_and_seed_are_checked_with_their_range():
    for settings, message in [
        ({"schedule": "plateau", "gamma": -1.0}, "gamma must be a finite number > 0, got -1.0"),
        ({"schedule": "plateau", "gamma": float("nan")}, "gamma must be a finite number > 0, got nan"),
        ({"schedule": "plateau", "gamma": 2.0}, "gamma of plateau must be a number in (0, 1), got 2.0"),
        ({"schedule": "plateau", "gamma": 1.0}, "gamma of plateau must be a number in (0, 1), got 1.0"),
        ({"gamma": True}, "gamma must be a finite number > 0, got True"),
        ({"schedule": "plateau", "plateau_patience": -1}, "plateau_patience must be an integer >= 0, got -1"),
        ({"schedule": "plateau", "plateau_patience": 1.5}, "plateau_patience must be an integer >= 0, got 1.5"),
        ({"seed": 2**63}, "seed must be an integer in [0, 2**63 - 1], got 9223372036854775808"),
        ({"seed": -1}, "seed must be an integer in [0, 2**63 - 1], got -1"),
        ({"seed": 1.0}, "seed must be an integer in [0, 2**63 - 1], got 1.0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            recipe_config("qwerty", **settings)
        assert str(info.value) == message
    assert recipe_config("qwerty", seed=2**63 - 1, schedule="plateau", gamma=0.99, plateau_patience=0).seed == 2**63 - 1


def test_a_run_removes_the_temporary_files_a_killed_run_left_and_nothing_else(tmp_path, qwerty):
    config = recipe_config("qwerty", epochs=2)
    train(config, qwerty, tmp_path)
    ours = [f".{CHECKPOINT}.0123456789ab", ".history.json.abcdef012345", ".history.csv.00ff00ff00ff"]
    others = [
        f".{CHECKPOINT}.0123456789ab.bak",
        f".{CHECKPOINT}.old",
        "notes.history.json.abcdef012345",
        ".notes.txt.0123456789ab",
    ]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"partial")
    train(dataclasses.replace(config, epochs=3), qwerty, tmp_path, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT, "history.csv", "history.json", *others])
    for name in ours:  # a new run (not a resume) in such a folder cleans up too
        (tmp_path / name).write_bytes(b"partial")
    train(config, qwerty, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT, "history.csv", "history.json", *others])
