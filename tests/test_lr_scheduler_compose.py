"""The drop-ins inside torch's SequentialLR and ChainedScheduler, mixed with torch's own schedulers, and resumed
from checkpoints taken at, before and after milestones: every learning rate as the all-torch run gives it."""

from __future__ import annotations

import io
import types
import warnings

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

import steplr

SMALLEST_NORMAL = 2.2250738585072014e-308


def make_optimizer(lrs=(0.1,)):
    return torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs])


# The classes a composition takes from one library or the other; torch's LinearLR is steplr's linear warm-up.
OURS = types.SimpleNamespace(
    StepLR=steplr.StepLR,
    MultiStepLR=steplr.MultiStepLR,
    ExponentialLR=steplr.ExponentialLR,
    CosineAnnealingLR=steplr.CosineAnnealingLR,
    warmup=lambda opt, steps, start: steplr.ScheduleLR(opt, steplr.LinearWarmup(steps, start)),
)
TORCH = types.SimpleNamespace(
    StepLR=torch_sched.StepLR,
    MultiStepLR=torch_sched.MultiStepLR,
    ExponentialLR=torch_sched.ExponentialLR,
    CosineAnnealingLR=torch_sched.CosineAnnealingLR,
    warmup=lambda opt, steps, start: torch_sched.LinearLR(opt, start, 1.0, total_iters=steps),
)


def seq(opt, schedulers, milestones):
    return torch_sched.SequentialLR(opt, schedulers, milestones)


COMPOSITIONS = {
    "warmup then StepLR": lambda o, lib: seq(o, [lib.warmup(o, 4, 0.25), lib.StepLR(o, 3, 0.5)], [4]),
    "LinearLR then MultiStepLR": lambda o, lib: seq(
        o, [torch_sched.LinearLR(o, 0.25, total_iters=3), lib.MultiStepLR(o, [2, 5], 0.3)], [3]
    ),
    "ExponentialLR, ConstantLR, CosineAnnealingLR": lambda o, lib: seq(
        o,
        [lib.ExponentialLR(o, 0.9), torch_sched.ConstantLR(o, 0.5, total_iters=2), lib.CosineAnnealingLR(o, 6, 0.01)],
        [4, 7],
    ),
    "CosineAnnealingLR then torch ExponentialLR": lambda o, lib: seq(
        o, [lib.CosineAnnealingLR(o, 5), torch_sched.ExponentialLR(o, 0.8)], [5]
    ),
    "StepLR, warmup, ExponentialLR": lambda o, lib: seq(
        o, [lib.StepLR(o, 2, 0.5), lib.warmup(o, 3, 0.5), lib.ExponentialLR(o, 0.7)], [5, 9]
    ),
    "chained StepLR and torch ExponentialLR": lambda o, lib: torch_sched.ChainedScheduler(
        [lib.StepLR(o, 2, 0.5), torch_sched.ExponentialLR(o, 0.9)]
    ),
    "chained ConstantLR and CosineAnnealingLR": lambda o, lib: torch_sched.ChainedScheduler(
        [torch_sched.ConstantLR(o, 0.5, total_iters=3), lib.CosineAnnealingLR(o, 8)]
    ),
    "chained warmup and MultiStepLR": lambda o, lib: torch_sched.ChainedScheduler(
        [lib.warmup(o, 4, 0.25), lib.MultiStepLR(o, [3, 6], 0.5)]
    ),
    "chained ExponentialLR and LinearLR": lambda o, lib: torch_sched.ChainedScheduler(
        [lib.ExponentialLR(o, 0.95), torch_sched.LinearLR(o, 0.5, total_iters=4)]
    ),
}
STEPS = 16
LRS = (0.1, 0.03)


def lrs_of(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def torch_run(name, steps=STEPS):
    """The all-torch run: the learning rate each step used."""
    opt = make_optimizer(LRS)
    sched = COMPOSITIONS[name](opt, TORCH)
    seen = []
    for _ in range(steps):
        seen.append(lrs_of(opt))
        opt.step()
        sched.step()
    return seen


def assert_close(ours, theirs):
    assert len(ours) == len(theirs)
    for t, (mine, torch_row) in enumerate(zip(ours, theirs)):
        for a, b in zip(mine, torch_row, strict=True):
            if abs(b) >= SMALLEST_NORMAL:
                assert abs(a - b) <= 1e-12 * abs(b), (t, ours, theirs)


@pytest.mark.parametrize("name", COMPOSITIONS)
def test_composition_matches_torch(name):
    opt = make_optimizer(LRS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: the right call order, the initial step included
        sched = COMPOSITIONS[name](opt, OURS)
        seen = []
        for _ in range(STEPS):
            seen.append(lrs_of(opt))
            opt.step()
            sched.step()
    assert_close(seen, torch_run(name))


def test_a_steplr_warmup_first_in_sequential_lr_starts_at_its_step_0_value():
    opt = make_optimizer((1.0,))
    first = steplr.ScheduleLR(opt, steplr.LinearWarmup(4, 0.25))
    torch_sched.SequentialLR(opt, [first, steplr.StepLR(opt, 3, 0.5)], [4])
    assert opt.param_groups[0]["lr"] == 0.25
    assert first.last_epoch == 0 and first._step_count == 1  # as torch's first scheduler after its initial step


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", COMPOSITIONS)
@pytest.mark.parametrize("stop", [2, 3, 4, 5, 6, 7, 8, 10])
def test_resumed_composition_matches_uninterrupted_torch(name, stop):
    # stop runs across the milestones (3, 4, 5, 7, 9): checkpoints before, at and after each
    opt = make_optimizer(LRS)
    sched = COMPOSITIONS[name](opt, OURS)
    seen = []
    for _ in range(stop):
        seen.append(lrs_of(opt))
        opt.step()
        sched.step()
    saved = save_and_load({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()})

    fresh = make_optimizer(LRS)
    resumed = COMPOSITIONS[name](fresh, OURS)
    fresh.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert lrs_of(fresh) == lrs_of(opt)
    for _ in range(stop, STEPS):
        seen.append(lrs_of(fresh))
        fresh.step()
        resumed.step()
    assert_close(seen, torch_run(name))


def test_a_scheduler_not_started_yet_saves_and_loads_last_epoch_minus_one():
    opt = make_optimizer((1.0,))
    later = steplr.CosineAnnealingLR(opt, 10)
    sequence = torch_sched.SequentialLR(opt, [steplr.StepLR(opt, 2, 0.5), later], [5])
    opt.step()
    sequence.step()
    state = sequence.state_dict()
    assert state["_schedulers"][1]["last_epoch"] == -1
    fresh_opt = make_optimizer((1.0,))
    fresh_later = steplr.CosineAnnealingLR(fresh_opt, 10)
    fresh = torch_sched.SequentialLR(fresh_opt, [steplr.StepLR(fresh_opt, 2, 0.5), fresh_later], [5])
    fresh_opt.load_state_dict(opt.state_dict())
    fresh.load_state_dict(save_and_load(state))
    assert fresh_later.last_epoch == -1 and lrs_of(fresh_opt) == [1.0]


def test_a_tensor_lr_in_sequential_lr_is_written_in_place_as_torch_writes_it():
    def run(lib):
        lr = torch.tensor(1.0, dtype=torch.float64)
        opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
        sched = seq(opt, [lib.warmup(opt, 3, 0.25), lib.StepLR(opt, 2, 0.5)], [3])
        seen = []
        for _ in range(9):
            seen.append(lr.item())
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] is lr
        return seen

    assert run(OURS) == run(TORCH) == [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
