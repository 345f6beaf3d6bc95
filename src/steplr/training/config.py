"""What a run is and what it recorded: :class:`TrainConfig`, :class:`EpochRecord`, :class:`History`.

Imports no torch, so configs and histories can be read, validated and reported on without it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules.kinds import Schedule
from steplr.schedules.registry import lookup
from steplr.schedules.spec import SETTINGS, ScheduleSpec

__all__ = ["TrainConfig", "EpochRecord", "History", "OPTIMIZERS", "INTERVALS", "LOSSES", "MAX_SEED"]

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes no larger seed
OPTIMIZERS = ("sgd", "adam", "adamw")
INTERVALS = ("iteration", "epoch")
# "custom": a loss function given in Python (steplr.training.task.Task.loss); a config records only that it was one.
LOSSES = ("cross_entropy", "mse", "custom")


def _recipe_schedule() -> ScheduleSpec:
    return ScheduleSpec("step", {"step_size": "5ep", "gamma": 0.5})


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rerun a run (saved as config.json and inside each checkpoint).

    ``schedule`` is one :class:`~steplr.schedules.spec.ScheduleSpec` (kind, params, optional warm-up), checked
    when the config is made, so a bad schedule fails before any data is loaded or file written.
    """

    recipe: str = "custom"
    dataset: str = "qwerty"
    model: str = "qwerty"
    optimizer: str = "sgd"
    lr: float = 0.01
    batch_size: int = 32
    epochs: int = 20
    schedule: ScheduleSpec = field(default_factory=_recipe_schedule)
    interval: str = "iteration"
    seed: int = 0
    validation: float = 0.0  # fraction of the training set held out (steplr.training.data.split_validation); 0: none
    momentum: float = 0.0  # SGD's momentum (torch.optim.SGD, dampening 0)
    nesterov: bool = False  # SGD's Nesterov momentum (needs momentum > 0)
    weight_decay: float = 0.0  # L2 penalty for sgd and adam, decoupled decay for adamw, as torch's optimizers
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise SteplrValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not isinstance(self.schedule, ScheduleSpec):
            raise SteplrTypeError(f"schedule must be a ScheduleSpec, got {self.schedule!r}")
        if self.interval not in INTERVALS:
            raise SteplrValueError(f"interval must be one of {', '.join(INTERVALS)}, got {self.interval!r}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SteplrValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise SteplrValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        v = self.validation
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise SteplrValueError(f"validation must be a fraction in [0, 1), got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SteplrValueError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        self._check_optimizer_settings()

    def _check_optimizer_settings(self) -> None:
        m, wd = self.momentum, self.weight_decay
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
            raise SteplrValueError(f"momentum must be a number in [0, 1), got {m!r}")
        if m and self.optimizer != "sgd":
            raise SteplrValueError(f"momentum is SGD's setting; {self.optimizer} takes none, got momentum {m!r}")
        if not isinstance(self.nesterov, bool):
            raise SteplrValueError(f"nesterov must be True or False, got {self.nesterov!r}")
        if self.nesterov and not m:
            raise SteplrValueError("nesterov needs a momentum > 0, got momentum 0")
        if isinstance(wd, bool) or not isinstance(wd, (int, float)) or not 0 <= wd < math.inf:
            raise SteplrValueError(f"weight_decay must be a finite number >= 0, got {wd!r}")
        if self.loss not in LOSSES:
            raise SteplrValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")

    def steps_per_epoch(self, batches: int) -> int:
        """Scheduler steps per epoch: every batch when stepping per iteration, else one."""
        return batches if self.interval == "iteration" else 1

    def build_schedule(self, batches: int) -> Schedule:
        """The config's closed-form schedule, resolved in scheduler steps (run-length defaults: the whole run).

        Raises:
            SteplrValueError: for a reactive kind (``plateau``), which has no closed form.
        """
        return self.schedule.build(self.epochs, self.steps_per_epoch(batches))

    def plateau(self) -> tuple[float, int]:
        """``(factor, patience)`` of a ``plateau`` run, as ``ReduceLROnPlateau`` takes them."""
        return self.schedule.plateau()

    def with_settings(self, **settings: Any) -> TrainConfig:
        """A copy with settings applied by their flat names (the CLI's): fields such as ``lr`` or ``epochs``, and
        schedule settings (``schedule`` as a kind name or a spec, each kind's parameters, ``warmup``...) applied to
        the spec. Parameters of the spec's kind that are not given carry over; a given one the kind does not read
        is refused. None values are ignored.

        Raises:
            SteplrValueError: for an unknown setting, or a bad value (named).
        """
        given = {k: v for k, v in settings.items() if v is not None}
        fields = {f.name for f in dataclasses.fields(self)} - {"schedule"}
        unknown = sorted(set(given) - fields - SETTINGS)
        if unknown:
            raise SteplrValueError(f"unknown setting {unknown[0]!r}")
        direct = {k: v for k, v in given.items() if k in fields}
        flat = {k: v for k, v in given.items() if k in SETTINGS}
        spec = self.schedule
        if isinstance(flat.get("schedule"), ScheduleSpec):
            spec = flat.pop("schedule")
        if flat:
            kind = flat.get("schedule", spec.kind)
            spec = ScheduleSpec.from_settings(kind, {**_carried(spec, kind), **flat}, strict=set(flat))
        return dataclasses.replace(self, schedule=spec, **direct)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["schedule"] = self.schedule.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config :meth:`as_dict` wrote; also reads the flat format of older runs (``schedule`` a name, each
        kind's parameters side by side), so their config.json and checkpoints still resume."""
        known = {f.name for f in dataclasses.fields(cls)}
        flat = not isinstance(data.get("schedule"), Mapping)
        unknown = sorted(set(data) - known - (SETTINGS | _OLD_SETTINGS if flat else set()))
        if unknown:
            raise SteplrValueError(f"unknown config keys {unknown}")
        values = {k: v for k, v in data.items() if k in known}
        if flat:
            old = {k: v for k, v in data.items() if k in SETTINGS}
            kind = old.get("schedule", "step")
            values["schedule"] = ScheduleSpec.from_settings(kind, old)
        else:
            values["schedule"] = ScheduleSpec.from_dict(data["schedule"])
        return cls(**values)


_OLD_SETTINGS = frozenset({"step_size", "gamma", "milestones", "t_max", "eta_min", "plateau_patience"})


@dataclass
class EpochRecord:
    epoch: int  # 1-based, as the notes print it
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float  # the LR applied at the epoch's last iteration
    val_loss: float = math.nan  # NaN when the run holds out no validation split
    val_acc: float = math.nan


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    iteration_lrs: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: a metric that is not a number (no validation split, a diverged model) is None."""
        epochs = [{k: _finite_or_none(v) for k, v in dataclasses.asdict(e).items()} for e in self.epochs]
        return {"epochs": epochs, "iteration_lrs": list(self.iteration_lrs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        epochs = [EpochRecord(**{k: math.nan if v is None else v for k, v in e.items()}) for e in data["epochs"]]  # type: ignore[arg-type]
        return cls(epochs, [float(x) for x in data["iteration_lrs"]])

    @property
    def diverged_at(self) -> int | None:
        """The first epoch (1-based) whose training or test loss is not a finite number, or None."""
        return next(
            (e.epoch for e in self.epochs if not (math.isfinite(e.train_loss) and math.isfinite(e.test_loss))), None
        )

    def column(self, name: str) -> list[float]:
        return [float(getattr(e, name)) for e in self.epochs]


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _carried(spec: ScheduleSpec, kind: str) -> dict[str, Any]:
    """The settings of ``spec`` that carry over to ``kind``: all of them for the same kind; for another kind only
    parameters it declares exactly as the old kind does (a step decay's ``gamma`` is not ``cyclic``'s per-step
    ``exp_range`` factor, so switching a recipe to cyclic must not inherit it)."""
    settings = spec.settings()
    new = lookup(kind)
    if new.name == spec.entry.name:
        return settings
    old = spec.entry
    return {k: v for k, v in settings.items() if (p := old.param(k)) is None or new.param(k) == p}
