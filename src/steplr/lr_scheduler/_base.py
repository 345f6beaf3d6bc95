"""The machinery every drop-in shares: ``ScheduleLR`` (closed-form writes, chaining by ratio, torch's
``SequentialLR`` hooks, the call-order check, checked state dicts); the rates it writes come from ``_rates``.

Imports torch, steplr's schedules and errors. The public names are re-exported by ``steplr.lr_scheduler``.
"""

from __future__ import annotations

import math
import numbers
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.hooks import RemovableHandle

from steplr.errors import SteplrKeyError, SteplrTypeError, SteplrValueError
from steplr.lr_scheduler._rates import _Rates, _rates_for
from steplr.schedules.cycles import CosineWarmRestarts
from steplr.schedules.durations import check_positive_int
from steplr.schedules.kinds import (
    ConstantFactor,
    Cosine,
    Exponential,
    Linear,
    MultiStep,
    PolynomialDecay,
    Schedule,
    StepDecay,
    schedule_from_params,
)

__all__ = ["ScheduleLR", "STATE_FORMAT"]

STATE_FORMAT = "steplr.scheduler/1"
_STATE_KEYS = ("format", "schedule", "steps_per_epoch", "last_epoch", "base_lrs")


class ScheduleLR(LRScheduler):
    """Set each param group's learning rate to ``schedule.lr(base_lr, last_epoch)``.

    Args:
        optimizer: the optimizer whose ``param_groups[i]["lr"]`` this scheduler owns.
        schedule: any ``Schedule`` with scalar parameters.
        last_epoch: the last step already taken; ``-1`` (default) starts a new run at step 0. With ``L >= 0``
            each group must hold ``"initial_lr"`` (as restored from an optimizer checkpoint) and the optimizer is
            set to the learning rate of step ``L``.
        steps_per_epoch: scheduler steps per epoch, needed for durations such as ``"5ep"``.

    Raises:
        TypeError: if ``optimizer`` is not a torch Optimizer or ``schedule`` not a Schedule.
        ValueError: for a bad ``last_epoch`` or ``steps_per_epoch``.
        KeyError: (also a ValueError) for a missing ``initial_lr`` on resume.

    Examples:
        A warm-up over 2 epochs of 3 steps, then decay by half every 3 epochs, as one schedule:

        >>> import torch
        >>> from steplr import LinearWarmup, StepDecay, join
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = join([LinearWarmup("2ep", 0.5), StepDecay("3ep", 0.5)], ["2ep"])
        >>> sched = ScheduleLR(opt, schedule, steps_per_epoch=3)
        >>> rates = []
        >>> for _ in range(16):
        ...     rates.append(sched.get_last_lr()[0]); opt.step(); sched.step()
        >>> rates[:7], rates[15]
        ([0.5, 0.5833333333333334, 0.6666666666666666, 0.75, 0.8333333333333334, 0.9166666666666666, 1.0], 0.5)
    """

    _REPR_ARGS: tuple[str, ...] = ("schedule",)
    # Torch's non-chainable classes (CosineAnnealingWarmRestarts) write their closed form whatever the group held;
    # a drop-in for one does the same, so that compositions give torch's rates.
    _overwrites: bool = False

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
        last_epoch = _check_last_epoch(last_epoch)
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
        # always floats here (torch's annotation allows tensors, which steplr reads once into floats)
        self.base_lrs: list[float] = [  # type: ignore[assignment]
            _as_float(g["initial_lr"], f"param_groups[{i}]['initial_lr']") for i, g in enumerate(optimizer.param_groups)
        ]
        self.last_epoch = max(int(last_epoch), 0)
        self._step_count = 1
        self._get_lr_called_within_step = False
        self._optimizer_stepped: bool = False
        self._order_hook: RemovableHandle | None = _watch_optimizer_steps(self)
        self._use_rates(_rates_for(self.schedule, self.base_lrs))
        self._groups: list[dict[str, Any]] = optimizer.param_groups  # the list we write into (a restore replaces it)
        self._last_lr: list[float | torch.Tensor] = []
        self._written: list[object] = []  # per group: what we last wrote (see _fingerprint)
        self._exact: list[bool] = []  # per group: nothing else has touched its lr, so write the closed form
        self._closed: list[float] = []  # per group: the closed-form value of step _applied
        self._applied: int = self.last_epoch  # the step whose values were last written
        self._plain: bool = False  # every group a float lr in _exact mode: step() takes the short way
        if last_epoch == -1:  # a group whose lr already differs from initial_lr was set by someone else: chain
            self._take_groups(before=self.base_lrs)
        else:  # resuming at step L: the optimizer gets step L's closed form, whatever it held
            self._take_groups(exact=True)
        self._write(self._rates.values(self.last_epoch), self.last_epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_at"]  # a generator's send for some schedules: rebuilt from _rates
        state["_order_hook"] = None  # a copy does not check the call order (its optimizer has no hook of ours)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._at = self._rates.at
        self._leave_plain(self._last_lr, 0)  # the copied rates start afresh: the next write takes the long way

    def __repr__(self) -> str:
        args = [f"{name}={getattr(self, name)!r}" for name in self._REPR_ARGS]
        if self.steps_per_epoch is not None:
            args.append(f"steps_per_epoch={self.steps_per_epoch}")
        args.append(f"last_epoch={self.last_epoch}")
        return f"{type(self).__name__}({', '.join(args)})"

    # -- the torch surface -------------------------------------------------------------------------------------

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to step ``epoch``) and set the learning rates of that step.

        The first call warns (``UserWarning``, as torch does) if the optimizer has not stepped since this scheduler
        was built: the schedule's first learning rate would then never be used.
        """
        if self._order_hook is not None and self._step_count:  # 0: SequentialLR's initial step, not the user's
            self._check_call_order()
        if epoch is None:
            t = self.last_epoch = self.last_epoch + 1
        else:
            t = self.last_epoch = _check_epoch(epoch)
        self._step_count += 1
        values = self._at(t)
        if values is None:
            return  # same values as already written (within a StepLR block: the common case, and the cheap one)
        if self._plain:  # the short way, while every group is a float lr that only we have written
            groups = self.optimizer.param_groups
            count = len(groups)
            if count == 1 == len(values):  # the usual single group, without a loop
                group = groups[0]
                if group["lr"] == self._last_lr[0]:
                    group["lr"] = values[0]
                    self._last_lr = values  # type: ignore[assignment]  # floats: list is invariant
                    self._applied = t
                    return
            elif count == len(values):
                for group, value, before in zip(groups, values, self._last_lr):
                    if group["lr"] != before:
                        break
                    group["lr"] = value
                else:
                    self._last_lr = values  # type: ignore[assignment]
                    self._applied = t
                    return
                self._leave_plain(values, groups.index(group))
        self._write(values, t)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The learning rates of step ``last_epoch``, one float per group.

        Called plainly: the closed form (exact). Called as a framework's step, with
        ``_get_lr_called_within_step`` set (Ignite's ``LRScheduler`` handler drives a scheduler this way, never
        calling ``step()``, and writes what this returns into the groups): the rates chain from what each group
        holds, by the rule ``step()`` follows. A group that holds step ``t - 1``'s closed form gets step ``t``'s;
        any other lr (a warm-up that ended elsewhere) is scaled by ``lr(t) / lr(t - 1)``, so the run goes on from
        it as torch's chainable schedulers do; at step 0 a group's lr is returned as it stands. Schedulers that
        overwrite whatever the group held (``CosineAnnealingWarmRestarts``, ``OneCycleLR``, ``CyclicLR``, as
        torch's) return the closed form either way.

        Returns:
            One learning rate per group this scheduler knows of.
        """
        t = self.last_epoch
        closed = self._closed_form(t)
        if not self._get_lr_called_within_step or self._overwrites:
            return closed
        chained = []
        for i, (group, base, value) in enumerate(zip(self.optimizer.param_groups, self.base_lrs, closed)):
            current = _as_float(group["lr"], f"param_groups[{i}]['lr']")
            if t <= 0:
                chained.append(current)
                continue
            before = self.schedule._lr_scalar(base, t - 1)
            chained.append(value if before == 0.0 or current == before else current * (value / before))
        return chained

    def _closed_form(self, t: int) -> list[float]:
        return [self.schedule._lr_scalar(base, t) for base in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self._closed_form(self.last_epoch)

    def get_last_lr(self) -> list[float | torch.Tensor]:
        """The learning rates last written to the optimizer (tensor copies for tensor learning rates)."""
        return list(self._last_lr)

    def _initial_step(self) -> None:
        """Step from ``last_epoch`` as a fresh start (torch's ``SequentialLR`` calls this on its first scheduler
        after setting every group back to ``initial_lr``): a group holding its ``initial_lr`` gets the closed form
        of the step; any other value is scaled by ``lr(t) / base_lr``, as torch's schedulers scale it."""
        self._step_count = 0
        self._adopt_new_groups()
        self._take_groups(before=self.base_lrs)
        self._rates.reset()
        self.step()

    def _update_lr(self, epoch: int | None = None) -> None:
        """Torch's step without the count: ``SequentialLR`` calls ``_update_lr(0)`` at a milestone to start this
        scheduler. With an ``epoch``, every group gets that step's closed form, whatever it held (torch's classes
        use their closed form there too), and is this scheduler's own again."""
        if epoch is None:
            self.last_epoch += 1
        else:
            self.last_epoch = _check_epoch(epoch)
            self._adopt_new_groups()
            self._take_groups(exact=True)
            self._rates.reset()
        values = self._rates.at(self.last_epoch)
        if values is not None:
            self._write(values, self.last_epoch)

    # -- writing the learning rates -----------------------------------------------------------------------------

    def _check_call_order(self) -> None:
        """Warn once if ``step()`` comes before the optimizer's first step, then stop watching the optimizer."""
        if self._step_count == 1 and not self._optimizer_stepped:
            warnings.warn(
                "`lr_scheduler.step()` was called before `optimizer.step()`: the learning rate of step 0 was never "
                "used. Call `optimizer.step()` first, then `lr_scheduler.step()`.",
                UserWarning,
                stacklevel=3,
            )
        if self._order_hook is not None:
            self._order_hook.remove()
            self._order_hook = None

    def _use_rates(self, rates: _Rates) -> None:
        self._rates = rates
        self._at = rates.at  # one attribute lookup less in step()

    def _leave_plain(self, values: Sequence[Any], done: int) -> None:
        """Spell out the per-group state that the short way of step() leaves implied (every group exact, written
        and at the closed form of ``_last_lr``), its first ``done`` groups already at ``values``."""
        if self._plain:
            self._plain = False
            self._closed = list(values[:done]) + list(self._last_lr[done:])
            self._written = list(self._closed)
            self._exact = [True] * len(self._closed)

    def _take_groups(self, before: list[float] | None = None, exact: bool | None = None) -> None:
        """Take each group's current lr as the starting point of the next write.

        ``before``: the closed-form values the groups stand at (default: those of ``last_epoch``). ``exact``:
        whether the next write is the closed form; by default, for the groups whose lr equals ``before``.
        """
        groups = self.optimizer.param_groups
        self._groups = groups
        closed = list(before) if before is not None else self._rates.values(self.last_epoch)
        self._closed = closed
        self._written = [_fingerprint(g["lr"]) for g in groups]
        if exact is None:
            self._exact = [_holds(g["lr"], value) for g, value in zip(groups, closed)]
        else:
            self._exact = [exact] * len(groups)
        self._applied = self.last_epoch
        self._plain = False

    def _adopt_new_groups(self) -> None:
        """Groups added after construction start from their own lr and follow the closed-form ratio, as in torch."""
        groups = self.optimizer.param_groups
        if len(groups) <= len(self.base_lrs):
            return
        self._leave_plain(self._last_lr, 0)
        for i in range(len(self.base_lrs), len(groups)):
            group = groups[i]
            lr = group["lr"]
            group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
            base = _as_float(group["initial_lr"], f"param_groups[{i}]['initial_lr']")
            self.base_lrs.append(base)
            self._closed.append(self.schedule._lr_scalar(base, self._applied) if self._applied >= 0 else base)
            self._written.append(None)
            self._exact.append(False)
        self._use_rates(_rates_for(self.schedule, self.base_lrs))

    def _write(self, values: list[float], t: int) -> None:
        """Write step ``t``'s ``values``: the closed form to untouched groups, the closed-form ratio to others."""
        self._leave_plain(values, 0)
        groups = self.optimizer.param_groups
        if len(groups) > len(self.base_lrs):
            self._adopt_new_groups()
            values = self._rates.values(t)
            self._rates.at(t)  # the new groups' values are now the ones of step t's segment
        last: list[float | torch.Tensor] = []
        written: list[object] = []
        plain = True
        for i, (group, value, before) in enumerate(zip(groups, values, self._closed)):
            current = group["lr"]
            exact = self._exact[i] = self._overwrites or (self._exact[i] and _fingerprint(current) == self._written[i])
            if isinstance(current, torch.Tensor):  # in place: compiled graphs and aliases keep seeing this tensor
                if exact or before == 0.0:
                    current.fill_(value)
                else:
                    current.mul_(value / before)
                last.append(current.clone())
                plain = False
            else:
                current = value if exact or before == 0.0 else current * (value / before)
                group["lr"] = current
                last.append(current)
                plain = plain and exact
            written.append(_fingerprint(current))
        self._groups = groups
        self._written = written
        self._closed = list(values)
        self._applied = t
        self._last_lr = last
        self._plain = plain and len(written) == len(groups)

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
        """Restore a checkpoint: steplr's own, or the ``state_dict()`` of torch's scheduler of the same kind.

        ``last_epoch``, ``base_lrs`` and the schedule's parameters are taken from ``state_dict`` (as torch does).
        When the checkpoint's schedule differs from the one this scheduler was built with, a ``UserWarning`` names
        each difference. The learning rates: a group this scheduler wrote last (nobody, not even an optimizer
        restore, has set it since) is set to the closed form of ``last_epoch``; a group set since (the optimizer's
        ``load_state_dict`` restores the rates the run had) keeps its rate, and follows the closed form exactly
        from the next step if that rate is the closed form, else by its ratio, as torch continues. A state at
        ``last_epoch=-1`` (a scheduler that a ``SequentialLR`` has not started yet) writes nothing.

        Raises:
            ValueError: if a key is missing or of a wrong kind (``steps_per_epoch`` as in the constructor), the
                format is unknown, the number of groups differs, or a torch state is of another kind.
        """
        schedule, steps_per_epoch, base_lrs, last_epoch, step_count = self._read_state(state_dict)
        differences = _differences(self.schedule.params(), schedule.params())
        if differences:
            warnings.warn(
                "scheduler checkpoint differs from the constructor, using the checkpoint's values: "
                + "; ".join(differences),
                UserWarning,
                stacklevel=2,
            )
        self._leave_plain(self._last_lr, 0)
        groups = self.optimizer.param_groups
        ours = groups is self._groups and len(groups) == len(self._written)
        untouched = [ours and _fingerprint(g["lr"]) == w for g, w in zip(groups, self._written)]
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.base_lrs = base_lrs
        self.last_epoch = last_epoch
        self._step_count = step_count
        self._use_rates(_rates_for(schedule, base_lrs))
        if last_epoch == -1:
            self._take_groups(before=base_lrs)
            return
        self._take_groups()
        self._exact = [a or b for a, b in zip(untouched, self._exact)]
        self._write(self._rates.values(last_epoch), last_epoch)
        self._rates.at(last_epoch)

    def _read_state(self, state_dict: object) -> tuple[Schedule, int | None, list[float], int, int]:
        """The checked contents of a steplr or torch state dict (nothing changed yet)."""
        if not isinstance(state_dict, dict):
            raise SteplrValueError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        if "format" not in state_dict and {"base_lrs", "last_epoch"} <= state_dict.keys():
            state_dict = self._from_torch(state_dict)
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise SteplrValueError(f"scheduler state_dict is missing {missing}")
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
        last_epoch = _integer(state_dict["last_epoch"], "checkpoint last_epoch", -1)
        steps_per_epoch = state_dict["steps_per_epoch"]
        if steps_per_epoch is not None:  # as the constructor checks it (a ValueError here, like every key's)
            try:
                steps_per_epoch = check_positive_int(steps_per_epoch, "checkpoint steps_per_epoch")
            except TypeError as error:
                raise SteplrValueError(str(error)) from None
        step_count = _integer(state_dict.get("_step_count", self._step_count), "checkpoint _step_count", 0)
        schedule = schedule_from_params(state_dict["schedule"])
        return schedule, steps_per_epoch, base_lrs, last_epoch, step_count

    def _from_torch(self, state: dict[str, Any]) -> dict[str, Any]:
        """A torch scheduler's ``state_dict()`` as steplr's, if it is of this scheduler's kind."""
        own = sorted(k for k in state if k not in _TORCH_COMMON)
        kind = _TORCH_KINDS.get(tuple(own))
        if kind is None:
            raise SteplrValueError(
                f"this looks like a torch scheduler's state_dict with parameters {own}; {type(self).__name__} "
                f"reads its own and those of torch's {', '.join(name for name, _ in _TORCH_KINDS.values())}"
            )
        name, build = kind
        shown = ", ".join(f"{k}={state[k]!r}" for k in own)
        try:
            schedule = build(state)
        except (TypeError, ValueError) as error:
            raise SteplrValueError(f"torch {name} state_dict ({shown}): {error}") from None
        if type(schedule) is not type(self.schedule):
            raise SteplrValueError(
                f"got torch's {name} state_dict ({shown}), but this {type(self).__name__} schedules "
                f"{self.schedule!r}: load it into steplr's {name}"
            )
        return {
            "format": STATE_FORMAT,
            "schedule": schedule.params(),
            "steps_per_epoch": self.steps_per_epoch,
            "last_epoch": state["last_epoch"],
            "base_lrs": list(state["base_lrs"]),
            "_step_count": state.get("_step_count", self._step_count),
        }


def _torch_milestones(milestones: object) -> list[Any]:
    """Torch keeps MultiStepLR's milestones as a Counter (a milestone listed twice decays twice)."""
    if isinstance(milestones, Mapping):
        return sorted(Counter(milestones).elements())
    if isinstance(milestones, (list, tuple)):
        return list(milestones)
    raise SteplrValueError(f"milestones must be a Counter or a list, got {milestones!r}")


# The keys every torch LRScheduler's state_dict holds; the rest name the kind (torch 2.13).
_TORCH_COMMON = frozenset(
    {"base_lrs", "last_epoch", "_step_count", "_is_initial", "_get_lr_called_within_step", "_last_lr", "verbose"}
)
_TORCH_KINDS: dict[tuple[str, ...], tuple[str, Callable[[dict[str, Any]], Schedule]]] = {
    ("gamma", "step_size"): ("StepLR", lambda s: StepDecay(s["step_size"], s["gamma"])),
    ("gamma", "milestones"): (
        "MultiStepLR",
        lambda s: MultiStep(_torch_milestones(s["milestones"]), s["gamma"], counted=True),
    ),
    ("gamma",): ("ExponentialLR", lambda s: Exponential(s["gamma"])),
    ("T_max", "eta_min"): ("CosineAnnealingLR", lambda s: Cosine(s["T_max"], s["eta_min"])),
    ("factor", "total_iters"): ("ConstantLR", lambda s: ConstantFactor(s["factor"], s["total_iters"])),
    ("end_factor", "start_factor", "total_iters"): (
        "LinearLR",
        lambda s: Linear(s["start_factor"], s["end_factor"], s["total_iters"]),
    ),
    ("power", "total_iters"): ("PolynomialLR", lambda s: PolynomialDecay(s["total_iters"], s["power"])),
    # T_i and T_cur are where torch's running cycle stands: the closed form finds them again from last_epoch
    ("T_0", "T_cur", "T_i", "T_mult", "eta_min"): (
        "CosineAnnealingWarmRestarts",
        lambda s: CosineWarmRestarts(s["T_0"], s["T_mult"], s["eta_min"]),
    ),
}


def _watch_optimizer_steps(scheduler: ScheduleLR) -> RemovableHandle:
    """Note the optimizer's first step on ``scheduler`` (for the call-order warning) with a step hook.

    ``optimizer.step`` itself is left alone, so it can be replaced (``torch.compile``). The hook holds the
    scheduler weakly, and goes when the scheduler does; the scheduler removes it at its first ``step()``.
    """
    owner = weakref.ref(scheduler)

    def stepped(optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        watcher = owner()
        if watcher is not None:
            watcher._optimizer_stepped = True

    handle = scheduler.optimizer.register_step_post_hook(stepped)
    weakref.finalize(scheduler, handle.remove)
    return handle


def _check_last_epoch(last_epoch: object) -> int:
    return _integer(last_epoch, "last_epoch", -1)


def _check_epoch(epoch: object) -> int:
    """A step passed to ``step(epoch)``: a non-negative integer."""
    return _integer(epoch, "epoch", 0)


def _integer(value: object, name: str, least: int) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``least``; otherwise an error naming it. A function,
    so that type checkers, which do not count ``int`` as a ``numbers.Integral``, still see the code after it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        wanted = "a non-negative integer" if least == 0 else f"an integer >= {least}"
        raise SteplrValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def _as_float(value: object, name: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise SteplrValueError(f"{name} must be a scalar learning rate, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise SteplrValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _holds(lr: object, value: float) -> bool:
    """Whether ``lr`` holds ``value`` (as its dtype stores it, for a tensor: a read of the value, so one sync)."""
    if isinstance(lr, torch.Tensor):
        return bool(lr.item() == torch.tensor(value, dtype=lr.dtype).item())
    return bool(lr == value)


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
