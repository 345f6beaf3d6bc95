"""PyTorch schedulers driven by the closed forms of ``steplr.schedules.kinds``.

``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``, ``ConstantLR``, ``LinearLR``,
``PolynomialLR``, ``CosineAnnealingWarmRestarts``, ``OneCycleLR`` and ``CyclicLR`` take the same arguments as
torch's and are ``torch.optim.lr_scheduler.LRScheduler`` subclasses, so Lightning, Ignite, the HF Trainer
and torch's own ``SequentialLR`` and ``ChainedScheduler`` accept them. ``ScheduleLR(optimizer, schedule)`` drives
any ``Schedule``. What differs from torch:

* the learning rate of step ``t`` is ``schedule.lr(base_lr, t)``, never a running product, so it does not drift
  over millions of steps and reaches exactly 0.0 on underflow;
* ``last_epoch=L`` means "the last step taken was L": the optimizer gets the learning rate of step L (torch's
  constructor steps once more, one step ahead);
* ``optimizer.step`` is left alone (torch wraps it, which breaks ``optimizer.step = torch.compile(...)``); the
  warning for ``scheduler.step()`` before the first ``optimizer.step()`` comes from an optimizer step hook,
  removed at the scheduler's first step;
* a tensor ``lr`` stays the same tensor object and is written in place, once per change, from the exact value;
* ``state_dict()`` holds explicit, versioned keys and ``load_state_dict`` checks them; it also reads the state of
  torch's scheduler of the same kind (``StepLR`` into ``StepLR``, ...), and refuses another kind by name.

Learning rates are written to ``param_group["lr"]`` whenever the scheduled value changes (for StepLR: at each
decay). While nothing else has touched a group's learning rate since this scheduler last wrote it, the value
written is the exact closed form. Once something else has (another scheduler in torch's ``ChainedScheduler``,
``ReduceLROnPlateau``, a value set by hand), the group is scaled by the closed-form ratio ``lr(t) / lr(t-1)``
instead, as torch's chainable schedulers do, so compositions give torch's learning rates. In ``SequentialLR`` a
scheduler starts (its initial step, or ``_update_lr(0)`` at its milestone) at its exact closed form, as torch's
classes do with theirs.

The machinery lives in ``_base`` (the per-step rates in ``_rates``), the torch-named classes in ``_dropins`` and
``_cyclical``; every public name is importable from here, and reports this module as its home (reprs, pickles and
doctests name ``steplr.lr_scheduler``).

Examples:
    >>> import torch
    >>> from steplr.schedules import Exponential
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> sched = ScheduleLR(opt, Exponential(0.5))
    >>> for _ in range(3):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.0125]
"""

from __future__ import annotations

from steplr.lr_scheduler._base import STATE_FORMAT, ScheduleLR
from steplr.lr_scheduler._cyclical import CyclicLR, OneCycleLR
from steplr.lr_scheduler._dropins import (
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)

__all__ = [
    "ScheduleLR",
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
    "STATE_FORMAT",
]

for _class in (
    ScheduleLR,
    StepLR,
    MultiStepLR,
    ExponentialLR,
    CosineAnnealingLR,
    ConstantLR,
    LinearLR,
    PolynomialLR,
    CosineAnnealingWarmRestarts,
    OneCycleLR,
    CyclicLR,
):
    _class.__module__ = __name__
del _class
