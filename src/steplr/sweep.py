"""Many schedules trained at once: K models of one recipe stacked along a leading axis.

Every model has its own schedule (type and parameters), base LR, seed (so its own initial weights) and batch
order; they share the data, the architecture, the optimizer kind, the batch size and the number of epochs. Each
step runs one batched forward/backward for all K models and one vectorised optimizer update, with per-model
learning rates read from a table built by the schedules' vectorised closed forms (one call for all step-decay
configs). Model ``i`` reproduces ``train(configs[i], data)``: the same LR at every iteration (exactly) and the
same metrics and weights up to float32 rounding (batched matmuls and the written-out backward pass round
in another order than autograd does).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import build_model
from .schedules import StepDecay
from .train import EpochRecord, History, TrainConfig, TrainData, _rows
from .units import resolve_duration

__all__ = ["train_batched", "lr_table", "configs_with", "BatchedModels", "SHARED_FIELDS"]

# Settings that fix the shape of the computation: they must agree across a batch.
SHARED_FIELDS = ("dataset", "model", "optimizer", "batch_size", "epochs", "interval")
_SMALL_DATA_BYTES = 64 * 2**20
_ADAM_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which train() uses


def lr_table(configs: Sequence[TrainConfig], batches: int) -> np.ndarray:
    """Learning rates, shape (K, scheduler steps), from the closed forms; NaN rows for ``plateau`` configs.

    All ``step`` configs are evaluated in one broadcast call of :class:`~steplr.schedules.StepDecay`.
    """
    first = configs[0]
    spe = first.steps_per_epoch(batches)
    steps = np.arange(first.epochs * spe, dtype=np.int64)
    table = np.full((len(configs), steps.size), np.nan)
    step_rows = [i for i, c in enumerate(configs) if c.schedule == "step"]
    if step_rows:
        sizes = np.array([resolve_duration(configs[i].step_size, "step_size", spe) for i in step_rows])
        gammas = np.array([configs[i].gamma for i in step_rows], dtype=np.float64)
        lrs = np.array([configs[i].lr for i in step_rows], dtype=np.float64)
        table[step_rows] = StepDecay(sizes[:, None], gammas[:, None]).lr(lrs[:, None], steps[None, :])
    for i, c in enumerate(configs):
        if c.schedule in ("step", "plateau"):
            continue
        table[i] = c.build_schedule(batches).lr(c.lr, steps)
    return table


class BatchedModels:
    """K copies of a Linear/ReLU stack as stacked weights: layer l holds W (K, out, in) and b (K, out)."""

    def __init__(self, configs: Sequence[TrainConfig], in_features: int, num_classes: int) -> None:
        models = []
        for config in configs:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(config.seed)  # the same initial weights as train() draws
                models.append(build_model(config.model, in_features, num_classes))
        # Both of steplr's models are Linear layers with ReLU between them (QwertyNet: fc1, relu, fc2; SimpleNet: fc).
        linears = [[m for m in model.modules() if isinstance(m, nn.Linear)] for model in models]
        layers = range(len(linears[0]))
        # The first layer's weights are kept transposed, (K, in, out): it needs no input gradient, and both its
        # batched matmuls run faster on that layout (94 -> 67 us forward, 61 -> 23 us backward at K=256 on Qwerty).
        self.weights = [torch.stack([ls[j].weight.detach() for ls in linears]) for j in layers]
        self.weights[0] = self.weights[0].transpose(1, 2).contiguous()
        self.biases = [torch.stack([ls[j].bias.detach() for ls in linears]) for j in layers]
        self.grads: list[torch.Tensor] = []  # filled by forward_backward, in the order of ``parameters``
        self._ones: dict[torch.Size, torch.Tensor] = {}

    def _minus_ones(self, shape: torch.Size) -> torch.Tensor:
        if shape not in self._ones:
            self._ones[shape] = torch.full(shape, -1.0)
        return self._ones[shape]

    @property
    def parameters(self) -> list[torch.Tensor]:
        """Weights and biases, layer by layer: W0 (transposed, K x in x out), b0, W1 (K x out x in), b1, ..."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def _right(self, index: int) -> torch.Tensor:
        """Layer ``index``'s weights as the right operand of ``activations @ W.T``: (K, in, out)."""
        return self.weights[index] if index == 0 else self.weights[index].transpose(1, 2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, C) for ``x`` (B, in) shared by all models (evaluation on the test set).

        The first layer is one matrix product against every model's weights side by side, (B, in) @ (in, K*out),
        instead of K small ones.
        """
        k, n_in, n_out = self.weights[0].shape
        side_by_side = self.weights[0].permute(1, 0, 2).reshape(n_in, k * n_out)
        x = torch.addmm(self.biases[0].reshape(k * n_out), x, side_by_side).view(x.shape[0], k, n_out).transpose(0, 1)
        if len(self.weights) > 1:
            x = torch.relu(x)
        for index, bias in enumerate(self.biases[1:], start=1):
            x = torch.matmul(x, self._right(index)) + bias.unsqueeze(1)
            if index < len(self.weights) - 1:
                x = torch.relu(x)
        return x

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy per model and its gradients, for a batch ``x`` (K, B, in) with labels (K, B).

        Returns (per-model loss (K,), rows classified right (K, B)) and leaves the gradients in ``self.grads``. For a stack of
        Linear layers the backward pass is two batched matmuls and a mask a layer; written out, it runs about
        twice as fast as autograd's graph for these small models, where per-op overhead is most of the time. The
        tests check it against torch's own (autograd) training of the same models.
        """
        activations = [x]
        z = x
        for index, bias in enumerate(self.biases):
            z = torch.baddbmm(bias.unsqueeze(1), z, self._right(index))
            if index < len(self.weights) - 1:
                z = torch.relu(z)
                activations.append(z)
        log_probs, right = _log_softmax_classes(z, y)
        picked = log_probs.gather(2, y.unsqueeze(2))  # (K, B, 1)
        per_model = picked.mean(dim=(1, 2)).neg_()
        grad = log_probs.exp()  # d(mean CE)/d(logits) = (softmax - onehot) / B
        grad.scatter_add_(2, y.unsqueeze(2), self._minus_ones(picked.shape))
        grad.div_(y.shape[1])
        grads: list[torch.Tensor] = []
        for index in range(len(self.weights) - 1, -1, -1):
            a = activations[index]
            weight_grad = torch.bmm(a.transpose(1, 2), grad) if index == 0 else torch.bmm(grad.transpose(1, 2), a)
            grads = [weight_grad, grad.sum(dim=1), *grads]
            if index > 0:
                grad = torch.ops.aten.threshold_backward(torch.bmm(grad, self.weights[index]), a, 0.0)  # ReLU's
        self.grads = grads
        return per_model, right

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i``'s weights under the names its nn.Module uses (fc1/fc2 or fc)."""
        names = ["fc"] if len(self.weights) == 1 else [f"fc{j + 1}" for j in range(len(self.weights))]
        state = {}
        for index, (name, bias) in enumerate(zip(names, self.biases)):
            state[f"{name}.weight"] = self._right(index)[i].t().clone()
            state[f"{name}.bias"] = bias[i].detach().clone()
        return state


