"""pytorch-ignite drives steplr's schedulers as it drives torch's: inside an Engine's loop through its LRScheduler
handler, behind a linear warm-up, in simulate_values, and through a Checkpoint saved mid-run and resumed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import steplr
import steplr.lr_scheduler

pytest.importorskip("ignite")
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from ignite.handlers.param_scheduler import LRScheduler, create_lr_scheduler_with_warmup

BATCHES = 4  # per epoch
EPOCHS = 4

# Each pair builds steplr's scheduler and torch's with the same arguments. Gammas are powers of two, so torch's
# chainable form (a running product, which ignite asks for) is exact too and the rates compare with ==.
PAIRS: dict[str, tuple[Callable[..., object], Callable[..., object]]] = {
    "StepLR": (
        lambda opt: steplr.StepLR(opt, step_size=3, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
    ),
    "MultiStepLR": (
        lambda opt: steplr.MultiStepLR(opt, milestones=[2, 5, 11], gamma=0.25),
        lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 5, 11], gamma=0.25),
    ),
    "ExponentialLR": (
        lambda opt: steplr.ExponentialLR(opt, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5),
    ),
    "CosineAnnealingLR": (
        lambda opt: steplr.CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
    ),
    "ConstantLR": (
        lambda opt: steplr.ConstantLR(opt, factor=0.5, total_iters=5),
        lambda opt: torch.optim.lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=5),
    ),
    "LinearLR": (
        lambda opt: steplr.LinearLR(opt, start_factor=0.2, end_factor=0.9, total_iters=6),
        lambda opt: torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.2, end_factor=0.9, total_iters=6),
    ),
    "PolynomialLR": (
        lambda opt: steplr.PolynomialLR(opt, total_iters=10, power=2.0),
        lambda opt: torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=10, power=2.0),
    ),
    "CosineAnnealingWarmRestarts": (
        lambda opt: steplr.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.001),
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.001),
    ),
}
# Torch's recurrences (and its 1 + cos) round differently from the closed forms: those compare to 1e-12.
ROUNDS_LIKE_TORCH = {"StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR"}


def same_rates(ours: list[list[float]], theirs: list[list[float]], name: str) -> bool:
    if name in ROUNDS_LIKE_TORCH:
        return ours == theirs
    return ours == [pytest.approx(row, rel=1e-12) for row in theirs]


# Under ignite, torch's ExponentialLR and CosineAnnealingLR give a first rate that is not step 0's (ExponentialLR
# gives step 1's, CosineAnnealingLR one above the base rate): since torch 2.2 their get_lr() tells the constructor's
# call apart by a flag ignite does not set. steplr's give step t's rate at iteration t, as torch's do in a plain loop,
# so those two are compared with the plain loop only.
SAME_UNDER_IGNITE = ["StepLR", "MultiStepLR"]
# Where ignite's handler meets a rate steplr did not write (a warm-up that ended elsewhere, a scheduler stepped by
# hand before), steplr's get_lr() scales that rate by lr(t) / lr(t - 1) and torch's by its own chainable factor:
# the same for all but CosineAnnealingLR (torch's factor applies to lr - eta_min) and CosineAnnealingWarmRestarts
# (both write their closed form; ignite wraps torch's in a class of its own).
CHAINS_LIKE_TORCH = ["StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR", "LinearLR", "PolynomialLR"]


def make_training(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, list]:
    """A linear model, its SGD optimizer (two param groups, so ignite sees a list of rates) and the batches."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.02}], lr=0.1, momentum=0.9
    )
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCHES * 2, 3, generator=generator)
    batches = list(zip(x.split(2), x.sum(dim=1, keepdim=True).split(2)))
    return model, optimizer, batches


def make_engine(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seen: list[list[float]]) -> Engine:
    """An Engine that trains one batch per iteration and records the rates each batch was trained with."""

    def train_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        seen.append([group["lr"] for group in optimizer.param_groups])
        x, y = batch
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return Engine(train_step)


