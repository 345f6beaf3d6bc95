"""The batched engine's arithmetic, one step at a time, against torch: autograd, torch.optim.SGD and Adam,
ReduceLROnPlateau."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from steplr.errors import SteplrValueError
from steplr.training.models import QwertyNet, SimpleNet, StackSpec, stack_spec
from steplr.training.numerics import (
    ADAM_BETAS,
    ADAM_EPS,
    PLATEAU_EPS,
    PLATEAU_THRESHOLD,
    SGD,
    Adam,
    Plateau,
    StackedModels,
    metrics,
    sgd_step,
)

K, BATCH = 3, 7


def seeded(make, seeds=range(K)):
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(make())
    return models


SHAPES = {"qwerty": (lambda: QwertyNet(2, 8, 3), 2, 3), "linear": (lambda: SimpleNet(12, 5), 12, 5)}


def batch(in_features, classes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(K, BATCH, in_features, generator=generator)
    y = torch.randint(0, classes, (K, BATCH), generator=generator)
    return x, y


def autograd_step(model, x, y):
    """Loss, rows classified right and gradients of one model, as the sequential trainer computes them."""
    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.item(), logits.argmax(dim=1) == y, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_forward_backward_matches_autograd(shape):
    make, in_features, classes = SHAPES[shape]
    models = seeded(make)
    stacked = StackedModels(models)
    x, y = batch(in_features, classes)
    losses, right, grads = stacked.forward_backward(x.transpose(1, 2), y)  # inputs features first: (K, in, B)
    assert isinstance(grads, list) and len(grads) == len(stacked.parameters)
    for i, model in enumerate(models):
        loss, model_right, model_grads = autograd_step(model, x[i], y[i])
        assert losses[i].item() == pytest.approx(loss, rel=1e-6)
        assert torch.equal(right[i], model_right)
        for ours, theirs in zip(grads, model_grads):
            assert ours[i].shape == theirs.shape
            assert torch.allclose(ours[i], theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_logits_and_weights_are_each_models(shape):
    make, in_features, classes = SHAPES[shape]
    models = seeded(make)
    stacked = StackedModels(models)
    x = torch.randn(11, in_features, generator=torch.Generator().manual_seed(1))
    logits = stacked(x)
    assert logits.shape == (K, classes, 11)
    for i, model in enumerate(models):
        with torch.no_grad():
            assert torch.allclose(logits[i].t(), model(x), rtol=1e-5, atol=1e-6)
        assert stacked.state_dict(i).keys() == model.state_dict().keys()
        assert all(torch.equal(stacked.state_dict(i)[k], v) for k, v in model.state_dict().items())


def test_models_declare_their_stack_and_others_are_refused():
    assert stack_spec(QwertyNet()) == StackSpec(("fc1", "fc2"))
    assert stack_spec(SimpleNet()) == StackSpec(("fc",))
    assert stack_spec(nn.Sequential(nn.Linear(2, 3))) is None
    with pytest.raises(SteplrValueError, match=r"one declared stack spec, got \['Sequential'\]"):
        StackedModels([nn.Sequential(nn.Linear(2, 3))])
    with pytest.raises(SteplrValueError, match=r"got \['QwertyNet', 'SimpleNet'\]"):
        StackedModels([QwertyNet(), SimpleNet()])
    with pytest.raises(SteplrValueError, match="ReLU stacks only, got activation 'tanh'"):
        StackSpec(("fc",), activation="tanh")


def stacked_with_grads(seed=0):
    models = seeded(lambda: QwertyNet(2, 8, 3))
    stacked = StackedModels(models)
    x, y = batch(2, 3, seed)
    _, _, grads = stacked.forward_backward(x.transpose(1, 2), y)
    return models, stacked, grads


def torch_update(models, stacked, grads, lrs, make_optimizer, steps=1):
    """Each model's parameters after ``steps`` updates by its own torch optimizer, fed the batched gradients."""
    results = []
    for i, model in enumerate(models):
        optimizer = make_optimizer(model.parameters(), float(lrs[i]))
        for _ in range(steps):
            for parameter, grad in zip(model.parameters(), grads):
                parameter.grad = grad[i].clone()
            optimizer.step()
        results.append([p.detach().clone() for p in model.parameters()])
    return results


