"""Many runs of any model at once: K copies of a functional model trained together with ``torch.func``.

The K models' parameters and buffers are stacked along a leading axis (``torch.func.stack_module_state``), and
one ``vmap`` of ``functional_call`` runs every model's forward pass on its own batch in one go: each model has its
own seed (initial weights), batch order, schedule and learning rate, its own buffers (BatchNorm's running
statistics, updated in training mode, read in evaluation mode) and, under ``randomness="different"``, its own
dropout masks. The gradients come from one backward pass of the sum of the K losses: each model's loss depends on
its own slice of the stacked parameters only, so that slice of the gradient is exactly its own loss's gradient
(one backward pass through the batched graph is cheaper than ``vmap`` over ``grad``). The update is the per-model
SGD or Adam/AdamW of :mod:`steplr.training.numerics`.

Everything the sequential trainer also decides (split, batches, step indices, LR table or plateau rule, orders,
initial weights, loss, accuracy) comes from the same :class:`~steplr.training.plan.RunPlan`. Model ``i``
reproduces ``train(configs[i], data, task=task)``: the same LR at every iteration (exactly), and the same metrics
and weights up to float32 rounding (batched kernels round in another order); dropout draws other masks than the
sequential run does, so a model with dropout agrees with it in distribution only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from steplr.errors import SteplrValueError
from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.data import TrainData
from steplr.training.numerics import SGD, Adam
from steplr.training.plan import LearningRates, RunPlan
from steplr.training.task import LossFunction, Task

__all__ = [
    "FunctionalModels",
    "train_functional",
    "Probe",
    "probe",
    "stacked_loss",
    "eval_chunk",
    "EVAL_BYTES",
    "ESTIMATE_MARGIN",
]

EVAL_BYTES = 64 * 2**20  # evaluation may take this much room for its activations beyond the training batch's
# The per-model estimate is the sum below times this: allocator slack and Python objects per model (the records,
# the tensors' headers) that the sum leaves out; bench_generic.py measures both (benchmarks/RESULTS.md, "generic").
ESTIMATE_MARGIN = 1.25


class FunctionalModels:
    """K models of one architecture as stacked tensors, run with ``vmap`` over ``functional_call``.

    ``parameters`` holds the trainable parameters (K, ...) in the order of ``model.named_parameters()``;
    ``state`` everything else the forward pass reads (frozen parameters and buffers, also stacked).
    """

    def __init__(self, make: Callable[[int], nn.Module], count: int) -> None:
        """Stack ``make(0)``, ..., ``make(count - 1)``, built one at a time (only the first is kept: it is the
        architecture, whose own tensors are never read, as they are swapped out for the stacked ones).

        Raises:
            SteplrValueError: when a model's tensors differ in name, shape or dtype from the first model's.
        """
        self.module = make(0)
        params, buffers = stack_module_state([self.module])  # (1, ...) each: names and layouts as torch.func has them
        stacked = {name: t.detach().new_empty((count, *t.shape[1:])) for name, t in (*params.items(), *buffers.items())}
        for i in range(count):
            model = self.module if i == 0 else make(i)
            tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
            tensors.update(model.named_buffers())
            if {name: (t.shape, t.dtype) for name, t in tensors.items()} != {
                name: (t.shape[1:], t.dtype) for name, t in stacked.items()
            }:
                raise SteplrValueError(f"model {i} differs in its tensors' names, shapes or dtypes from model 0")
            with torch.no_grad():
                for name, tensor in tensors.items():
                    stacked[name][i].copy_(tensor)
        trainable = {name for name, p in self.module.named_parameters() if p.requires_grad}
        self.names = [name for name in params if name in trainable]
        self.parameters = [stacked[name].requires_grad_() for name in self.names]
        self.state = {name: t for name, t in stacked.items() if name not in trainable}
        self.count = count
        self._slots = _slots(self.module, [*self.names, *self.state])

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = dict(zip(self.names, self.parameters))
        tensors.update(self.state)
        return tensors

    def _flat(self) -> tuple[torch.Tensor, ...]:
        return (*self.parameters, *self.state.values())

    def _call(self, flat: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
        """The module's forward pass on ``x`` with the tensors ``flat`` (in the order of :meth:`_flat`) in place of
        its own."""
        if self._slots is None:  # shared tensors: functional_call ties them
            names = [*self.names, *self.state]
            out: torch.Tensor = functional_call(self.module, dict(zip(names, flat)), (x,))
            return out
        saved = [table[key] for table, key in self._slots]
        try:
            for (table, key), tensor in zip(self._slots, flat):
                table[key] = tensor
            result: torch.Tensor = self.module(x)
        finally:
            for (table, key), tensor in zip(self._slots, saved):
                table[key] = tensor
        return result

    def forward_backward(
        self, x: torch.Tensor, y: torch.Tensor, loss: LossFunction
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
        """Training mode: each model's mean loss (K,) on its batch ``x`` (K, B, ...) with targets ``y`` (K, B, ...),
        its outputs (K, B, ...), and the gradients of its loss (None for a parameter the loss does not reach).
        Buffers (running statistics) are updated in place, each model's from its own batch."""
        self.module.train()
        with torch.enable_grad():
            outputs = vmap(self._call, randomness="different")(self._flat(), x)
            losses = stacked_loss(loss, outputs, y, shared=False)
            grads = torch.autograd.grad(losses.sum(), self.parameters, allow_unused=True)
        return losses.detach(), outputs.detach(), list(grads)

    def __call__(self, x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Evaluation mode: every model's outputs (K, N, ...) for ``x`` (N, ...) shared by all, ``chunk`` models
        at a time (None: all at once)."""
        self.module.eval()
        with torch.no_grad():
            out: torch.Tensor = vmap(self._call, in_dims=(0, None), chunk_size=chunk, randomness="different")(
                self._flat(), x
            )
        return out

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i``'s trained weights and buffers, under its ``nn.Module``'s names and in their order."""
        tensors = self._tensors()
        return {name: tensors[name][i].detach().clone() for name in self.module.state_dict()}


def _slots(module: nn.Module, names: Sequence[str]) -> list[tuple[dict[str, Any], str]] | None:
    """Where each named tensor lives: its owner's ``_parameters`` or ``_buffers`` table and key. Swapping the
    entries of those tables is all ``functional_call`` needs to do for a module without shared tensors, and costs
    a fraction of its generic path per step. None when the module shares a tensor between names (or keeps one
    elsewhere): then ``functional_call`` does the swapping."""
    all_names = [name for name, _ in module.named_parameters(remove_duplicate=False)]
    all_names += [name for name, _ in module.named_buffers(remove_duplicate=False)]
    if sorted(all_names) != sorted(names):
        return None
    slots = []
    for name in names:
        owner_name, _, key = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        table = owner._parameters if key in owner._parameters else owner._buffers
        if table.get(key) is None:
            return None
        slots.append((table, key))
    return slots


def stacked_loss(loss: LossFunction, outputs: torch.Tensor, targets: torch.Tensor, shared: bool) -> torch.Tensor:
    """Each model's loss (K,) of its outputs (K, N, ...) against its targets (K, N, ...), or with ``shared``
    against targets (N, ...) shared by all. Cross-entropy of logits (K, N, C) is one call for all the models, as
    the mean of the rows' losses (under ``vmap`` its rule runs in Python, once per call)."""
    if loss is F.cross_entropy and outputs.dim() == 3 and not targets.is_floating_point():
        # Classes along dim 1 of a (K, C, N) view: reductions over a few classes then run along the rows, several
        # times faster than over the innermost axis of (K * N, C).
        k, n, _ = outputs.shape
        rows_loss = F.cross_entropy(outputs.transpose(1, 2), targets.expand(k, n), reduction="none")
        return rows_loss.mean(dim=1)
    losses: torch.Tensor = vmap(loss, in_dims=(0, None if shared else 0))(outputs, targets)
    return losses


def _optimizer(config: TrainConfig, parameters: list[torch.Tensor]) -> SGD | Adam:
    """The per-model optimizer the configs share (their optimizer settings are shared fields of a plan)."""
    if config.optimizer == "sgd":
        return SGD(parameters, config.momentum, config.nesterov, config.weight_decay)
    return Adam(parameters, config.weight_decay, decoupled=config.optimizer == "adamw")


def train_functional(
    configs: Sequence[TrainConfig],
    data: TrainData,
    task: Task | None = None,
    device: torch.device | str | None = None,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
    models_out: list[FunctionalModels] | None = None,
    eval_models: int | None = None,
) -> list[History]:
    """Train every config at once with ``torch.func``; return one History per config, in order.

    ``task``: a user's model and loss (None: the model the configs name); ``device``: where to train (None: where
    the data is). ``on_epoch``: called after every epoch with each model's record of it, in the order of
    ``configs`` (an exception it raises stops the training). ``models_out``: the trained models are appended to it
    (:meth:`FunctionalModels.state_dict` gives model ``i``'s weights). ``eval_models``: how many models evaluate
    the validation and test sets at a time (None: as many as :func:`eval_chunk` says).

    A model whose loss becomes NaN or infinite gets NaN records from that epoch on, as a diverged sequential run
    does (:func:`steplr.training.engines.train_many`); the others are unaffected.

    Raises:
        SteplrValueError: for no configs or configs that differ in a shared field.
    """
    plan = RunPlan(configs, data, task, device)
    models = FunctionalModels(plan.initial_model, len(configs))
    if models_out is not None:
        models_out.append(models)
    lrs = plan.learning_rates(models.parameters[0].dtype)
    optimizer = _optimizer(configs[0], models.parameters)
    # SGD takes the LRs rounded as torch rounds a Python float for the parameters; Adam divides them first.
    table = lrs.rounded if isinstance(optimizer, SGD) else lrs.table
    generators = [plan.generator(i) for i in range(len(configs))]
    histories = [History() for _ in configs]
    chunk = eval_chunk(plan, len(configs), plan.initial_model(0)) if eval_models is None else eval_models
    diverged = torch.zeros(len(configs), dtype=torch.bool)
    for epoch in range(plan.epochs):
        lrs.start_epoch(epoch)
        loss_sum = torch.zeros(len(configs), dtype=torch.float64, device=plan.device)
        correct = torch.zeros(len(configs), dtype=torch.int64, device=plan.device)
        first, last = plan.step(epoch, 0), plan.step(epoch, plan.batches - 1)
        epoch_lrs = table[:, first : last + 1].to(plan.device)  # this epoch's columns, where the models are
        for batch, (xb, yb) in enumerate(plan.batches_of(torch.stack([plan.order(g) for g in generators]))):
            losses, outputs, grads = models.forward_backward(xb, yb, plan.loss)
            with torch.no_grad():  # the stacked parameters are autograd leaves, updated in place
                optimizer.step(grads, epoch_lrs[:, plan.step(epoch, batch) - first])
            loss_sum += losses
            if plan.classify:
                correct += (_predicted(outputs) == yb).sum(dim=1)
        diverged |= ~torch.isfinite(loss_sum).cpu()
        records = _records(plan, models, lrs, epoch, loss_sum, correct, diverged, chunk)
        for history, record in zip(histories, records):
            history.epochs.append(record)
        lrs.end_epoch(records)
        if on_epoch is not None:
            on_epoch(records)
    for history, row in zip(histories, lrs.per_iteration()):
        history.iteration_lrs = row  # the LR each model used at each iteration
    return histories


def _predicted(outputs: torch.Tensor) -> torch.Tensor:
    """Each model's predicted classes (the sequential trainer's ``argmax(dim=1)``, the first of equal maxima), for
    outputs (K, N, C, ...); ``max`` finds them faster than ``argmax`` when C is small."""
    return outputs.max(dim=2).indices


def _evaluate(
    plan: RunPlan, models: FunctionalModels, x: torch.Tensor, y: torch.Tensor, chunk: int | None
) -> tuple[list[float], list[float]]:
    """Each model's loss and accuracy on (x, y) in evaluation mode (NaN for an empty set; accuracy NaN for a
    regression)."""
    k = models.count
    if y.shape[0] == 0:
        return [math.nan] * k, [math.nan] * k
    outputs = models(x, chunk)
    losses = stacked_loss(plan.loss, outputs, y, shared=True)
    if plan.classify:
        accuracies = ((_predicted(outputs) == y).sum(dim=1).to(torch.float64) / y.shape[0]).tolist()
    else:
        accuracies = [math.nan] * k
    return losses.tolist(), accuracies


def _records(
    plan: RunPlan,
    models: FunctionalModels,
    lrs: LearningRates,
    epoch: int,
    loss_sum: torch.Tensor,
    correct: torch.Tensor,
    diverged: torch.Tensor,
    chunk: int | None,
) -> list[EpochRecord]:
    """Each model's record of the epoch: the sums over its batches, then loss and accuracy on the test set and
    the validation split; all NaN for a model that has diverged."""
    split = plan.split
    test = _evaluate(plan, models, split.x_test, split.y_test, chunk)
    val = _evaluate(plan, models, split.x_val, split.y_val, chunk)
    last = lrs.table[:, plan.step(epoch, plan.batches - 1)].tolist()
    records = []
    gone = diverged.tolist()
    for i, (loss, right) in enumerate(zip(loss_sum.tolist(), correct.tolist())):
        if gone[i]:
            nan = math.nan
            records.append(EpochRecord(epoch + 1, nan, nan, nan, nan, nan, nan, nan))
        else:
            records.append(plan.record(epoch, loss, right, last[i], (test[0][i], test[1][i]), (val[0][i], val[1][i])))
    return records


@dataclass(frozen=True)
class Probe:
    """What one tiny trial of the functional engine found: why ``vmap`` cannot take the model (None: it can), and
    the bytes one model needs while training (:func:`probe`)."""

    error: str | None
    bytes_per_model: int
    activations: int = 0  # bytes autograd keeps for one model's backward pass of one batch


def probe(
    configs: Sequence[TrainConfig], data: TrainData, task: Task | None, device: torch.device | str | None
) -> Probe:
    """Try the functional engine on two copies of the model and a batch of two examples, then measure one model.

    The estimate of one model's memory (bytes) while training, with ``P`` the bytes of its parameters:
    ``P`` (weights) + ``P`` (gradients) + ``P`` per optimizer state (momentum buffer; two moments for Adam) +
    ``P`` for the update's temporaries + its buffers + the tensors autograd keeps for the backward pass of one
    batch (measured with saved-tensor hooks on one forward pass, of the batch size) counted twice (the backward
    pass makes gradients of the same sizes) + its copy of the training set and its order per epoch when the plan
    copies one + its row of the LR table and its list of iteration LRs (Python floats). Evaluation runs models in
    chunks whose activations fit in the same room, or in :data:`EVAL_BYTES` when that is more (:func:`eval_chunk`):
    a fixed allowance beside the per-model estimate. The sum is multiplied by :data:`ESTIMATE_MARGIN`.
    """
    with torch.random.fork_rng(devices=[]):  # dropout in the trial leaves torch's global RNG as it was
        return _probe(RunPlan(configs[:1], data, task, device))


def _probe(plan: RunPlan) -> Probe:
    try:
        models = FunctionalModels(lambda _: plan.initial_model(0), 2)
        rows_ = min(2, plan.examples)
        x, y = plan.split.x_train[:rows_], plan.split.y_train[:rows_]
        models.forward_backward(torch.stack([x, x]), torch.stack([y, y]), plan.loss)
        models(x)
    except Exception as error:  # any failure means: this engine cannot train the model
        lines = str(error).strip().splitlines() or [type(error).__name__]
        return Probe(f"vmap cannot take this model: {lines[0]}", 0)
    model = plan.initial_model(0)
    return Probe(None, _model_bytes(plan, model), activation_bytes(plan, model, plan.batch_size))


def _model_bytes(plan: RunPlan, model: nn.Module) -> int:
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    other = sum(t.numel() * t.element_size() for t in model.buffers())
    other += sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    config = plan.configs[0]
    states = 2 if config.optimizer != "sgd" else (1 if config.momentum else 0)
    x = plan.split.x_train
    data = x.element_size() * x.nelement() + plan.split.y_train.element_size() * plan.examples
    per_epoch_copy = data if plan.copy_per_epoch else 0
    order = 8 * plan.examples
    lrs = plan.epochs * (12 * plan.steps_per_epoch + 32 * plan.batches)  # float64 and float32 tables; floats
    activations = 2 * activation_bytes(plan, model, plan.batch_size)
    return int(ESTIMATE_MARGIN * (trainable * (3 + states) + other + activations + per_epoch_copy + order + lrs))


def activation_bytes(plan: RunPlan, model: nn.Module, rows_: int) -> int:
    """Bytes autograd keeps for the backward pass of ``model`` on ``rows_`` training examples (and the outputs),
    measured with saved-tensor hooks (each stored tensor counted once)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        seen[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    model.train()
    x = plan.split.x_train[: min(rows_, plan.examples)]
    scale = rows_ / max(1, x.shape[0])
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        plan.loss(out, plan.split.y_train[: x.shape[0]])
    params = {id(p) for p in model.parameters()}
    saved = sum(size for key, size in seen.items() if key not in params)
    return int((saved + out.numel() * out.element_size()) * scale)


def eval_chunk(plan: RunPlan, models: int, model: nn.Module) -> int:
    """How many of ``models`` copies of ``model`` evaluate the largest evaluation set at a time: as many as keep
    their activations within :data:`EVAL_BYTES`, or within the room the training batch's activations of all the
    models take when that is more (at least 1, at most ``models``)."""
    rows_ = max(plan.split.x_test.shape[0], plan.split.x_val.shape[0])
    if rows_ <= plan.batch_size:
        return models
    per_model = max(1, activation_bytes(plan, model, rows_))
    return max(1, min(models, max(models * plan.batch_size // rows_, EVAL_BYTES // per_model)))
