"""The run plan: what the sequential trainer and the batched engine derive from configs and data, derived once.

A :class:`RunPlan` is made for K configs that share the shape of the computation (:data:`SHARED_FIELDS`) and
holds everything both engines must agree on: the split of the data, batches and scheduler steps per epoch, the
step index of every batch, the LR table (or the plateau controller), each model's initial weights and per-epoch
batch order from its seed, and how batches are gathered. :func:`steplr.training.train.train` runs a plan of one
config; :func:`steplr.training.batched.train_batched` runs a plan of K. Their agreement follows from reading the
same plan, and ``tests/training/test_sweep.py`` checks it end to end.

The first block below is the only code in the training layer that reads a config's schedule settings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from steplr.errors import SteplrValueError
from steplr.lr_scheduler import ScheduleLR
from steplr.schedules.table import lr_table as schedule_table
from steplr.training.budget import SMALL_DATA_BYTES
from steplr.training.config import EpochRecord, TrainConfig
from steplr.training.data import Split, TrainData, split_validation
from steplr.training.models import build_model
from steplr.training.numerics import ADAM_BETAS, ADAM_EPS, Plateau
from steplr.training.task import LossFunction, Task, check_model, loss_function

__all__ = [
    "RunPlan",
    "LearningRates",
    "SHARED_FIELDS",
    "lr_table",
    "is_reactive",
    "schedule_name",
    "scheduler_steps",
    "torch_scheduler",
    "plateau_signal",
    "rows",
]

# Settings that fix the shape of the computation: configs trained together must agree on them.
SHARED_FIELDS = (
    "dataset",
    "model",
    "optimizer",
    "batch_size",
    "epochs",
    "interval",
    "validation",
    "momentum",
    "nesterov",
    "weight_decay",
    "loss",
)


# ------------------------------------------------------------------- reads of a config's schedule settings


def is_reactive(config: TrainConfig) -> bool:
    """Whether the config's LR reacts to the loss (``plateau``, stepped once an epoch) rather than following a
    closed form of the step count."""
    return config.schedule.reactive


def schedule_name(config: TrainConfig) -> str:
    """The config's schedule kind, as messages name it."""
    return config.schedule.kind


def _plateau(configs: Sequence[TrainConfig]) -> Plateau:
    """One controller for the reactive configs, in their order."""
    settings = [c.plateau() for c in configs]
    return Plateau([c.lr for c in configs], [factor for factor, _ in settings], [patience for _, patience in settings])


def torch_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, batches: int
) -> ScheduleLR | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The sequential trainer's scheduler: torch's ReduceLROnPlateau for a reactive config, else a ScheduleLR of
    the config's closed form."""
    if is_reactive(config):
        factor, patience = config.plateau()
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=patience)
    return ScheduleLR(optimizer, config.build_schedule(batches), steps_per_epoch=config.steps_per_epoch(batches))


def lr_table(configs: Sequence[TrainConfig], batches: int) -> NDArray[np.float64]:
    """Learning rates, shape (K, scheduler steps), from the closed forms; NaN rows for reactive configs
    (:func:`steplr.schedules.table.lr_table`: one broadcast call per group of configs of one kind)."""
    first = configs[0]
    return schedule_table(
        [c.schedule for c in configs], [c.lr for c in configs], first.epochs, first.steps_per_epoch(batches)
    )


# ------------------------------------------------------------------------------------------------------------


def scheduler_steps(config: TrainConfig, epochs: int, batches: int) -> int:
    """Scheduler steps taken after ``epochs`` whole epochs (a reactive scheduler steps once an epoch)."""
    return epochs if is_reactive(config) else epochs * config.steps_per_epoch(batches)


def plateau_signal(record: EpochRecord) -> float:
    """The loss ``plateau`` reacts to: validation when the run holds out a split, else training (never test)."""
    return record.train_loss if math.isnan(record.val_loss) else record.val_loss


