"""The drop-ins beside torch: the call-order warning (without wrapping optimizer.step) and torch's own
scheduler checkpoints loaded into the steplr class of the same kind."""

from __future__ import annotations

import copy
import gc
import io
import re
import warnings
import weakref

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

import steplr
from steplr.errors import SteplrValueError

SMALLEST_NORMAL = 2.2250738585072014e-308


def make_optimizer(lrs=(0.1,)):
    return torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs])


def order_warnings(build, optimizer_first, compiled=False):
    """The warnings of one scheduler.step() before or after the optimizer's first step (then two more steps)."""
    opt = make_optimizer()
    sched = build(opt)
    if compiled:
        opt.step = torch.compile(opt.step, backend="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if optimizer_first:
            opt.step()
        sched.step()
        for _ in range(2):
            opt.step()
            sched.step()
    return [w for w in caught if "optimizer.step()" in str(w.message)]


@pytest.mark.parametrize("compiled", [False, True])
def test_call_order_warning_like_torch(compiled):
    ours = order_warnings(lambda o: steplr.StepLR(o, 2, 0.5), optimizer_first=False, compiled=compiled)
    assert len(ours) == 1 and ours[0].category is UserWarning
    message = str(ours[0].message)
    assert "`lr_scheduler.step()`" in message and "`optimizer.step()`" in message
    assert ours[0].filename == __file__  # points at the caller of step()
    assert order_warnings(lambda o: steplr.StepLR(o, 2, 0.5), optimizer_first=True, compiled=compiled) == []
    if not compiled:  # torch's own: the same count (torch cannot take a compiled step, see test_lr_scheduler)
        assert len(order_warnings(lambda o: torch_sched.StepLR(o, 2, 0.5), optimizer_first=False)) == 1
        assert order_warnings(lambda o: torch_sched.StepLR(o, 2, 0.5), optimizer_first=True) == []


def test_optimizer_step_is_not_wrapped_and_the_hook_goes_after_the_first_step():
    opt = make_optimizer()
    step = opt.step
    sched = steplr.ExponentialLR(opt, 0.9)
    assert opt.step == step and not hasattr(opt.step, "_wrapped_by_lr_sched")
    assert len(opt._optimizer_step_post_hooks) == 1
    opt.step()
    sched.step()
    assert len(opt._optimizer_step_post_hooks) == 0  # nothing left to run on every optimizer step


def test_the_hook_does_not_keep_the_scheduler_alive():
    opt = make_optimizer()
    sched = steplr.StepLR(opt, 2, 0.5)
    ref = weakref.ref(sched)
    del sched
    gc.collect()
    assert ref() is None
    assert len(opt._optimizer_step_post_hooks) == 0
    opt.step()  # and the optimizer still steps


def test_no_warning_for_sequential_lrs_initial_step_and_one_in_the_wrong_order():
    def build(opt):
        return torch_sched.SequentialLR(
            opt, [steplr.ScheduleLR(opt, steplr.LinearWarmup(3, 0.5)), steplr.StepLR(opt, 2, 0.5)], [3]
        )

    assert order_warnings(build, optimizer_first=True) == []
    assert len(order_warnings(build, optimizer_first=False)) == 1


# -- torch's checkpoints -----------------------------------------------------------------------------------------

KINDS = {
    "StepLR(3, 0.5)": (lambda o, lib: lib.StepLR(o, 3, 0.5)),
    "StepLR(1, 0.9)": (lambda o, lib: lib.StepLR(o, 1, 0.9)),
    "MultiStepLR([2, 5, 5, 9], 0.5)": (lambda o, lib: lib.MultiStepLR(o, [2, 5, 5, 9], 0.5)),
    "ExponentialLR(0.95)": (lambda o, lib: lib.ExponentialLR(o, 0.95)),
    "CosineAnnealingLR(7, 0.01)": (lambda o, lib: lib.CosineAnnealingLR(o, 7, 0.01)),
    "CosineAnnealingLR(7.5)": (lambda o, lib: lib.CosineAnnealingLR(o, 7.5)),
}


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [4, 5, 6, 9])  # mid-segment and at boundaries (3, 5, 6, 9)
@pytest.mark.parametrize("restore_optimizer", [False, True])
def test_torch_state_dict_continues_in_the_steplr_class(kind, steps, restore_optimizer):
    build = KINDS[kind]
    torch_opt = make_optimizer((0.1, 0.02))
    theirs = build(torch_opt, torch_sched)
    for _ in range(steps):
        torch_opt.step()
        theirs.step()
    saved = save_and_load({"scheduler": theirs.state_dict(), "optimizer": torch_opt.state_dict()})

    opt = make_optimizer((0.1, 0.02))
    ours = build(opt, steplr)
    if restore_optimizer:
        opt.load_state_dict(saved["optimizer"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours.load_state_dict(saved["scheduler"])
    assert ours.last_epoch == theirs.last_epoch == steps
    assert ours._step_count == theirs._step_count
    for _ in range(12):
        for a, b in zip(opt.param_groups, torch_opt.param_groups, strict=True):
            if abs(b["lr"]) >= SMALLEST_NORMAL:
                assert a["lr"] == pytest.approx(b["lr"], rel=1e-12, abs=0)
        opt.step()
        ours.step()
        torch_opt.step()
        theirs.step()


def test_torch_state_of_another_kind_is_refused_by_name():
    state = torch_sched.StepLR(make_optimizer(), 3, 0.5).state_dict()
    sched = steplr.CosineAnnealingLR(make_optimizer(), 10)
    before = sched.state_dict()
    with pytest.raises(SteplrValueError, match=re.escape("got torch's StepLR state_dict (gamma=0.5, step_size=3)")):
        sched.load_state_dict(state)
    assert sched.state_dict() == before
    exponential = torch_sched.ExponentialLR(make_optimizer(), 0.9).state_dict()
    with pytest.raises(SteplrValueError, match="got torch's ExponentialLR state_dict"):
        steplr.StepLR(make_optimizer(), 3).load_state_dict(exponential)


@pytest.mark.parametrize(
    "build",
    [
        lambda o: steplr.ExponentialLR(o, 0.9),
        lambda o: steplr.StepLR(o, 3, 0.5),
        lambda o: steplr.CosineAnnealingLR(o, 9),
        lambda o: steplr.ScheduleLR(o, steplr.LinearWarmup(4, 0.25)),
    ],
)
def test_a_deep_copy_of_optimizer_and_scheduler_continues_alike(build):
    opt = make_optimizer((0.1, 0.02))
    sched = build(opt)
    for _ in range(5):
        opt.step()
        sched.step()
    twin = copy.deepcopy({"opt": opt, "sched": sched})
    other_opt, other = twin["opt"], twin["sched"]
    assert other.optimizer is other_opt
    for _ in range(10):
        opt.step()
        sched.step()
        other_opt.step()
        other.step()
        assert [g["lr"] for g in other_opt.param_groups] == [g["lr"] for g in opt.param_groups]


def test_last_epoch_in_the_constructor_sets_that_steps_closed_form_whatever_the_optimizer_held():
    opt = make_optimizer((0.1,))
    opt.param_groups[0]["initial_lr"] = 0.1
    opt.param_groups[0]["lr"] = 0.0123  # e.g. a drifted value from another run
    steplr.ExponentialLR(opt, 0.9, last_epoch=7)
    assert opt.param_groups[0]["lr"] == steplr.Exponential(0.9).lr(0.1, 7)