def test_sgd_step_is_torch_sgd_with_one_lr_per_model():
    models, stacked, grads = stacked_with_grads()
    lrs = torch.tensor([0.1, 0.003, 1.7], dtype=torch.float64)
    expected = torch_update(models, stacked, grads, lrs, lambda p, lr: torch.optim.SGD(p, lr=lr))
    sgd_step(stacked.parameters, grads, lrs.to(torch.float32))
    for i, parameters in enumerate(expected):
        for ours, theirs in zip(stacked.parameters, parameters):
            assert torch.allclose(ours[i], theirs, rtol=0, atol=1e-7)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("steps", [1, 2, 5])  # the bias corrections change with the step count
def test_adam_steps_are_torch_adam_with_one_lr_per_model(fused, steps):
    models, stacked, grads = stacked_with_grads()
    lrs = torch.tensor([1e-3, 0.05, 0.3], dtype=torch.float64)
    expected = torch_update(models, stacked, grads, lrs, lambda p, lr: torch.optim.Adam(p, lr=lr, fused=fused), steps)
    initial = [p.clone() for p in stacked.parameters]
    adam = Adam(stacked.parameters)
    for _ in range(steps):
        adam.step(grads, lrs)
    assert adam.steps == steps
    for i, parameters in enumerate(expected):
        for ours, theirs in zip(stacked.parameters, parameters):
            assert torch.allclose(ours[i], theirs, rtol=1e-5, atol=1e-7)
    assert not any(torch.equal(p, q) for p, q in zip(stacked.parameters, initial))


def grads_for_steps(stacked, steps, seed=0):
    """A different batch's gradients for every step (fixed: computed at the initial weights)."""
    return [stacked_with_grads(seed + step)[2] for step in range(steps)]


def torch_trajectory(models, grads_per_step, lrs, make_optimizer):
    """Each model's parameters after one torch optimizer step per entry of ``grads_per_step``."""
    results = []
    for i, model in enumerate(models):
        optimizer = make_optimizer(model.parameters(), float(lrs[i]))
        for grads in grads_per_step:
            for parameter, grad in zip(model.parameters(), grads):
                parameter.grad = grad[i].clone()
            optimizer.step()
        results.append([p.detach().clone() for p in model.parameters()])
    return results


@settings(max_examples=25, deadline=None)
@given(
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    nesterov=st.booleans(),
    weight_decay=st.sampled_from([0.0, 1e-4, 0.05]),
    steps=st.integers(1, 4),
)
def test_sgd_with_momentum_nesterov_and_weight_decay_is_torch_sgd_per_model(momentum, nesterov, weight_decay, steps):
    nesterov = nesterov and momentum > 0
    models, stacked, _ = stacked_with_grads()
    grads_per_step = grads_for_steps(stacked, steps)
    lrs = torch.tensor([0.1, 0.003, 1.7], dtype=torch.float64)
    expected = torch_trajectory(
        models,
        grads_per_step,
        lrs,
        lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay),
    )
    sgd = SGD(stacked.parameters, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    for grads in grads_per_step:
        sgd.step(grads, lrs.to(torch.float32))
    for i, parameters in enumerate(expected):
        for ours, theirs in zip(stacked.parameters, parameters):
            assert torch.allclose(ours[i], theirs, rtol=1e-6, atol=1e-6)


def test_sgd_momentum_starts_its_buffer_at_the_first_gradient():
    """torch's first step moves by lr * grad (the buffer starts as the gradient, not as (1 - dampening) * grad)."""
    p = torch.zeros(2, 3)
    grad = torch.ones(2, 3)
    SGD([p], momentum=0.9).step([grad], torch.tensor([0.5, 0.25]))
    assert p.tolist() == [[-0.5] * 3, [-0.25] * 3]


def test_a_missing_gradient_leaves_its_parameter_alone():
    p, q = torch.ones(2, 3), torch.ones(2, 4)
    lrs = torch.tensor([0.5, 0.25])
    SGD([p, q], momentum=0.9, weight_decay=0.1).step([None, torch.ones(2, 4)], lrs)
    adam = Adam([p, q], weight_decay=0.1, decoupled=True)
    adam.step([None, torch.ones(2, 4)], lrs.double())
    assert torch.equal(p, torch.ones(2, 3)) and adam.counts == [0, 1]
    assert not torch.equal(q, torch.ones(2, 4))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.5])
