"""Which engine trains a set of runs, and training them: :func:`train_many`.

Three engines train the same run plan (:mod:`steplr.training.plan`) to the same result:

* ``stack``: the hand-written batched engine (:mod:`steplr.training.batched`) for plain Linear/ReLU stacks that
  declare a :class:`~steplr.training.models.StackSpec`, trained with cross-entropy by plain SGD or Adam;
* ``functional``: the ``torch.func`` engine (:mod:`steplr.training.functional`) for any model ``vmap`` can take
  (LayerNorm, BatchNorm, dropout, convolutions, ...), any loss and every optimizer setting;
* ``sequential``: the reference trainer (:mod:`steplr.training.train`), one run after another, for any model.

``engine="auto"`` takes the fastest engine that can train the runs and says why in :func:`choose_engine`'s reason;
``engine="batched"`` takes ``stack`` or ``functional`` and refuses runs neither can train. Whether ``vmap`` can
take a model is found by trying it: one tiny forward and backward pass of two copies (:func:`~steplr.training.
functional.probe`).

The functional engine trains the models in chunks that fit a memory budget (``max_memory``, by default
:func:`~steplr.training.budget.default_budget`): :func:`chunk_size` divides it by the probe's estimate of one
model's memory (:func:`~steplr.training.functional.probe` documents what it counts). Every model's result is the
same whatever the chunks: the models of a chunk never interact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from steplr.errors import DivergedError, SteplrValueError
from steplr.training.budget import default_budget, models_per_chunk
from steplr.training.config import EpochRecord, History, TrainConfig
from steplr.training.data import TrainData
from steplr.training.models import stack_spec
from steplr.training.plan import SHARED_FIELDS
from steplr.training.task import Task

__all__ = ["ENGINES", "choose_engine", "chunk_size", "train_many"]

ENGINES = ("auto", "batched", "sequential")
# Above this many bytes of activations per model and batch, auto trains the models one at a time. Measured on this
# project's 2-core machine: the BatchNorm CNN on 8x8 digits at batch 32 (0.3 MiB) trains 1.6x faster per model
# stacked (benchmarks/RESULTS.md, generic); the same kind of CNN on 28x28 Fashion-MNIST at batch 128 (fashion-cnn,
# ~10 MiB) 0.75x as fast stacked as one at a time (`compare fashion-cnn --seeds 3 --epochs 2`: 40 s against 30 s),
# as K copies of its activations no longer fit the caches.
LARGE_ACTIVATIONS = 2 * 2**20


def _stack_reason(config: TrainConfig, task: Task | None, device: torch.device | str | None) -> str | None:
    """Why the hand-written stack engine cannot train ``config``, or None when it can."""
    if task is not None:
        return "a user's model"
    if config.loss != "cross_entropy":
        return f"loss {config.loss}"
    if config.optimizer == "adamw" or config.momentum or config.weight_decay:
        return "an optimizer setting it does not write out (momentum, weight decay or AdamW)"
    if device is not None and torch.device(device).type != "cpu":
        return f"device {device}"
    from steplr.training.models import build_model

    if stack_spec(build_model(config.model, 1, 2)) is None:
        return f"model {config.model} is not a plain Linear/ReLU stack"
    return None


@dataclass(frozen=True)
class _Choice:
    engine: str
    reason: str
    bytes_per_model: int = 0  # the functional engine's estimate of one model's memory


def _choose(
    configs: Sequence[TrainConfig],
    data: TrainData,
    task: Task | None,
    engine: str,
    device: torch.device | str | None,
) -> _Choice:
    if engine not in ENGINES:
        raise SteplrValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not configs:
        raise SteplrValueError("training needs at least one config, got none")
    if engine == "sequential":
        return _Choice("sequential", "asked for")
    reasons = [_stack_reason(config, task, device) for config in configs]
    stack_reason = next((reason for reason in reasons if reason is not None), None)
    if stack_reason is None:
        return _Choice("stack", "a plain Linear/ReLU stack")
    from steplr.training.functional import probe

    found = [probe([configs[group[0]]], data, task, device) for group in _groups(configs)]
    error = next((f.error for f in found if f.error is not None), None)
    activations = max(f.activations for f in found)
    if error is None and engine == "auto" and activations > LARGE_ACTIVATIONS:
        return _Choice(
            "sequential",
            f"{activations / 2**20:.1f} MiB of activations per model and batch: one model at a time runs faster "
            "than stacked copies that overflow the caches",
        )
    if error is None:
        return _Choice("functional", f"torch.func for {stack_reason}", max(f.bytes_per_model for f in found))
    if engine == "batched":
        raise SteplrValueError(f"engine 'batched' cannot train these runs: {error}")
    return _Choice("sequential", error)


def choose_engine(
    configs: Sequence[TrainConfig],
    data: TrainData,
    task: Task | None = None,
    engine: str = "auto",
    device: torch.device | str | None = None,
) -> tuple[str, str]:
    """The engine that trains ``configs`` (``"stack"``, ``"functional"`` or ``"sequential"``) and the reason, in a
    few words (for the sequential engine under ``auto``: why ``vmap`` cannot take the model, with the first line of
    its error).

    Raises:
        SteplrValueError: for an unknown engine, no configs, or ``batched`` where no batched engine can train the
            runs.
    """
    choice = _choose(configs, data, task, engine, device)
    return choice.engine, choice.reason


def chunk_size(
    configs: Sequence[TrainConfig],
    data: TrainData,
    task: Task | None = None,
    max_memory: int | None = None,
    device: torch.device | str | None = None,
    engine: str = "auto",
) -> int:
    """How many models :func:`train_many` trains together: all of them for the stack engine, one for the
    sequential one, and for the functional engine as many as fit ``max_memory`` bytes (None:
    :func:`~steplr.training.budget.default_budget`) at the probe's estimate per model, beside the fixed allowance
    for evaluation (:data:`~steplr.training.functional.EVAL_BYTES`).

    Raises:
        BudgetError: when one model alone does not fit ``max_memory`` (the message names ``--max-memory``).
    """
    return _chunk(_choose(configs, data, task, engine, device), len(configs), max_memory)


def _chunk(choice: _Choice, models: int, max_memory: int | None) -> int:
    if choice.engine == "sequential":
        return 1
    if choice.engine == "stack":
        return models
    from steplr.training.functional import EVAL_BYTES

    budget = max_memory if max_memory is not None else default_budget()
    return models_per_chunk(choice.bytes_per_model, models, budget, fixed=EVAL_BYTES)


def _groups(configs: Sequence[TrainConfig]) -> list[list[int]]:
    """Indices of the configs that can share a run plan (equal :data:`SHARED_FIELDS`), groups in order of first
    appearance."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(tuple(getattr(config, name) for name in SHARED_FIELDS), []).append(index)
    return list(groups.values())


