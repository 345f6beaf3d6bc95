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

from steplr.training.models import build_model
from steplr.schedules.kinds import StepDecay
from steplr.training.data import split_validation
from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.train import TrainData, _rows, plateau_signal
from steplr.schedules.durations import resolve_duration

__all__ = ["train_batched", "lr_table", "configs_with", "BatchedModels", "SHARED_FIELDS"]

# Settings that fix the shape of the computation: they must agree across a batch.
SHARED_FIELDS = ("dataset", "model", "optimizer", "batch_size", "epochs", "interval", "validation")
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
    """K copies of a Linear/ReLU stack as stacked weights: layer l holds W (K, out, in) and b (K, out).

    Activations are kept features by examples, (K, features, batch), so every layer is ``W @ a + b`` with the
    small weight matrix on the left. For Qwerty's tiny layers the batched matmuls run about 1.5x faster in that
    orientation than as ``a @ W.T`` (the five of a step: 0.27 -> 0.17 ms at K=256), the class axis of the logits
    is no longer the innermost one (reductions over it vectorise along the batch), and the weights need no
    transposing.
    """

    def __init__(self, configs: Sequence[TrainConfig], in_features: int, num_classes: int) -> None:
        models = []
        for config in configs:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(config.seed)  # the same initial weights as train() draws
                models.append(build_model(config.model, in_features, num_classes))
        # Both of steplr's models are Linear layers with ReLU between them (QwertyNet: fc1, relu, fc2; SimpleNet: fc).
        linears = [[m for m in model.modules() if isinstance(m, nn.Linear)] for model in models]
        layers = range(len(linears[0]))
        self.weights = [torch.stack([ls[j].weight.detach() for ls in linears]) for j in layers]
        self.biases = [torch.stack([ls[j].bias.detach() for ls in linears]) for j in layers]
        self.grads: list[torch.Tensor] = []  # filled by forward_backward, in the order of ``parameters``
        self._ones: dict[torch.Size, torch.Tensor] = {}

    def _minus_ones(self, shape: torch.Size) -> torch.Tensor:
        if shape not in self._ones:
            self._ones[shape] = torch.full(shape, -1.0)
        return self._ones[shape]

    @property
    def parameters(self) -> list[torch.Tensor]:
        """Weights and biases, layer by layer: W0 (K x out x in), b0 (K x out), W1, b1, ..."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, C, N) for ``x`` (N, in) shared by all models (evaluation on the test set).

        The first layer is one matrix product of every model's weights stacked, (K*out, in) @ (in, N), instead
        of K small ones.
        """
        k, n_out, n_in = self.weights[0].shape
        a = torch.addmm(self.biases[0].reshape(k * n_out, 1), self.weights[0].reshape(k * n_out, n_in), x.t())
        a = a.view(k, n_out, x.shape[0])
        for index in range(1, len(self.weights)):
            a = torch.baddbmm(self.biases[index].unsqueeze(2), self.weights[index], a.relu_())
        return a

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy per model and its gradients, for a batch ``x`` (K, in, B) with labels (K, B).

        Returns (per-model loss (K,), rows classified right (K, B)) and leaves the gradients in ``self.grads``.
        For a stack of Linear layers the backward pass is two batched matmuls and a mask a layer; written out, it
        runs about twice as fast as autograd's graph for these small models, where per-op overhead is most of the
        time. The tests check it against torch's own (autograd) training of the same models.
        """
        a = x  # any strides with one unit stride: the matmuls read row- and column-major operands alike
        activations = [a]
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            a = torch.baddbmm(bias.unsqueeze(2), weight, a)
            if index < last:
                activations.append(a.relu_())
        labels = y.unsqueeze(1)  # (K, 1, B)
        # A row counts as right when its label's logit is the largest; amax finds that ~7x faster than argmax
        # (an exact tie would count as right, where argmax picks the first class; float logits do not tie).
        right = (a.gather(1, labels) >= a.amax(dim=1, keepdim=True)).squeeze(1)
        log_probs = torch.log_softmax(a, dim=1)  # (K, C, B)
        batch = y.shape[1]
        per_model = log_probs.gather(1, labels).sum(dim=(1, 2)).div_(-batch)
        grad = log_probs.exp_()  # d(mean CE)/d(logits) = (softmax - onehot) / B
        grad.scatter_add_(1, labels, self._minus_ones(labels.shape)).div_(batch)
        grads: list[torch.Tensor] = []
        for index in range(last, -1, -1):
            a = activations[index]
            grads = [torch.bmm(grad, a.transpose(1, 2)), grad.sum(dim=2), *grads]
            if index > 0:  # through the weights, then ReLU's mask
                grad = torch.ops.aten.threshold_backward(torch.bmm(self.weights[index].transpose(1, 2), grad), a, 0.0)
        self.grads = grads
        return per_model, right

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i``'s weights under the names its nn.Module uses (fc1/fc2 or fc)."""
        names = ["fc"] if len(self.weights) == 1 else [f"fc{j + 1}" for j in range(len(self.weights))]
        state = {}
        for name, weight, bias in zip(names, self.weights, self.biases):
            state[f"{name}.weight"] = weight[i].clone()
            state[f"{name}.bias"] = bias[i].clone()
        return state


