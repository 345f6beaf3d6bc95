"""steplr: exact learning-rate schedules, PyTorch drop-in schedulers, and tools to see the plan.

The math (``steplr.schedules.kinds``) needs only NumPy; the torch schedulers (``steplr.StepLR`` and friends) and the
experiments on a user's own model (``steplr.compare``, ``steplr.sweep``) are loaded on first use, so ``import steplr``
and ``steplr explain`` stay fast.

The names here: the schedule kinds (``StepDecay``, ``MultiStep``, ``Exponential``, ``Cosine``, ``Constant``,
``LinearWarmup``, ``Sequence`` and ``join``; the rest are in ``steplr.schedules``), torch's schedulers with
torch's signatures (``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``, ``ConstantLR``,
``LinearLR``, ``PolynomialLR``, ``CosineAnnealingWarmRestarts``, ``OneCycleLR``, ``CyclicLR``, and ``ScheduleLR``
for any schedule), and ``compare`` and ``sweep`` for a model of your own.

Examples:
    The math alone, no torch involved:

    >>> import steplr
    >>> steplr.StepDecay(step_size=10, gamma=0.5).lr(0.1, 25)
    0.025

    The same schedule driving an optimizer, as torch's ``StepLR`` would:

    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> scheduler = steplr.StepLR(optimizer, step_size=10, gamma=0.5)
    >>> for _ in range(25):
    ...     optimizer.step()
    ...     scheduler.step()
    >>> optimizer.param_groups[0]["lr"]
    0.025
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from steplr.schedules.kinds import (
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    MultiStep,
    Schedule,
    Sequence,
    StepDecay,
    join,
)

if TYPE_CHECKING:
    from steplr.experiments.user import compare, sweep
    from steplr.lr_scheduler import (
        ConstantLR,
        CosineAnnealingLR,
        CosineAnnealingWarmRestarts,
        CyclicLR,
        ExponentialLR,
        LinearLR,
        MultiStepLR,
        OneCycleLR,
        PolynomialLR,
        ScheduleLR,
        StepLR,
    )

__version__ = "0.1.0"

_TORCH_NAMES = (
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "ConstantLR",
    "LinearLR",
    "PolynomialLR",
    "CosineAnnealingWarmRestarts",
    "OneCycleLR",
    "CyclicLR",
    "ScheduleLR",
)

__all__ = [
    "Constant",
    "ConstantLR",
    "Cosine",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "Exponential",
    "ExponentialLR",
    "LinearLR",
    "LinearWarmup",
    "MultiStep",
    "MultiStepLR",
    "OneCycleLR",
    "PolynomialLR",
    "Schedule",
    "ScheduleLR",
    "Sequence",
    "StepDecay",
    "StepLR",
    "compare",
    "join",
    "sweep",
]

_EXPERIMENT_NAMES = ("compare", "sweep")


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from steplr import lr_scheduler

        return getattr(lr_scheduler, name)
    if name in _EXPERIMENT_NAMES:
        from steplr.experiments import user

        return getattr(user, name)
    raise AttributeError(f"module 'steplr' has no attribute {name!r}")