def train_many(
    configs: Sequence[TrainConfig],
    data: TrainData,
    *,
    task: Task | None = None,
    engine: str = "auto",
    device: torch.device | str | None = None,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
    max_memory: int | None = None,
) -> list[History]:
    """Train every config; one History per config, in order. ``on_epoch`` is called with the records of the
    models that finished an epoch (those trained together at once for a batched engine, in the order of
    ``configs`` within them; one at a time for the sequential engine). ``max_memory``: bytes the functional engine
    may take for the models it trains together (None: :func:`~steplr.training.budget.default_budget`); it trains
    them in chunks of :func:`chunk_size`. Configs that differ in a shared field
    (:data:`~steplr.training.plan.SHARED_FIELDS`) are trained in separate batches.

    A run whose loss becomes NaN or infinite keeps NaN metrics from that epoch on, whatever the engine.

    Raises:
        SteplrValueError: as :func:`choose_engine` says.
        BudgetError: when one model alone does not fit ``max_memory``.
    """
    choice = _choose(configs, data, task, engine, device)
    if choice.engine == "sequential":
        return [_sequential(config, data, task, device, on_epoch) for config in configs]
    results: list[History | None] = [None] * len(configs)
    for group in _groups(configs):
        size = _chunk(choice, len(group), max_memory)
        for start in range(0, len(group), size):
            chunk = group[start : start + size]
            histories = _train_batch(choice.engine, [configs[i] for i in chunk], data, task, device, on_epoch)
            for index, history in zip(chunk, histories):
                results[index] = history
    return [history for history in results if history is not None]


def _train_batch(
    engine: str,
    configs: list[TrainConfig],
    data: TrainData,
    task: Task | None,
    device: torch.device | str | None,
    on_epoch: Callable[[list[EpochRecord]], None] | None,
) -> list[History]:
    if engine == "stack":
        from steplr.training.batched import train_batched

        return train_batched(configs, data, on_epoch=on_epoch)
    from steplr.training.functional import train_functional

    return train_functional(configs, data, task=task, device=device, on_epoch=on_epoch)


def _sequential(
    config: TrainConfig,
    data: TrainData,
    task: Task | None,
    device: torch.device | str | None,
    on_epoch: Callable[[list[EpochRecord]], None] | None,
) -> History:
    """One run of the reference trainer; a diverged run's history is padded with NaN epochs to the run's end.

    What the model draws from torch's global RNG while it trains (dropout) comes from the run's seed, so a run is
    reproducible whatever ran before it; the caller's RNG is left as it was.
    """
    from steplr.training.train import train

    history = History()

    def record(epoch: EpochRecord) -> None:
        history.epochs.append(epoch)
        if on_epoch is not None:
            on_epoch([epoch])

    try:
        with torch.random.fork_rng(devices=[] if device is None else [torch.device(device)]):
            torch.manual_seed(config.seed)
            return train(config, data, on_epoch=record, task=task, device=device)
    except DivergedError:
        nan = math.nan
        for epoch in range(len(history.epochs) + 1, config.epochs + 1):
            history.epochs.append(EpochRecord(epoch, nan, nan, nan, nan, nan, nan, nan))
        return history
