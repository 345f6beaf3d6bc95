"""A schedule as a value: :class:`ScheduleSpec` is a registry kind, its parameters and an optional warm-up.

A spec checks itself when it is made (an unknown kind, a parameter the kind does not read, a bad value: each raises
:class:`~steplr.errors.SteplrValueError` naming it), round-trips through JSON, and builds the :class:`Schedule` of a
run once the run's length is known. "A default of the whole run" is resolved here and nowhere else.

>>> spec = ScheduleSpec("cosine", warmup=2)
>>> spec.as_dict()
{'kind': 'cosine', 't_max': None, 'eta_min': 0.0, 'warmup': 2, 'warmup_start_factor': 0.1}
>>> spec.build(epochs=10, steps_per_epoch=1).params()["schedules"][1]["t_max"]
8

Imports NumPy only (through the kinds).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import check_duration, check_fraction
from steplr.schedules.durations import resolve_duration
from steplr.schedules.kinds import LinearWarmup, Schedule, join
from steplr.schedules.registry import Kind, lookup, params_by_name

__all__ = ["ScheduleSpec", "SETTINGS", "WARMUP_SETTINGS"]

WARMUP_SETTINGS = ("warmup", "warmup_start_factor")


def _settings() -> frozenset[str]:
    return frozenset({"schedule", *WARMUP_SETTINGS, *params_by_name()})


SETTINGS = _settings()  # every flat setting name a schedule reads: "schedule", the warm-up and each kind's params


@dataclass(frozen=True, eq=False)
class ScheduleSpec:
    """One schedule: a kind of the registry with its parameters, and an optional linear warm-up in front of it.

    Parameters not given take the kind's defaults; one whose default is the run's length stays None until
    :meth:`build`. ``warmup`` (a duration) applies to closed-form kinds only.

    Raises:
        SteplrValueError: for an unknown kind, a parameter the kind does not read, a missing required one, or a
            bad value or type (each named).
    """

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    warmup: int | str | None = None
    warmup_start_factor: float = 0.1

    def __post_init__(self) -> None:
        try:
            self._check()
        except TypeError as error:  # a config is bad input either way: one error type, the message kept
            raise SteplrValueError(str(error)) from None

    def _check(self) -> None:
        entry = lookup(self.kind)
        if not isinstance(self.params, Mapping):
            raise SteplrTypeError(f"schedule params must be a mapping of names to values, got {self.params!r}")
        taken = [p.name for p in entry.params]
        for name in self.params:
            if name not in taken:
                reads = f"it reads {', '.join(taken)}" if taken else "it reads none"
                raise SteplrValueError(f"schedule {self.kind!r} has no parameter {name!r} ({reads})")
        values: dict[str, Any] = {}
        for param in entry.params:
            given = self.params.get(param.name)
            if given is None and param.required:
                raise SteplrValueError(f"schedule {self.kind!r} needs {param.name}")
            values[param.name] = param.default if given is None else param.check(given)
        object.__setattr__(self, "params", MappingProxyType(values))
        self._check_values(entry)
        self._check_warmup(entry)

    def _check_values(self, entry: Kind) -> None:
        """The kind's own checks: its class is made once (a run-length default stands in as one epoch, which the
        class checks as a duration and leaves the checks that need steps to :meth:`build`)."""
        if entry.check is not None:
            entry.check(self.params)
        if entry.schedule is not None:
            run_length = {p.name for p in entry.params if p.run_length}
            entry.schedule(**{k: "1ep" if v is None and k in run_length else v for k, v in self.params.items()})

    def _check_warmup(self, entry: Kind) -> None:
        if self.warmup is None:
            return
        if entry.reactive:
            raise SteplrValueError(f"warmup applies to closed-form schedules, not to {self.kind!r}")
        check_duration(self.warmup, "warmup")
        object.__setattr__(
            self, "warmup_start_factor", float(check_fraction(self.warmup_start_factor, "warmup_start_factor"))
        )

    @property
    def entry(self) -> Kind:
        """The kind's registry entry."""
        return lookup(self.kind)

    @property
    def reactive(self) -> bool:
        """True for a kind that follows the loss (``plateau``): it has no closed form to build."""
        return self.entry.reactive

    def build(self, epochs: int, steps_per_epoch: int, *, flags: bool = False) -> Schedule:
        """The schedule of a run of ``epochs`` epochs of ``steps_per_epoch`` scheduler steps, resolved in steps.

        A warm-up comes first; the kind starts after it, so a run-length default covers the rest of the run, and
        times in the run (``milestones``) stay where they are in the whole run. ``flags``: errors name the CLI's
        flags and show durations as typed there (``--warmup 2``), not the API's names.

        Raises:
            SteplrValueError: for a reactive kind, a warm-up that covers the run, or a time in the run inside it.
        """
        entry = self.entry
        if entry.schedule is None:
            raise SteplrValueError(f"schedule {self.kind!r} has no closed form")
        name = _flag if flags else _name
        total = epochs * steps_per_epoch
        warm = 0 if self.warmup is None else resolve_duration(self.warmup, "warmup", steps_per_epoch)
        if warm >= total:
            raise SteplrValueError(
                f"{name('warmup')} {_typed(self.warmup, flags)} covers the whole run of {epochs} epochs"
            )
        kwargs = dict(self.params)
        for param in entry.params:
            value = kwargs[param.name]
            if value is None and param.run_length:
                kwargs[param.name] = total - warm
            elif param.in_run:
                moved = [resolve_duration(v, param.name, steps_per_epoch) - warm for v in value]
                if any(m <= 0 for m in moved):
                    shown = ",".join(_typed(v, flags) for v in value) if flags else list(value)
                    raise SteplrValueError(
                        f"{name(param.name)} must come after the warm-up ({_typed(self.warmup, flags)}), got {shown}"
                    )
                kwargs[param.name] = moved
        main = entry.schedule(**kwargs).resolve(steps_per_epoch)
        if not warm:
            return main
        return join([LinearWarmup(warm, self.warmup_start_factor), main], [warm])

    def plateau(self) -> tuple[float, int]:
        """``(factor, patience)`` of the reactive ``plateau`` kind, as torch's ``ReduceLROnPlateau`` takes them."""
        if self.kind != "plateau":
            raise SteplrValueError(f"schedule {self.kind!r} is not plateau")
        return float(self.params["gamma"]), int(self.params["plateau_patience"])

    def describe(self) -> str:
        """The kind with every setting it reads, defaults included: ``step (step_size 5ep, gamma 0.5)``."""
        parts = []
        for param in self.entry.params:
            key, value = param.shown or param.name, self.params[param.name]
            if value is None:
                value = (param.unset or "unset") if param.optional else "the run"
            elif isinstance(value, tuple):
                value = ",".join(map(str, value))
            parts.append(f"{key} {value:.6g}" if isinstance(value, float) else f"{key} {value}")
        if self.warmup is not None:
            parts.append(f"warm-up {self.warmup} from x{self.warmup_start_factor:g}")
        return f"{self.kind} ({', '.join(parts)})" if parts else self.kind

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the kind, its params, the warm-up if any (:meth:`from_dict` reads it back)."""
        data: dict[str, Any] = {"kind": self.kind}
        data.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()})
        if self.warmup is not None:
            data.update(warmup=self.warmup, warmup_start_factor=self.warmup_start_factor)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleSpec:
        """The spec :meth:`as_dict` wrote."""
        if not isinstance(data, Mapping) or "kind" not in data:
            raise SteplrValueError(f"a schedule must be a mapping with a 'kind' key, got {data!r}")
        rest = {k: v for k, v in data.items() if k not in ("kind", *WARMUP_SETTINGS)}
        return cls(data["kind"], rest, data.get("warmup"), data.get("warmup_start_factor", 0.1))

    @classmethod
    def from_settings(cls, kind: str, settings: Mapping[str, Any], strict: Collection[str] = ()) -> ScheduleSpec:
        """The spec of ``kind`` from flat settings (the CLI's and old configs' names): each parameter of the kind
        found in ``settings`` (None: not set), the warm-up; other kinds' settings are left out, unless named in
        ``strict`` (the user set them), which is refused."""
        entry = lookup(kind)
        taken = {p.name for p in entry.params}
        for name in strict:
            if name not in taken and name not in (*WARMUP_SETTINGS, "schedule"):
                raise SteplrValueError(
                    f"{name} does not apply to schedule {kind!r}"
                    + (f" (it reads {', '.join(sorted(taken))})" if taken else "")
                )
        params = {k: v for k, v in settings.items() if k in taken and v is not None}
        warmup = settings.get("warmup")
        factor = settings.get("warmup_start_factor")
        return cls(kind, params, warmup, 0.1 if factor is None else factor)

    def settings(self) -> dict[str, Any]:
        """The flat settings of this spec (inverse of :meth:`from_settings`)."""
        return {
            "schedule": self.kind,
            **self.params,
            "warmup": self.warmup,
            "warmup_start_factor": self.warmup_start_factor,
        }

    def _key(self) -> tuple[Any, ...]:
        return (self.entry.name, tuple(self.params.items()), self.warmup, self.warmup_start_factor)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScheduleSpec) and self.kind == other.kind and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        warm = (
            "" if self.warmup is None else f", warmup={self.warmup!r}, warmup_start_factor={self.warmup_start_factor!r}"
        )
        return f"ScheduleSpec({self.kind!r}, {dict(self.params)!r}{warm})"


def _name(name: str) -> str:
    return name


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _typed(value: Any, flags: bool) -> str:
    """A duration as the CLI reads it when ``flags`` (epochs bare: ``"10ep"`` -> ``"10"``), else as given."""
    return str(value).removesuffix("ep") if flags else str(value)
