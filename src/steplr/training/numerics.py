"""The batched engines' arithmetic: K models of one :class:`~steplr.training.models.StackSpec` stacked along a
leading axis, their loss and gradients written out, per-model SGD (momentum, Nesterov, weight decay) and
Adam/AdamW, and torch's plateau rule for K models.

Each piece is checked one step at a time against its torch reference (autograd, ``torch.optim.SGD``,
``torch.optim.Adam``, ``torch.optim.lr_scheduler.ReduceLROnPlateau``) in ``tests/training/test_numerics.py``.
Nothing here knows about configs, schedules or data sets: the run plan (:mod:`steplr.training.plan`) supplies all
of that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from steplr.errors import SteplrValueError
from steplr.training.models import stack_spec

__all__ = [
    "StackedModels",
    "sgd_step",
    "SGD",
    "Adam",
    "Plateau",
    "metrics",
    "ADAM_BETAS",
    "ADAM_EPS",
    "PLATEAU_THRESHOLD",
    "PLATEAU_EPS",
]

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults; the sequential trainer passes them too
PLATEAU_THRESHOLD, PLATEAU_EPS = 1e-4, 1e-8  # ReduceLROnPlateau's defaults (mode "min", relative threshold)


class StackedModels:
    """K models of one stack spec as stacked weights: layer l holds W (K, out, in) and b (K, out).

    Activations are kept features by examples, (K, features, batch), so every layer is ``W @ a + b`` with the
    small weight matrix on the left: for tiny layers the batched matmuls run faster in that orientation than as
    ``a @ W.T`` (benchmarks/RESULTS.md), the class axis of the logits is not the innermost one (reductions over it
    vectorise along the batch), and the weights need no transposing.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        spec = stack_spec(models[0]) if models else None
        if spec is None or any(stack_spec(model) != spec for model in models):
            names = sorted({type(model).__name__ for model in models})
            raise SteplrValueError(f"batched training needs models of one declared stack spec, got {names}")
        self.names = spec.layers
        layers = [[getattr(model, name) for model in models] for name in self.names]
        self.weights = [torch.stack([layer.weight.detach() for layer in stack]) for stack in layers]
        self.biases = [torch.stack([layer.bias.detach() for layer in stack]) for stack in layers]
        self._minus_ones: dict[torch.Size, torch.Tensor] = {}

    @property
    def parameters(self) -> list[torch.Tensor]:
        """Weights and biases, layer by layer: W0 (K x out x in), b0 (K x out), W1, b1, ..."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, C, N) for ``x`` (N, in) shared by all models (evaluation).

        The first layer is one matrix product of every model's weights stacked, (K*out, in) @ (in, N), instead
        of K small ones.
        """
        k, n_out, n_in = self.weights[0].shape
        a = torch.addmm(self.biases[0].reshape(k * n_out, 1), self.weights[0].reshape(k * n_out, n_in), x.t())
        a = a.view(k, n_out, x.shape[0])
        for index in range(1, len(self.weights)):
            a = torch.baddbmm(self.biases[index].unsqueeze(2), self.weights[index], a.relu_())
        return a

    def forward_backward(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Mean cross-entropy per model, which rows each model classifies right, and the gradients.

        ``x`` is a batch (K, in, B) with labels ``y`` (K, B). Returns the losses (K,), a mask (K, B) and the
        gradient of each model's loss with respect to :attr:`parameters`, in their order. For a stack of Linear
        layers the backward pass is two batched matmuls and a mask a layer; written out, it runs about twice as fast
        as autograd's graph for small models, where per-op overhead is most of the time.
        """
        a = x  # any strides with one unit stride: the matmuls read row- and column-major operands alike
        activations = [a]
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            a = torch.baddbmm(bias.unsqueeze(2), weight, a)
            if index < last:
                activations.append(a.relu_())
        labels = y.unsqueeze(1)  # (K, 1, B)
        # A row counts as right when its label's logit is the largest; amax finds that faster than argmax (an exact
        # tie would count as right, where argmax picks the first class; float logits do not tie).
        right = (a.gather(1, labels) >= a.amax(dim=1, keepdim=True)).squeeze(1)
        log_probs = torch.log_softmax(a, dim=1)  # (K, C, B)
        batch = y.shape[1]
        losses = log_probs.gather(1, labels).sum(dim=(1, 2)).div_(-batch)
        grad = log_probs.exp_()  # d(mean CE)/d(logits) = (softmax - onehot) / B
        grad.scatter_add_(1, labels, self._minus_ones_like(labels)).div_(batch)
        grads: list[torch.Tensor] = []
        for index in range(last, -1, -1):
            a = activations[index]
            grads = [torch.bmm(grad, a.transpose(1, 2)), grad.sum(dim=2), *grads]
            if index > 0:  # through the weights, then ReLU's mask
                grad = torch.ops.aten.threshold_backward(torch.bmm(self.weights[index].transpose(1, 2), grad), a, 0.0)
        return losses, right, grads

    def _minus_ones_like(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.shape not in self._minus_ones:
            self._minus_ones[labels.shape] = torch.full(labels.shape, -1.0)
        return self._minus_ones[labels.shape]

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i``'s weights under the names its ``nn.Module`` uses (those of its stack spec)."""
        state = {}
        for name, weight, bias in zip(self.names, self.weights, self.biases):
            state[f"{name}.weight"] = weight[i].clone()
            state[f"{name}.bias"] = bias[i].clone()
        return state


def _per_model(lrs: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """One LR per model (K,), shaped to broadcast over a stacked parameter (K, ...)."""
    return lrs.view(-1, *([1] * (parameter.dim() - 1)))


def sgd_step(parameters: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lrs: torch.Tensor) -> None:
    """Plain SGD (torch.optim.SGD without momentum), model ``i`` at rate ``lrs[i]``: ``p -= lr * grad``.

    ``lrs`` must already be of the parameters' dtype (rounded as torch rounds a Python float LR for them).
    """
    views = [_per_model(lrs, p) for p in parameters]
    torch._foreach_addcmul_(list(parameters), views, list(grads), value=-1)  # one call for every tensor


class SGD:
    """torch.optim.SGD (dampening 0) on stacked parameters (K, ...) with one learning rate per model.

    With ``g`` the gradient, ``wd`` the weight decay, ``mu`` the momentum and ``b`` its buffer (``b = g`` at the
    first step, as torch starts it): ``g += wd * p``; ``b = mu * b + g``; ``p -= lr * (g + mu * b)`` with Nesterov,
    else ``p -= lr * b``. A gradient given as None leaves its parameter (and its buffer) as it is, as torch skips a
    parameter without ``.grad``.
    """

    def __init__(
        self,
        parameters: Sequence[torch.Tensor],
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.parameters = list(parameters)
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(self.parameters)

    def step(self, grads: Sequence[torch.Tensor | None], lrs: torch.Tensor) -> None:
        """One update, model ``i`` at rate ``lrs[i]`` (already of the parameters' dtype: torch rounds a Python float
        LR to it)."""
        params, updates = [], []
        for index, (p, grad) in enumerate(zip(self.parameters, grads)):
            if grad is None:
                continue
            if self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            if self.momentum:
                buf = self.buffers[index]
                if buf is None:
                    buf = self.buffers[index] = grad.clone()
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = grad.add(buf, alpha=self.momentum) if self.nesterov else buf
            params.append(p)
            updates.append(grad)
        if params:
            sgd_step(params, updates, lrs)


class Adam:
    """torch.optim.Adam, or AdamW with ``decoupled=True`` (no amsgrad, :data:`ADAM_BETAS`, :data:`ADAM_EPS`), with
    one learning rate per model; torch's optimizers take one per parameter group, not per row of a tensor.

    With ``m``, ``v`` the moments and ``t`` the parameter's 1-based step count:
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``. Weight decay ``wd`` is an L2 term
    ``g += wd * p`` for Adam, and a decay ``p *= 1 - lr * wd`` before the update for AdamW. A gradient given as
    None leaves its parameter, moments and step count as they are.
    """

    def __init__(self, parameters: Sequence[torch.Tensor], weight_decay: float = 0.0, decoupled: bool = False) -> None:
        self.parameters = list(parameters)
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.parameters]
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.steps = 0  # calls of step()
        self.counts = [0] * len(self.parameters)  # updates of each parameter

    def step(self, grads: Sequence[torch.Tensor | None], lrs: torch.Tensor) -> None:
        """One update of every parameter, model ``i`` at rate ``lrs[i]`` (float64: divided before rounding)."""
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        for index, (p, grad, (exp_avg, exp_avg_sq)) in enumerate(zip(self.parameters, grads, self.moments)):
            if grad is None:
                continue
            self.counts[index] += 1
            count = self.counts[index]
            if self.weight_decay and self.decoupled:
                p.mul_(_per_model((1 - lrs * self.weight_decay).to(p.dtype), p))
            elif self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            correction1 = 1 - beta1**count
            correction2_sqrt = math.sqrt(1 - beta2**count)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = _per_model((lrs / correction1).to(p.dtype), p)
            denom = (exp_avg_sq.sqrt() / correction2_sqrt).add_(ADAM_EPS)
            p.sub_(step_size * exp_avg / denom)


class Plateau:
    """torch's ReduceLROnPlateau (mode "min", relative threshold, no cooldown, min_lr 0) for K models at once.

    After an epoch whose loss is not below ``best * (1 - threshold)`` for more than ``patience`` epochs in a row,
    the LR becomes ``lr * factor`` (kept as is when that changes it by ``eps`` or less) and the count restarts.
    """

    def __init__(self, lrs: Sequence[float], factors: Sequence[float], patiences: Sequence[int]) -> None:
        self.lrs: NDArray[np.float64] = np.array(lrs, dtype=np.float64)
        self.factors = np.array(factors, dtype=np.float64)
        self.patiences = np.array(patiences, dtype=np.int64)
        self.best = np.full(self.lrs.shape, math.inf)
        self.bad = np.zeros(self.lrs.shape, dtype=np.int64)

    def step(self, losses: Sequence[float]) -> None:
        """Take one epoch's losses (one per model; NaN counts as no improvement)."""
        loss = np.array(losses, dtype=np.float64)
        better = loss < self.best * (1 - PLATEAU_THRESHOLD)
        self.best = np.where(better, loss, self.best)
        self.bad = np.where(better, 0, self.bad + 1)
        cut = self.bad > self.patiences
        new = np.maximum(self.lrs * self.factors, 0.0)
        self.lrs = np.where(cut & (self.lrs - new > PLATEAU_EPS), new, self.lrs)
        self.bad[cut] = 0


def metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy (K,) and accuracy (K,, float64) of logits (K, C, N) against labels (N,) shared by all."""
    index = labels.expand(logits.shape[0], 1, -1)
    right = (logits.gather(1, index) >= logits.amax(dim=1, keepdim=True)).sum(dim=(1, 2))
    losses = torch.log_softmax(logits, dim=1).gather(1, index).mean(dim=(1, 2)).neg_()
    return losses, right.to(torch.float64) / labels.shape[0]  # exact fractions, as the sequential int / int
