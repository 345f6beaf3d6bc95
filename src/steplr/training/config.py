"""What a run is and what it recorded: :class:`TrainConfig`, :class:`EpochRecord`, :class:`History`.

Imports no torch, so configs and histories can be read, validated and reported on without it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from steplr.schedules.durations import resolve_duration
from steplr.schedules.kinds import SCHEDULE_NAMES, LinearWarmup, Schedule, by_name, join

__all__ = ["TrainConfig", "EpochRecord", "History", "OPTIMIZERS", "INTERVALS", "MAX_SEED"]

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes no larger seed
OPTIMIZERS = ("sgd", "adam")
INTERVALS = ("iteration", "epoch")


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rerun a run (saved as config.json and inside each checkpoint)."""

    recipe: str = "custom"
    dataset: str = "qwerty"
    model: str = "qwerty"
    optimizer: str = "sgd"
    lr: float = 0.01
    batch_size: int = 32
    epochs: int = 20
    schedule: str = "step"
    step_size: int | str = "5ep"
    gamma: float = 0.5
    milestones: tuple[int | str, ...] = ()
    t_max: int | str | None = None
    eta_min: float = 0.0
    interval: str = "iteration"
    plateau_patience: int = 2
    seed: int = 0
    validation: float = 0.0  # fraction of the training set held out (steplr.training.data.split_validation); 0: none
    warmup: int | str | None = None  # a linear warm-up in front of the schedule (closed forms only)
    warmup_start_factor: float = 0.1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in (*SCHEDULE_NAMES, "plateau"):
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of "
                             f"{', '.join((*SCHEDULE_NAMES, 'plateau'))}")
        if self.interval not in INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {self.interval!r}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        v = self.validation
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ValueError(f"validation must be a fraction in [0, 1), got {v!r}")
        if self.warmup is not None and self.schedule == "plateau":
            raise ValueError("warmup applies to closed-form schedules, not to 'plateau'")
        g = self.gamma
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 < g < math.inf:
            raise ValueError(f"gamma must be a finite number > 0, got {g!r}")
        if self.schedule == "plateau" and not g < 1:  # torch's ReduceLROnPlateau multiplies the LR by it
            raise ValueError(f"gamma of plateau must be a number in (0, 1), got {g!r}")
        p = self.plateau_patience
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise ValueError(f"plateau_patience must be an integer >= 0, got {p!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")

    def steps_per_epoch(self, batches: int) -> int:
        """Scheduler steps per epoch: every batch when stepping per iteration, else one."""
        return batches if self.interval == "iteration" else 1

    def build_schedule(self, batches: int) -> Schedule:
        """The config's closed-form schedule, resolved in scheduler steps (``t_max`` defaults to the whole run).

        Raises:
            ValueError: for ``plateau``, which reacts to the loss and has no closed form.
        """
        if self.schedule == "plateau":
            raise ValueError("schedule 'plateau' has no closed form")
        spe = self.steps_per_epoch(batches)
        total = self.epochs * spe
        # With a warm-up the main schedule starts after it: t_max defaults to the rest of the run and milestones
        # stay positions in the whole run (as in `steplr explain --warmup`).
        warmup = 0 if self.warmup is None else resolve_duration(self.warmup, "warmup", spe)
        if warmup >= total:
            raise ValueError(f"warmup {self.warmup} covers the whole run of {self.epochs} epochs")
        milestones = [resolve_duration(m, "milestones", spe) - warmup for m in self.milestones] or None
        if milestones and min(milestones) <= 0:
            raise ValueError(f"milestones must come after the warm-up ({self.warmup}), got {list(self.milestones)}")
        main = by_name(
            self.schedule,
            step_size=self.step_size,
            gamma=self.gamma,
            milestones=milestones,
            t_max=self.t_max if self.t_max is not None else total - warmup,
            eta_min=self.eta_min,
        ).resolve(spe)
        if not warmup:
            return main
        return join([LinearWarmup(warmup, self.warmup_start_factor), main], [warmup])

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        values = dict(data)
        values["milestones"] = tuple(values.get("milestones", ()))
        return cls(**values)


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
        return next((e.epoch for e in self.epochs if not (math.isfinite(e.train_loss) and math.isfinite(e.test_loss))),
                    None)

    def column(self, name: str) -> list[float]:
        return [float(getattr(e, name)) for e in self.epochs]


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
