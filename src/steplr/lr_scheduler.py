"""PyTorch schedulers driven by the closed forms of :mod:`steplr.schedules.kinds`.

``StepLR``, ``MultiStepLR``, ``ExponentialLR`` and ``CosineAnnealingLR`` take the same arguments as torch's and
are :class:`torch.optim.lr_scheduler.LRScheduler` subclasses, so Lightning, Ignite and the HF Trainer accept them.
``ScheduleLR(optimizer, schedule)`` drives any :class:`~steplr.schedules.Schedule`. What differs from torch:

* the learning rate of step ``t`` is ``schedule.lr(base_lr, t)``, never a running product, so it does not drift
  over millions of steps and reaches exactly 0.0 on underflow;
* ``last_epoch=L`` means "the last step taken was L": the optimizer gets the learning rate of step L (torch's
  constructor steps once more, one step ahead);
* ``optimizer.step`` is left alone (torch wraps it, which breaks ``optimizer.step = torch.compile(...)``);
* a tensor ``lr`` stays the same tensor object and is written in place, once per change, from the exact value;
* ``state_dict()`` holds explicit, versioned keys and ``load_state_dict`` checks them.

Learning rates are written to ``param_group["lr"]`` whenever the scheduled value changes (for StepLR: at each
decay). While nothing else has touched a group's learning rate since this scheduler last wrote it, the value
written is the exact closed form. Once something else has (another scheduler in torch's ``ChainedScheduler``,
``ReduceLROnPlateau``, a value set by hand), the group is scaled by the closed-form ratio ``lr(t) / lr(t-1)``
instead, as torch's chainable schedulers do, so compositions give torch's learning rates.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Hashable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from steplr.errors import SteplrKeyError, SteplrTypeError, SteplrValueError
from steplr.schedules.durations import check_positive_int
from steplr.schedules.kinds import Cosine, Exponential, MultiStep, Schedule, StepDecay, schedule_from_params

__all__ = ["ScheduleLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "STATE_FORMAT"]

STATE_FORMAT = "steplr.scheduler/1"
_STATE_KEYS = ("format", "schedule", "steps_per_epoch", "last_epoch", "base_lrs")


class ScheduleLR(LRScheduler):
    """Set each param group's learning rate to ``schedule.lr(base_lr, last_epoch)``.

    Args:
        optimizer: the optimizer whose ``param_groups[i]["lr"]`` this scheduler owns.
        schedule: any :class:`~steplr.schedules.Schedule` with scalar parameters.
        last_epoch: the last step already taken; ``-1`` (default) starts a new run at step 0. With ``L >= 0``
            each group must hold ``"initial_lr"`` (as restored from an optimizer checkpoint) and the optimizer is
            set to the learning rate of step ``L``.
        steps_per_epoch: scheduler steps per epoch, needed for durations such as ``"5ep"``.

    Raises:
        TypeError: if ``optimizer`` is not a torch Optimizer or ``schedule`` not a Schedule.
        ValueError: for a bad ``last_epoch`` or ``steps_per_epoch``.
        KeyError: (also a ValueError) for a missing ``initial_lr`` on resume.
    """

    _REPR_ARGS: tuple[str, ...] = ("schedule",)

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        # LRScheduler.__init__ is not called on purpose: it wraps optimizer.step and takes one extra step.
        if not isinstance(optimizer, Optimizer):
            raise SteplrTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not isinstance(schedule, Schedule):
            raise SteplrTypeError(f"schedule must be a steplr Schedule, got {schedule!r}")
        if not schedule.is_scalar:
            raise SteplrValueError(f"schedule parameters must be scalars for a torch scheduler, got {schedule!r}")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) or last_epoch < -1:
            raise SteplrValueError(f"last_epoch must be an integer >= -1, got {last_epoch!r}")
        if steps_per_epoch is not None:
            steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch")
        self.optimizer = optimizer
        self.steps_per_epoch: int | None = steps_per_epoch
        self.schedule: Schedule = schedule.resolve(steps_per_epoch)
        self.schedule._check_resolved()
        if last_epoch == -1:
            for group in optimizer.param_groups:
                initial = group["lr"]
                group.setdefault("initial_lr", initial.clone() if isinstance(initial, torch.Tensor) else initial)
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise SteplrKeyError(
                        f"last_epoch={last_epoch} resumes a run, but param_groups[{i}] has no 'initial_lr': "
                        "load the optimizer's state_dict first, or start with last_epoch=-1"
                    )
        self.base_lrs: list[float] = [
            _as_float(g["initial_lr"], f"param_groups[{i}]['initial_lr']") for i, g in enumerate(optimizer.param_groups)
        ]
        self.last_epoch = max(int(last_epoch), 0)
        self._step_count = 1
        self._get_lr_called_within_step = False
        self._segment: Hashable = object()
        self._last_lr: list[float | torch.Tensor] = []
        self._written: list[object] = []  # per group: what we last wrote (see _fingerprint)
        self._exact: list[bool] = []  # per group: nothing else has touched its lr, so write the closed form
        self._closed: list[float] = []  # per group: the closed-form value of step _applied
        self._applied: int = self.last_epoch  # the step whose values were last written
        self._mark_untouched()
        if last_epoch == -1:  # a group whose lr already differs from initial_lr was set by someone else: chain
            self._closed = list(self.base_lrs)
            self._exact = [_as_float(g["lr"], "lr") == base for g, base in zip(optimizer.param_groups, self.base_lrs)]
        self._apply(self.last_epoch)

    def __repr__(self) -> str:
        args = [f"{name}={getattr(self, name)!r}" for name in self._REPR_ARGS]
        if self.steps_per_epoch is not None:
            args.append(f"steps_per_epoch={self.steps_per_epoch}")
        args.append(f"last_epoch={self.last_epoch}")
        return f"{type(self).__name__}({', '.join(args)})"

    # -- the torch surface -------------------------------------------------------------------------------------

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to step ``epoch``) and set the learning rates of that step."""
        if epoch is None:
            self.last_epoch += 1
        else:
            if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
                raise SteplrValueError(f"epoch must be a non-negative integer, got {epoch!r}")
            self.last_epoch = int(epoch)
        self._step_count += 1
        self._apply(self.last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The closed-form learning rates of step ``last_epoch`` (exact floats, one per group)."""
        return [self.schedule._lr_scalar(base, self.last_epoch) for base in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def get_last_lr(self) -> list[float | torch.Tensor]:
        """The learning rates last written to the optimizer (tensor copies for tensor learning rates)."""
        return self._last_lr

    def _mark_untouched(self) -> None:
        """Take every group's current learning rate as our own: the next write is the exact closed form."""
        groups = self.optimizer.param_groups
        self._written = [_fingerprint(g["lr"]) for g in groups]
        self._exact = [True] * len(groups)
        self._closed = self.get_lr()
        self._applied = self.last_epoch

    def _adopt_new_groups(self) -> None:
        """Groups added after construction start from their own lr and follow the closed-form ratio, as in torch."""
        for i in range(len(self.base_lrs), len(self.optimizer.param_groups)):
            group = self.optimizer.param_groups[i]
            lr = group["lr"]
            group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
            base = _as_float(group["initial_lr"], f"param_groups[{i}]['initial_lr']")
            self.base_lrs.append(base)
            self._closed.append(self.schedule._lr_scalar(base, self._applied))
            self._written.append(None)
            self._exact.append(False)

    def _apply(self, t: int) -> None:
        segment = self.schedule.segment(t)
        if segment == self._segment:
            return  # same value as already written: nothing to do (the common case, and the cheap one)
        self._segment = segment
        groups = self.optimizer.param_groups
        if len(groups) > len(self.base_lrs):
            self._adopt_new_groups()
        values = self.get_lr()
        last: list[float | torch.Tensor] = []
        for i, (group, value, before) in enumerate(zip(groups, values, self._closed)):
            current = group["lr"]
            exact = self._exact[i] = self._exact[i] and _fingerprint(current) == self._written[i]
            if isinstance(current, torch.Tensor):  # in place: compiled graphs and aliases keep seeing this tensor
                if exact or before == 0.0:
                    current.fill_(value)
                else:
                    current.mul_(value / before)
                last.append(current.clone())
            else:
                current = value if exact or before == 0.0 else current * (value / before)
                group["lr"] = current
                last.append(current)
            self._written[i] = _fingerprint(current)
        self._closed = values
        self._applied = t
        self._last_lr = last

    # -- checkpoints --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain data only (loads with ``torch.load(..., weights_only=True)``).

        Keys: ``format`` (``"steplr.scheduler/1"``), ``schedule`` (the schedule's parameters, durations already
        in steps), ``steps_per_epoch``, ``last_epoch``, ``base_lrs`` and ``_step_count`` (the count torch's own
        checks read; ``load_state_dict`` also takes a state without it, as older steplr wrote).
        """
        return {
            "format": STATE_FORMAT,
            "schedule": self.schedule.params(),
            "steps_per_epoch": self.steps_per_epoch,
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "_step_count": self._step_count,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint: the checkpoint wins.

        ``last_epoch``, ``base_lrs`` and the schedule's parameters are taken from ``state_dict`` (as torch does),
        and the optimizer's learning rates are set to that step's values. When the checkpoint's schedule differs
        from the one this scheduler was built with, a ``UserWarning`` names each difference.

        Raises:
            ValueError: if a key is missing or of a wrong kind (``steps_per_epoch`` as in the constructor), the
                format is unknown, or the number of groups differs.
        """
        if not isinstance(state_dict, dict):
            raise SteplrValueError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            torch_like = "_step_count" in state_dict and "format" not in state_dict
            hint = " (this looks like a torch scheduler's state_dict)" if torch_like else ""
            raise SteplrValueError(f"scheduler state_dict is missing {missing}{hint}")
        if state_dict["format"] != STATE_FORMAT:
            raise SteplrValueError(
                f"unknown scheduler state format {state_dict['format']!r}; expected {STATE_FORMAT!r}"
            )
        if not isinstance(state_dict["base_lrs"], (list, tuple)):
            raise SteplrValueError(f"checkpoint base_lrs must be a list of numbers, got {state_dict['base_lrs']!r}")
        base_lrs = [_as_float(b, f"base_lrs[{i}]") for i, b in enumerate(state_dict["base_lrs"])]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise SteplrValueError(
                f"checkpoint has {len(base_lrs)} base_lrs but the optimizer has "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        last_epoch = state_dict["last_epoch"]
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) or last_epoch < 0:
            raise SteplrValueError(f"checkpoint last_epoch must be a non-negative integer, got {last_epoch!r}")
        steps_per_epoch = state_dict["steps_per_epoch"]
        if steps_per_epoch is not None:  # as the constructor checks it (a ValueError here, like every key's)
            try:
                steps_per_epoch = check_positive_int(steps_per_epoch, "checkpoint steps_per_epoch")
            except TypeError as error:
                raise SteplrValueError(str(error)) from None
        step_count = state_dict.get("_step_count", self._step_count)
        if isinstance(step_count, bool) or not isinstance(step_count, numbers.Integral) or step_count < 0:
            raise SteplrValueError(f"checkpoint _step_count must be a non-negative integer, got {step_count!r}")
        schedule = schedule_from_params(state_dict["schedule"])
        differences = _differences(self.schedule.params(), schedule.params())
        if differences:
            warnings.warn(
                "scheduler checkpoint differs from the constructor, using the checkpoint's values: "
                + "; ".join(differences),
                UserWarning,
                stacklevel=2,
            )
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.base_lrs = base_lrs
        self.last_epoch = int(last_epoch)
        self._step_count = int(step_count)
        self._segment = object()
        self._mark_untouched()
        self._apply(self.last_epoch)


def _as_float(value: object, name: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise SteplrValueError(f"{name} must be a scalar learning rate, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise SteplrValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _fingerprint(lr: object) -> object:
    """What tells whether a learning rate was changed since we wrote it: the float itself, or for a tensor the
    object and its in-place version counter (no read of the value, so no device sync)."""
    if isinstance(lr, torch.Tensor):
        return (id(lr), lr._version, lr)  # the id decides first; the reference keeps it from being reused
    return lr


def _differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    if ours.get("type") != theirs.get("type"):
        return [f"schedule: constructor {ours.get('type')}, checkpoint {theirs.get('type')}"]
    keys = sorted(set(ours) | set(theirs))
    return [
        f"{k}: constructor {ours.get(k)!r}, checkpoint {theirs.get(k)!r}" for k in keys if ours.get(k) != theirs.get(k)
    ]


class _GammaMixin:
    schedule: Schedule

    @property
    def gamma(self) -> float:
        return float(self.schedule.params()["gamma"])


class StepLR(_GammaMixin, ScheduleLR):
    """Multiply each group's learning rate by ``gamma`` every ``step_size`` steps (torch's signature).

    ``lr = base_lr * gamma ** (last_epoch // step_size)``, correctly rounded. ``step_size`` may be ``"5ep"``
    with ``steps_per_epoch`` (e.g. ``len(train_loader)`` when stepping per batch).

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> sched = StepLR(opt, step_size=10, gamma=0.5)
    >>> for _ in range(25):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.025]
    """

    _REPR_ARGS = ("step_size", "gamma")

    def __init__(
        self,
        optimizer: Optimizer,
        step_size: int | str,
        gamma: float = 0.1,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, StepDecay(step_size, gamma), last_epoch, steps_per_epoch)

    @property
    def step_size(self) -> int:
        return int(self.schedule.params()["step_size"])


class MultiStepLR(_GammaMixin, ScheduleLR):
    """Multiply by ``gamma`` at each milestone (torch's signature); milestones may be durations.

    As in torch, milestones may come in any order, include 0, and repeat (a milestone listed twice decays twice).
    """

    _REPR_ARGS = ("milestones", "gamma")

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int | str],
        gamma: float = 0.1,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, MultiStep(milestones, gamma, counted=True), last_epoch, steps_per_epoch)

    @property
    def milestones(self) -> list[int]:
        return list(self.schedule.params()["milestones"])

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As :meth:`ScheduleLR.load_state_dict`; a checkpoint from a steplr that did not yet take milestones as
        torch does (no ``counted``) holds strictly increasing ones, which mean the same either way."""
        schedule = state_dict.get("schedule") if isinstance(state_dict, dict) else None
        if isinstance(schedule, dict) and schedule.get("type") == "MultiStep" and "counted" not in schedule:
            state_dict = {**state_dict, "schedule": {**schedule, "counted": True}}
        super().load_state_dict(state_dict)


class ExponentialLR(_GammaMixin, ScheduleLR):
    """Multiply by ``gamma`` every step (torch's signature): ``base_lr * gamma ** last_epoch``, rounded once."""

    _REPR_ARGS = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        super().__init__(optimizer, Exponential(gamma), last_epoch)


class CosineAnnealingLR(ScheduleLR):
    """Cosine annealing to ``eta_min`` over ``T_max`` steps (torch's signature), from the closed form."""

    _REPR_ARGS = ("T_max", "eta_min")

    def __init__(
        self,
        optimizer: Optimizer,
        T_max: float | str,
        eta_min: float = 0.0,
        last_epoch: int = -1,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(optimizer, Cosine(T_max, eta_min), last_epoch, steps_per_epoch)

    @property
    def T_max(self) -> int | float:
        t_max = self.schedule.params()["t_max"]
        return t_max if isinstance(t_max, float) else int(t_max)

    @property
    def eta_min(self) -> float:
        return float(self.schedule.params()["eta_min"])
