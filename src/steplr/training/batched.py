"""Many schedules trained at once: K models of one run plan stacked along a leading axis.

Every model has its own schedule (type and parameters), base LR, seed (so its own initial weights) and batch
order; they share what :data:`~steplr.training.plan.SHARED_FIELDS` names. Everything the sequential trainer also
decides (split, batches, step indices, LR table or plateau rule, orders, initial weights, gather strategy) comes
from the same :class:`~steplr.training.plan.RunPlan`; the arithmetic is :mod:`steplr.training.numerics`. Each
step runs one batched forward/backward for all K models and one vectorised optimizer update with per-model
learning rates. Model ``i`` reproduces ``train(configs[i], data)``: the same LR at every iteration (exactly) and the
same metrics and weights up to float32 rounding (batched matmuls and the written-out backward pass round in another
order than autograd does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.data import TrainData
from steplr.training.numerics import Adam, StackedModels, metrics, sgd_step
from steplr.training.plan import LearningRates, RunPlan, rows

__all__ = ["train_batched"]


def train_batched(
    configs: Sequence[TrainConfig],
    data: TrainData,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
    models_out: list[StackedModels] | None = None,
) -> list[History]:
    """Train every config at once; return one History per config, in order. ``on_epoch``: called after every
    epoch with each model's record of it, in the order of ``configs`` (an exception it raises stops the training).
    ``models_out``: the trained models are appended to it.

    A model whose loss becomes NaN or infinite keeps NaN metrics from that epoch on; the others are unaffected.

    Raises:
        SteplrValueError: for no configs, configs that differ in a shared field, or a model without a declared
            :class:`~steplr.training.models.StackSpec`.
    """
    plan = RunPlan(configs, data)
    models = StackedModels([plan.initial_model(i) for i in range(len(configs))])
    if models_out is not None:
        models_out.append(models)
    lrs = plan.learning_rates(models.parameters[0].dtype)
    adam = Adam(models.parameters) if configs[0].optimizer == "adam" else None
    generators = [plan.generator(i) for i in range(len(configs))]
    histories = [History() for _ in configs]
    gather = _Gather(plan)
    for epoch in range(plan.epochs):
        lrs.start_epoch(epoch)
        loss_sum = torch.zeros(len(configs), dtype=torch.float64)
        correct = torch.zeros(len(configs), dtype=torch.int64)
        for batch, (xb, yb) in enumerate(gather.batches(torch.stack([plan.order(g) for g in generators]))):
            losses, right, grads = models.forward_backward(xb, yb)
            step = plan.step(epoch, batch)
            if adam is not None:
                adam.step(grads, lrs.table[:, step])
            else:
                sgd_step(models.parameters, grads, lrs.rounded[:, step])
            loss_sum += losses
            correct += right.sum(dim=1)
        records = _records(plan, models, lrs, epoch, loss_sum, correct)
        for history, record in zip(histories, records):
            history.epochs.append(record)
        lrs.end_epoch(records)
        if on_epoch is not None:
            on_epoch(records)
    for history, row in zip(histories, lrs.per_iteration()):
        history.iteration_lrs = row  # the LR each model used at each iteration
    return histories


class _Gather:
    """Every model's batches of an epoch, (K, in, B) inputs and (K, B) labels, in the plan's gather strategy.

    With one copy per epoch the set is shuffled features first: one gather along the rows of (in, n) fills every
    model's copy (faster than gathering tiny examples row by row), and a batch is a view.
    """

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        x = plan.split.x_train
        self.x = x.reshape(x.shape[0], -1)
        self.features_first = self.x.t().contiguous() if plan.copy_per_epoch else self.x.t()  # (in, n)

    def batches(self, orders: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of the epoch whose orders (K, n) are given."""
        plan, y = self.plan, self.plan.split.y_train
        if plan.copy_per_epoch:
            k, n = orders.shape
            x_epoch = torch.index_select(self.features_first, 1, orders.reshape(-1)).view(-1, k, n)  # (in, K, n)
            y_epoch = rows(y, orders)
        for batch in range(plan.batches):
            span = plan.batch_rows(batch)
            if plan.copy_per_epoch:
                yield x_epoch[:, :, span].transpose(0, 1), y_epoch[:, span]
            else:
                index = orders[:, span]
                yield rows(self.x, index).transpose(1, 2), rows(y, index)


def _records(
    plan: RunPlan, models: StackedModels, lrs: LearningRates, epoch: int, loss_sum: torch.Tensor, correct: torch.Tensor
) -> list[EpochRecord]:
    """Each model's record of the epoch: the sums over its batches, then loss and accuracy on the validation split
    and the test set."""
    split = plan.split
    test_losses, test_accs = metrics(models(split.x_test.reshape(-1, plan.in_features)), split.y_test)
    if split.y_val.shape[0]:
        val_losses, val_accs = metrics(models(split.x_val.reshape(-1, plan.in_features)), split.y_val)
    else:
        val_losses = val_accs = torch.full((len(plan.configs),), float("nan"), dtype=torch.float64)
    last = lrs.table[:, plan.step(epoch, plan.batches - 1)]
    columns = zip(
        loss_sum.tolist(),
        correct.tolist(),
        last.tolist(),
        test_losses.tolist(),
        test_accs.tolist(),
        val_losses.tolist(),
        val_accs.tolist(),
    )
    return [
        plan.record(epoch, loss, right, lr, (test_loss, test_acc), (val_loss, val_acc))
        for loss, right, lr, test_loss, test_acc, val_loss, val_acc in columns
    ]