def engine_lrs(build: Callable[..., object], epochs: int = EPOCHS) -> list[list[float]]:
    model, optimizer, batches = make_training()
    seen: list[list[float]] = []
    engine = make_engine(model, optimizer, seen)
    engine.add_event_handler(Events.ITERATION_STARTED, LRScheduler(build(optimizer)))
    engine.run(batches, max_epochs=epochs)
    return seen


def plain_loop_lrs(build: Callable[..., object], steps: int = BATCHES * EPOCHS) -> list[list[float]]:
    """The rates a scheduler sets when stepped after each optimizer step, outside any framework."""
    _, optimizer, _ = make_training()
    scheduler = build(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("name", PAIRS)
def test_the_handler_sets_the_rate_of_step_t_at_iteration_t(name):
    ours, theirs = PAIRS[name]
    lrs = engine_lrs(ours)
    assert len(lrs) == BATCHES * EPOCHS
    assert lrs == plain_loop_lrs(ours)
    assert same_rates(lrs, plain_loop_lrs(theirs), name)


@pytest.mark.parametrize("name", SAME_UNDER_IGNITE)
def test_the_handler_gives_torchs_rates_under_ignite(name):
    ours, theirs = PAIRS[name]
    assert engine_lrs(ours) == engine_lrs(theirs)


def warm_up_lrs(build: Callable[..., object], warmup_end_value: float | None) -> tuple[list[list[float]], list]:
    """The rates of a run behind ignite's linear warm-up, and the rates ignite simulated for it beforehand."""
    model, optimizer, batches = make_training()
    simulated: list = [None] * (BATCHES * EPOCHS)
    handler = create_lr_scheduler_with_warmup(
        build(optimizer),
        warmup_start_value=0.0,
        warmup_duration=5,
        warmup_end_value=warmup_end_value,
        output_simulated_values=simulated,
    )
    seen: list[list[float]] = []
    engine = make_engine(model, optimizer, seen)
    engine.add_event_handler(Events.ITERATION_STARTED, handler)
    engine.run(batches, max_epochs=EPOCHS)
    return seen, simulated


# The warm-up ends at each group's own rate (warmup_end_value=None); one that ends elsewhere is tested below.
@pytest.mark.parametrize("name", PAIRS)
def test_a_warm_up_before_the_scheduler_gives_torchs_rates(name):
    ours, theirs = PAIRS[name]
    lrs, simulated = warm_up_lrs(ours, None)
    assert [row[1:] for row in simulated] == lrs
    # The warm-up climbs from 0 to the rates the scheduler's constructor set (step 0's: the base rates, or
    # ConstantLR's and LinearLR's scaled ones, as torch's set them) at iteration 4, where its step 0 takes over.
    first = plain_loop_lrs(ours)[0]
    assert lrs[:5] == [[rate * i / 4 for rate in first] for i in range(5)]
    assert lrs[4:] == plain_loop_lrs(ours)[: len(lrs) - 4]
    if name == "CosineAnnealingWarmRestarts":
        # ignite wraps torch's class (not ours) in a private class that its own weights_only reload refuses, so
        # torch's side cannot run here: the rates after the warm-up are compared with torch's plain loop.
        assert same_rates(lrs[4:], plain_loop_lrs(theirs)[: len(lrs) - 4], name)
        return
    torch_lrs, torch_simulated = warm_up_lrs(theirs, None)
    assert same_rates(lrs, torch_lrs, name)
    assert [row[0] for row in simulated] == [row[0] for row in torch_simulated]
    assert same_rates([row[1:] for row in simulated], [row[1:] for row in torch_simulated], name)


@pytest.mark.parametrize("name", CHAINS_LIKE_TORCH)
@pytest.mark.parametrize("warmup_end_value", [0.1, 0.3])
def test_a_warm_up_that_ends_elsewhere_gives_torchs_rates(name, warmup_end_value):
    """The scheduler goes on from the rate the warm-up left in each group (0.1 or 0.3, where the second group's
    base is 0.02), as torch's chainable schedulers do, not from its base rates."""
    ours, theirs = PAIRS[name]
    lrs, simulated = warm_up_lrs(ours, warmup_end_value)
    torch_lrs, torch_simulated = warm_up_lrs(theirs, warmup_end_value)
    assert lrs[4] == [warmup_end_value] * 2
    assert same_rates(lrs, torch_lrs, name)
    assert [row[1:] for row in simulated] == lrs
    assert same_rates([row[1:] for row in simulated], [row[1:] for row in torch_simulated], name)
    # After the warm-up, each group's rates keep the ratios of the closed form from step 1 (the first step the
    # handler asks for): warm-up end * closed(t) / closed(0).
    plain = plain_loop_lrs(ours)
    expected = [[warmup_end_value * rate / first for rate, first in zip(row, plain[0])] for row in plain[1:12]]
    assert lrs[5:] == [pytest.approx(row, rel=1e-12) for row in expected]


def test_a_warm_up_that_ends_elsewhere_leaves_warm_restarts_on_its_closed_form():
    """CosineAnnealingWarmRestarts writes its closed form whatever the group held, as torch's does."""
    ours, theirs = PAIRS["CosineAnnealingWarmRestarts"]
    lrs, _ = warm_up_lrs(ours, 0.3)
    assert lrs[4] == [0.3, 0.3]
    assert same_rates(lrs[5:], plain_loop_lrs(theirs)[1:12], "CosineAnnealingWarmRestarts")


def test_get_lr_outside_a_step_is_the_closed_form():
    """Only a framework's step (the flag set) chains; a plain get_lr() call reads the closed form."""
    _, optimizer, _ = make_training()
    scheduler = steplr.StepLR(optimizer, step_size=3, gamma=0.5)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    for group in optimizer.param_groups:
        group["lr"] = 0.3
    assert scheduler.get_lr() == [0.05, 0.01]
    scheduler._get_lr_called_within_step = True
    assert scheduler.get_lr() == [0.3, 0.3]  # step 4 is inside the block that step 3 began
    scheduler.last_epoch = 6
    assert scheduler.get_lr() == [0.15, 0.15]
    scheduler.last_epoch = 0
    assert scheduler.get_lr() == [0.3, 0.3]  # step 0: the rates as they stand


@pytest.mark.parametrize("name", PAIRS)
def test_simulate_values_gives_the_engines_rates_and_leaves_the_scheduler_as_it_was(name):
    ours, theirs = PAIRS[name]
    _, optimizer, _ = make_training()
    scheduler = ours(optimizer)
    simulated = LRScheduler.simulate_values(num_events=BATCHES * EPOCHS, lr_scheduler=scheduler)
    assert [row[0] for row in simulated] == list(range(BATCHES * EPOCHS))
    assert [row[1:] for row in simulated] == engine_lrs(ours)
    if name in SAME_UNDER_IGNITE:
        _, torch_optimizer, _ = make_training()
        torch_simulated = LRScheduler.simulate_values(num_events=BATCHES * EPOCHS, lr_scheduler=theirs(torch_optimizer))
        assert simulated == torch_simulated

    # Part-way through a run, the simulation continues from the scheduler's step and restores it afterwards.
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    before = (scheduler.state_dict(), [group["lr"] for group in optimizer.param_groups])
    simulated = [row[1:] for row in LRScheduler.simulate_values(num_events=8, lr_scheduler=scheduler)]
    plain = plain_loop_lrs(ours, steps=11)
    if name == "CosineAnnealingWarmRestarts":  # writes its closed form whatever the groups hold
        assert simulated == plain[3:]
    else:
        # The groups hold step 3's rates, not step 2's, so the handler's first call chains from them, as torch's
        # does: lr(t) = lr_3 * closed(t) / closed(2), a decay at step 3 applied on top of the one step() applied.
        chained = [[now * rate / last for now, rate, last in zip(plain[3], row, plain[2])] for row in plain[3:]]
        assert simulated == [pytest.approx(row, rel=1e-12) for row in chained]
    if name in CHAINS_LIKE_TORCH:
        _, torch_optimizer, _ = make_training()
        torch_scheduler = theirs(torch_optimizer)
        for _ in range(3):
            torch_optimizer.step()
            torch_scheduler.step()
        torch_simulated = LRScheduler.simulate_values(num_events=8, lr_scheduler=torch_scheduler)
        assert same_rates(simulated, [row[1:] for row in torch_simulated], name)
    assert (scheduler.state_dict(), [group["lr"] for group in optimizer.param_groups]) == before
    scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == plain_loop_lrs(ours, steps=5)[4]


@pytest.mark.parametrize("name", PAIRS)
def test_a_checkpoint_saved_mid_run_resumes_to_the_uninterrupted_rates(tmp_path, name):
    build = PAIRS[name][0]
    uninterrupted = engine_lrs(build)

    def objects() -> tuple[dict, list, list[list[float]]]:
        model, optimizer, batches = make_training()
        seen: list[list[float]] = []
        engine = make_engine(model, optimizer, seen)
        handler = LRScheduler(build(optimizer))
        engine.add_event_handler(Events.ITERATION_STARTED, handler)
        to_save = {"trainer": engine, "model": model, "optimizer": optimizer, "lr_scheduler": handler}
        return to_save, batches, seen

    # First part: save after iteration 6 (mid-epoch, mid-block of StepLR), then stop.
    to_save, batches, first = objects()
    engine = to_save["trainer"]
    checkpoint = Checkpoint(to_save, DiskSaver(tmp_path, require_empty=False), n_saved=None)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=6), checkpoint)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=6), lambda: engine.terminate())
    engine.run(batches, max_epochs=EPOCHS)
    assert first == uninterrupted[:6]
    (path,) = tmp_path.iterdir()
    saved = torch.load(path, weights_only=True)
    assert saved["lr_scheduler"]["lr_scheduler"]["format"] == steplr.lr_scheduler.STATE_FORMAT
    assert saved["lr_scheduler"]["lr_scheduler"]["last_epoch"] == 6

    # Second part: fresh objects, load the file, finish the run.
    to_load, batches, second = objects()
    Checkpoint.load_objects(to_load=to_load, checkpoint=str(path))
    to_load["trainer"].run(batches, max_epochs=EPOCHS)
    assert first + second == uninterrupted