def _test_metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy (K,) and accuracy (K,) of logits (K, C, N) against labels (N,) shared by all."""
    index = labels.expand(logits.shape[0], 1, -1)
    right = (logits.gather(1, index) >= logits.amax(dim=1, keepdim=True)).sum(dim=(1, 2))
    losses = torch.log_softmax(logits, dim=1).gather(1, index).mean(dim=(1, 2)).neg_()
    return losses, right.to(torch.float64) / labels.shape[0]  # exact fractions, as train()'s int / int


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
    data = split_validation(data, first.validation)
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
    x_val, n_val = data.x_val.reshape(data.x_val.shape[0], x_train.shape[1]), data.y_val.shape[0]
    nan_column = torch.full((k,), math.nan, dtype=torch.float64)
    copy_per_epoch = k * x_train.element_size() * x_train.nelement() <= _SMALL_DATA_BYTES
    # Small sets are shuffled once an epoch, features first: one gather along the rows of (in, n) fills every
    # model's copy (2.4x faster than gathering Qwerty's 8-byte examples), and a batch is a view (K, in, B).
    features_first = x_train.t().contiguous() if copy_per_epoch else x_train.t()  # (in, n)
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
            x_epoch = torch.index_select(features_first, 1, orders.reshape(-1)).view(-1, k, n)  # (in, K, n)
            y_epoch = _rows(data.y_train, orders)
        loss_sum = torch.zeros(k, dtype=torch.float64)
        correct = torch.zeros(k, dtype=torch.int64)
        for batch in range(batches):
            start, stop = batch * first.batch_size, (batch + 1) * first.batch_size
            if copy_per_epoch:
                xb, yb = x_epoch[:, :, start:stop].transpose(0, 1), y_epoch[:, start:stop]
            else:
                index = orders[:, start:stop]
                xb, yb = _rows(x_train, index).transpose(1, 2), _rows(data.y_train, index)
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
        test_losses, test_accs = _test_metrics(models(x_test), data.y_test)
        val_losses, val_accs = _test_metrics(models(x_val), data.y_val) if n_val else (nan_column, nan_column)
        columns = zip(loss_sum.tolist(), correct.tolist(), test_losses.tolist(), test_accs.tolist(), lrs.tolist(),
                      val_losses.tolist(), val_accs.tolist())
        for history, (train_loss, right, test_loss, test_acc, lr, val_loss, val_acc) in zip(histories, columns):
            history.epochs.append(
                EpochRecord(epoch + 1, train_loss / batches, right / n, test_loss, test_acc, lr, val_loss, val_acc)
            )
        if plateau_rows:
            plateau.step([plateau_signal(histories[i].epochs[-1]) for i in plateau_rows])
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