def test_adam_and_adamw_with_weight_decay_are_torchs_per_model(fused, decoupled, weight_decay):
    models, stacked, _ = stacked_with_grads()
    grads_per_step = grads_for_steps(stacked, 4)
    lrs = torch.tensor([1e-3, 0.05, 0.3], dtype=torch.float64)
    optimizer = torch.optim.AdamW if decoupled else torch.optim.Adam
    expected = torch_trajectory(
        models, grads_per_step, lrs, lambda p, lr: optimizer(p, lr=lr, weight_decay=weight_decay, fused=fused)
    )
    adam = Adam(stacked.parameters, weight_decay=weight_decay, decoupled=decoupled)
    for grads in grads_per_step:
        adam.step(grads, lrs)
    for i, parameters in enumerate(expected):
        for ours, theirs in zip(stacked.parameters, parameters):
            assert torch.allclose(ours[i], theirs, rtol=1e-5, atol=1e-7)


def test_constants_are_torch_defaults():
    defaults = torch.optim.Adam([torch.zeros(1, requires_grad=True)]).defaults
    assert (defaults["betas"], defaults["eps"]) == (ADAM_BETAS, ADAM_EPS)
    parameters = inspect.signature(torch.optim.lr_scheduler.ReduceLROnPlateau).parameters
    assert parameters["threshold"].default == PLATEAU_THRESHOLD and parameters["eps"].default == PLATEAU_EPS
    assert parameters["threshold_mode"].default == "rel" and parameters["cooldown"].default == 0
    assert parameters["min_lr"].default == 0


losses = st.lists(
    st.one_of(st.floats(0.0, 4.0), st.sampled_from([1.0, 0.5, math.nan, math.inf])), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1e-6, 10.0), st.floats(0.01, 0.99), st.integers(0, 3), losses), min_size=1, max_size=4)
)
def test_plateau_follows_reduce_lr_on_plateau_epoch_by_epoch(runs):
    """Each model's LR after every epoch is the one torch's ReduceLROnPlateau sets for the same losses."""
    controller = Plateau([lr for lr, *_ in runs], [f for _, f, _, _ in runs], [p for _, _, p, _ in runs])
    references = []
    for lr, factor, patience, _ in runs:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        references.append(
            (optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=factor, patience=patience))
        )
    for epoch in range(max(len(r[3]) for r in runs)):
        signal = [r[3][epoch % len(r[3])] for r in runs]
        controller.step(signal)
        for i, (optimizer, scheduler) in enumerate(references):
            scheduler.step(signal[i])
            assert controller.lrs[i] == optimizer.param_groups[0]["lr"], (i, epoch)


def test_plateau_cuts_after_patience_epochs_without_improvement():
    controller = Plateau([1.0, 1.0], [0.5, 0.1], [0, 1])
    controller.step([1.0, 1.0])  # a first loss is always a new best
    assert controller.lrs.tolist() == [1.0, 1.0]
    controller.step([1.0, 1.0])  # no improvement: patience 0 cuts at once
    assert controller.lrs.tolist() == [0.5, 1.0]
    controller.step([1.0, 1.0])  # the second bad epoch in a row is past patience 1
    assert controller.lrs.tolist() == [0.25, 0.1]


def test_metrics_are_cross_entropy_and_argmax_accuracy():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(K, 4, 9, generator=generator)
    labels = torch.randint(0, 4, (9,), generator=generator)
    losses, accuracies = metrics(logits, labels)
    for i in range(K):
        assert losses[i].item() == pytest.approx(F.cross_entropy(logits[i].t(), labels).item(), rel=1e-6)
        assert accuracies[i].item() == int((logits[i].argmax(dim=0) == labels).sum()) / 9
    assert accuracies.dtype == torch.float64