CYCLICAL = {
    "OneCycleLR": {"max_lr": [0.4, 0.1], "total_steps": BATCHES * EPOCHS + 1, "pct_start": 0.4},
    "CyclicLR": {"base_lr": [0.01, 0.002], "max_lr": 0.2, "step_size_up": 3, "step_size_down": 2},
}


@pytest.mark.parametrize("name", CYCLICAL)
def test_cyclical_schedulers_cycle_rate_and_momentum_under_ignite_as_torchs_do(name):
    """Ignite calls only get_lr(): torch's OneCycleLR and CyclicLR set the momentum there, and so do steplr's."""

    def run(build: Callable[..., object]) -> list[list[float]]:
        model, optimizer, batches = make_training()
        seen: list[list[float]] = []
        engine = make_engine(model, optimizer, seen)
        engine.add_event_handler(
            Events.ITERATION_STARTED, lambda: seen.append([g["momentum"] for g in optimizer.param_groups])
        )
        engine.add_event_handler(Events.ITERATION_STARTED, LRScheduler(build(optimizer)))
        engine.run(batches, max_epochs=EPOCHS)
        return seen

    arguments = CYCLICAL[name]
    ours = run(lambda opt: getattr(steplr, name)(opt, **arguments))
    theirs = run(lambda opt: getattr(torch.optim.lr_scheduler, name)(opt, **arguments))
    assert len(ours) == 2 * BATCHES * EPOCHS
    assert ours == [pytest.approx(row, rel=1e-12) for row in theirs]
    assert len({row[0] for row in ours[0::2]}) > 2  # the momentum did cycle