class RunPlan:
    """What K configs of one shape train on, and how, as both engines read it.

    Args:
        configs: at least one config; they must agree on :data:`SHARED_FIELDS`.
        data: the data set; a validation split is held out as the configs say.
        task: a user's model (and loss); None: the model the configs name (:func:`build_model`).
        device: where the models and the data live (None: where the data is).

    Raises:
        SteplrValueError: for no configs, or configs that differ in a shared field.
    """

    def __init__(
        self,
        configs: Sequence[TrainConfig],
        data: TrainData,
        task: Task | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not configs:
            raise SteplrValueError("a run plan needs at least one config, got none")
        for name in SHARED_FIELDS:
            values = {getattr(c, name) for c in configs}
            if len(values) > 1:
                raise SteplrValueError(f"configs trained together must share {name}, got {sorted(map(str, values))}")
        first = configs[0]
        self.configs = tuple(configs)
        self.task = task
        split = split_validation(data, first.validation)
        self.device = torch.device(device) if device is not None else split.x_train.device
        if split.x_train.device != self.device:
            x_train, y_train, x_val, y_val, x_test, y_test = (t.to(self.device) for t in _tensors(split))
            split = Split(x_train, y_train, x_val, y_val, x_test, y_test, split.num_classes)
        self.split: Split = split
        self.loss: LossFunction = loss_function(first.loss, task)
        # Accuracy is counted for integer class labels; a regression's targets are floats (accuracy NaN).
        self.classify = not split.y_train.is_floating_point()
        x = self.split.x_train
        self.examples = int(x.shape[0])
        self.batch_size, self.epochs = first.batch_size, first.epochs
        self.batches = math.ceil(self.examples / self.batch_size)
        self.steps_per_epoch = first.steps_per_epoch(self.batches)
        self.per_iteration = first.interval == "iteration"  # scheduler steps (table columns) per batch, else per epoch
        self.in_features = int(x[0].numel())
        self.reactive = tuple(is_reactive(c) for c in configs)  # stepped once an epoch on a loss
        # The gather strategy: small training sets are shuffled with one gather per epoch (every model's copy
        # together) and sliced into views; for large ones a gather per batch is faster, as it does not stream the
        # whole set through memory again (benchmarks/RESULTS.md).
        self.copy_per_epoch = len(configs) * x.element_size() * x.nelement() <= SMALL_DATA_BYTES

    def step(self, epoch: int, batch: int) -> int:
        """The scheduler step (LR table column) batch ``batch`` of epoch ``epoch`` trains at (both 0-based)."""
        return epoch * self.batches + batch if self.per_iteration else epoch

    def batch_rows(self, batch: int) -> slice:
        """Positions of batch ``batch`` in an epoch's order (the last batch may be short)."""
        return slice(batch * self.batch_size, min((batch + 1) * self.batch_size, self.examples))

    def steps_after_each_batch(self, i: int) -> bool:
        """Whether config ``i``'s scheduler steps after every batch (a closed form stepped per iteration)."""
        return self.per_iteration and not self.reactive[i]

    def generator(self, i: int) -> torch.Generator:
        """Config ``i``'s generator of batch orders, seeded from its seed."""
        return torch.Generator().manual_seed(self.configs[i].seed)

    def order(self, generator: torch.Generator) -> torch.Tensor:
        """The next epoch's order of the training examples (a permutation drawn from ``generator``, on the CPU
        whatever the device, so every device trains on the same orders)."""
        order = torch.randperm(self.examples, generator=generator)
        return order if self.device.type == "cpu" else order.to(self.device)

    def initial_model(self, i: int) -> nn.Module:
        """Config ``i``'s model with its initial weights, drawn from its seed (torch's global RNG left as it was)."""
        config = self.configs[i]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(config.seed)  # the CPU generator only: no device seeding to pay for
            if self.task is not None:
                model = check_model(self.task.build(), self.task.name)
            else:
                model = build_model(config.model, self.in_features, self.split.num_classes)
        return model.to(self.device)

    def optimizer(self, model: nn.Module, i: int = 0) -> torch.optim.Optimizer:
        """The sequential trainer's optimizer for config ``i`` (Adam with the constants the batched engine uses)."""
        config = self.configs[i]
        fused = self.device.type == "cpu" or self.device.type == "cuda"
        if config.optimizer in ("adam", "adamw"):
            # fused: one kernel for the whole update instead of a Python loop over tensors (benchmarks/RESULTS.md)
            adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
            return adam(
                model.parameters(),
                lr=config.lr,
                betas=ADAM_BETAS,
                eps=ADAM_EPS,
                weight_decay=config.weight_decay,
                fused=fused,
            )
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )

    def scheduler(self, optimizer: torch.optim.Optimizer, i: int = 0) -> Any:
        """The sequential trainer's scheduler for config ``i`` (:func:`torch_scheduler`; typed Any as the two kinds'
        ``step`` differ: ReduceLROnPlateau steps on a loss)."""
        return torch_scheduler(self.configs[i], optimizer, self.batches)

    def accuracy_count(self, outputs: torch.Tensor, targets: torch.Tensor) -> int:
        """How many rows of a batch the outputs classify right (0 for a regression: :attr:`classify` is False)."""
        if not self.classify:
            return 0
        return int((outputs.argmax(dim=1) == targets).sum())

    def batches_of(self, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches (inputs, targets) of an epoch in ``order``, gathered as :attr:`copy_per_epoch` says: one
        model's for an order (n,), (B, ...) each; K models' for orders (K, n), (K, B, ...) each."""
        x, y = self.split.x_train, self.split.y_train
        axis = order.dim() - 1  # where a batch's examples are, once gathered
        if self.copy_per_epoch:
            x, y = rows(x, order), rows(y, order)
        for batch in range(self.batches):
            span = self.batch_rows(batch)
            if self.copy_per_epoch:
                size = span.stop - span.start
                yield x.narrow(axis, span.start, size), y.narrow(axis, span.start, size)
            else:
                yield rows(x, order[..., span]), rows(y, order[..., span])

    def record(
        self, epoch: int, loss_sum: float, correct: int, lr: float, test: tuple[float, float], val: tuple[float, float]
    ) -> EpochRecord:
        """Epoch ``epoch``'s (0-based) record from the sums over its batches and the evaluated (loss, accuracy)."""
        accuracy = correct / self.examples if self.classify else math.nan
        return EpochRecord(epoch + 1, loss_sum / self.batches, accuracy, test[0], test[1], lr, *val)

    def learning_rates(self, dtype: torch.dtype) -> LearningRates:
        """The LR table of every config, with a controller for the reactive ones (the batched engine's LRs)."""
        return LearningRates(self, dtype)


def _tensors(split: Split) -> tuple[torch.Tensor, ...]:
    return split.x_train, split.y_train, split.x_val, split.y_val, split.x_test, split.y_test


def rows(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[index]`` for an integer index of any shape; index_select is faster than advanced indexing."""
    picked = torch.index_select(tensor, 0, index.reshape(-1))
    return picked.view(*index.shape, *tensor.shape[1:])


class LearningRates:
    """Every config's LR at every scheduler step: closed forms from :func:`lr_table`, reactive rows filled in one
    epoch at a time from a :class:`~steplr.training.numerics.Plateau` controller."""

    def __init__(self, plan: RunPlan, dtype: torch.dtype) -> None:
        self.plan = plan
        self.table = torch.from_numpy(lr_table(plan.configs, plan.batches))
        self.rounded = self.table.to(dtype)  # the LRs as the parameters' dtype holds them (SGD's update)
        self.reactive = [i for i, reactive in enumerate(plan.reactive) if reactive]
        self.controller = _plateau([plan.configs[i] for i in self.reactive])

    def start_epoch(self, epoch: int) -> None:
        """Write the reactive configs' LRs, which hold for the whole epoch, into its columns."""
        if self.reactive:
            span = slice(epoch * self.plan.steps_per_epoch, (epoch + 1) * self.plan.steps_per_epoch)
            values = torch.from_numpy(self.controller.lrs).unsqueeze(1)
            self.table[self.reactive, span] = values
            self.rounded[self.reactive, span] = values.to(self.rounded.dtype)

    def end_epoch(self, records: Sequence[EpochRecord]) -> None:
        """Let the reactive configs react to the epoch's records (one per config, in order)."""
        if self.reactive:
            self.controller.step([plateau_signal(records[i]) for i in self.reactive])

    def per_iteration(self) -> list[list[float]]:
        """Each config's LR at each iteration (batch) of the run."""
        plan = self.plan
        per_step = self.table if plan.per_iteration else self.table.repeat_interleave(plan.batches, dim=1)
        return per_step.tolist()