def _log_softmax_classes(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log_softmax over the class axis of (K, B, C) logits, as a (K, B, C) view, and which rows are classified right.

    Reducing over a 3-wide last axis runs a scalar loop per row; with the classes moved first the same kernels
    sweep long contiguous rows (10x faster here) and the values are bit-identical (same operations per element).
    A row counts as right when its label's logit is the largest; ``amax`` finds that 7x faster than ``argmax``
    here (an exact tie would count as right, where argmax picks the first class; float logits do not tie).
    """
    class_major = logits.permute(2, 0, 1).contiguous()  # (C, K, B)
    right = class_major.gather(0, labels.unsqueeze(0)).squeeze(0) >= class_major.amax(dim=0)
    return torch.log_softmax(class_major, dim=0).permute(1, 2, 0), right


class _Plateau:
    """torch's ReduceLROnPlateau (mode min, relative threshold 1e-4, no cooldown), for many models at once."""

    def __init__(self, lrs: list[float], factor: list[float], patience: list[int]) -> None:
        self.lrs, self.factor, self.patience = lrs, factor, patience
        self.best = [math.inf] * len(lrs)
        self.bad = [0] * len(lrs)

    def step(self, losses: list[float]) -> None:
        for i, loss in enumerate(losses):
            if loss < self.best[i] * (1 - 1e-4):
                self.best[i], self.bad[i] = loss, 0
            else:
                self.bad[i] += 1
            if self.bad[i] > self.patience[i]:
                new = max(self.lrs[i] * self.factor[i], 0.0)
                if self.lrs[i] - new > 1e-8:
                    self.lrs[i] = new
                self.bad[i] = 0


def _check_shared(configs: Sequence[TrainConfig]) -> None:
    if not configs:
        raise ValueError("train_batched needs at least one config")
    for name in SHARED_FIELDS:
        values = {getattr(c, name) for c in configs}
        if len(values) > 1:
            raise ValueError(f"configs trained together must share {name}, got {sorted(map(str, values))}")


def train_batched(
    configs: Sequence[TrainConfig],
    data: TrainData,
    on_epoch: Callable[[int], None] | None = None,
    models_out: list[BatchedModels] | None = None,
) -> list[History]:
    """Train every config at once; return one History per config, in order.

    A model whose loss becomes NaN or infinite keeps NaN metrics from that epoch on; the others are unaffected.
    """
    _check_shared(configs)
    first = configs[0]
    if first.model not in ("qwerty", "linear"):
        raise ValueError(f"batched training supports the models 'qwerty' and 'linear', got {first.model!r}")
    k = len(configs)
    n = data.x_train.shape[0]
    batches = math.ceil(n / first.batch_size)
    per_iteration = first.interval == "iteration"
    table = torch.from_numpy(lr_table(configs, batches))
    plateau_rows = [i for i, c in enumerate(configs) if c.schedule == "plateau"]
    plateau = _Plateau([configs[i].lr for i in plateau_rows], [configs[i].gamma for i in plateau_rows],
                       [configs[i].plateau_patience for i in plateau_rows])
    models = BatchedModels(configs, int(data.x_train[0].numel()), data.num_classes)
    if models_out is not None:
        models_out.append(models)
    parameters = models.parameters
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in parameters] if first.optimizer == "adam" else []
    generators = [torch.Generator().manual_seed(c.seed) for c in configs]
    histories = [History() for _ in configs]
    x_train = data.x_train.reshape(n, -1)
    x_test = data.x_test.reshape(data.x_test.shape[0], -1)
    copy_per_epoch = k * x_train.element_size() * x_train.nelement() <= _SMALL_DATA_BYTES
    adam_step = 0
    table32 = table.to(parameters[0].dtype)
    lr_shapes = [(k, *([1] * (p.dim() - 1))) for p in parameters]
    for epoch in range(first.epochs):
        if plateau_rows:  # the plateau LRs hold for the whole epoch: write them into the table's columns
            span = slice(epoch * batches, (epoch + 1) * batches) if per_iteration else slice(epoch, epoch + 1)
            values = torch.tensor(plateau.lrs, dtype=torch.float64).unsqueeze(1)
            table[plateau_rows, span] = values
            table32[plateau_rows, span] = values.to(table32.dtype)
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators])  # (K, n)
        if copy_per_epoch:
            x_epoch, y_epoch = _rows(x_train, orders), _rows(data.y_train, orders)
        loss_sum = torch.zeros(k, dtype=torch.float64)
        correct = torch.zeros(k, dtype=torch.int64)
        for batch in range(batches):
            start, stop = batch * first.batch_size, (batch + 1) * first.batch_size
            if copy_per_epoch:
                xb, yb = x_epoch[:, start:stop], y_epoch[:, start:stop]
            else:
                index = orders[:, start:stop]
                xb, yb = _rows(x_train, index), _rows(data.y_train, index)
            step = epoch * batches + batch if per_iteration else epoch
            per_model, right = models.forward_backward(xb, yb)
            if first.optimizer == "adam":
                adam_step += 1
                _adam_update(parameters, models.grads, state, table[:, step], adam_step)
            else:
                lrs32 = table32[:, step]
                views = [lrs32.view(shape) for shape in lr_shapes]
                torch._foreach_addcmul_(parameters, views, models.grads, value=-1)  # one call for every tensor
            loss_sum += per_model
            correct += right.sum(dim=1)
        lrs = table[:, (epoch + 1) * batches - 1 if per_iteration else epoch]
        test_logits = models(x_test)  # (K, n_test, C)
        labels = data.y_test.expand(k, -1)
        test_log_probs, test_right = _log_softmax_classes(test_logits, labels)
        test_losses = -test_log_probs.gather(2, labels.unsqueeze(2)).squeeze(2).mean(dim=1)
        test_correct = test_right.sum(dim=1)
        n_test = data.y_test.shape[0]
        columns = zip(loss_sum.tolist(), correct.tolist(), test_losses.tolist(), test_correct.tolist(), lrs.tolist())
        for history, (train_loss, right, test_loss, test_right, lr) in zip(histories, columns):
            history.epochs.append(
                EpochRecord(epoch + 1, train_loss / batches, right / n, test_loss, test_right / n_test, lr)
            )
        if plateau_rows:
            plateau.step([float(test_losses[i]) for i in plateau_rows])
        if on_epoch is not None:
            on_epoch(epoch + 1)
    per_step = table if per_iteration else table.repeat_interleave(batches, dim=1)
    for history, row in zip(histories, per_step.tolist()):
        history.iteration_lrs = row  # the LR each model used at each iteration
    return histories


def _adam_update(parameters: list[torch.Tensor], grads: list[torch.Tensor],
                 state: list[tuple[torch.Tensor, torch.Tensor]], lrs: torch.Tensor, step: int) -> None:
    """Adam with one learning rate per model (torch's optimizers take one per parameter group, not per row)."""
    beta1, beta2 = _ADAM_BETAS
    correction1 = 1 - beta1**step
    correction2_sqrt = math.sqrt(1 - beta2**step)
    for p, grad, (exp_avg, exp_avg_sq) in zip(parameters, grads, state):
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = (lrs / correction1).to(p.dtype).reshape(-1, *([1] * (p.dim() - 1)))
        denom = (exp_avg_sq.sqrt() / correction2_sqrt).add_(_ADAM_EPS)
        p.sub_(step_size * exp_avg / denom)


def configs_with(base: TrainConfig, **grid: Sequence[Any]) -> list[TrainConfig]:
    """Every combination of the given settings applied to ``base`` (e.g. step_size=[...], gamma=[...])."""
    combos: list[dict[str, Any]] = [{}]
    for name, values in grid.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return [dataclasses.replace(base, **c) for c in combos]
