"""The registry: the one list of schedule kinds, and everything the rest of steplr needs to know about each.

An entry (:class:`Kind`) names a kind as the command line and saved configs spell it, the :class:`Schedule` class
that computes it (none for a reactive kind such as ``plateau``, which follows the loss and has no closed form), its
parameters (:class:`Param`: value type, flag, help, default, whether the default is the run's length), and the fair
default ``compare`` gives it. The CLI flags of every command, config validation, ``compare``'s list and the LR tables
are made from these entries, so adding a closed-form kind is one class in :mod:`steplr.schedules.kinds`, one entry
here, and its tests.

Imports NumPy only (through the kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import check_duration, check_gamma, check_real
from steplr.schedules.kinds import Constant, Cosine, Exponential, MultiStep, PolynomialDecay, Schedule, StepDecay

__all__ = ["Param", "Kind", "KINDS", "lookup", "names", "compared", "params_by_name", "RunShape"]

ValueType = Literal["duration", "durations", "number", "count"]


@dataclass(frozen=True)
class RunShape:
    """What a fair default may depend on: the run's epochs and its scheduler steps in all."""

    epochs: int
    steps: int


@dataclass(frozen=True)
class Param:
    """One parameter of a schedule kind.

    ``name`` is the class's keyword, the key in a spec's params and in old flat configs, and (with ``-`` for ``_``)
    the CLI flag. ``default`` None means required, unless ``run_length``: then None means "the rest of the run after
    any warm-up". ``in_run``: the values are times in the whole run (a warm-up does not move them). ``vary``: explain
    and plot take a comma-separated list and draw one curve per value; ``label`` names such a value in a curve's
    label. ``example`` is what explain and plot use for a required parameter the user did not give. ``shown``: the
    name a plan's description uses (default ``name``).
    """

    name: str
    type: ValueType
    help: str
    default: Any = None
    run_length: bool = False
    in_run: bool = False
    vary: bool = False
    label: str = ""
    example: Any = None
    shown: str = ""
    checker: Callable[[Any, str], Any] = check_real  # for "number" params: the value as a float, or an error

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is None and not self.run_length

    def check(self, value: Any) -> Any:
        """The value in its saved form (durations as given, numbers as float, lists as tuples), or an error."""
        if self.type == "duration":
            check_duration(value, self.name)
            return value
        if self.type == "durations":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise SteplrTypeError(f"{self.name} must be a list of steps, got {value!r}")
            for i, item in enumerate(value):
                check_duration(item, f"{self.name}[{i}]")
            return tuple(value)
        if self.type == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SteplrValueError(f"{self.name} must be an integer >= 0, got {value!r}")
            return value
        if isinstance(value, np.ndarray):  # a spec is one schedule; tables broadcast specs, not arrays in them
            raise SteplrTypeError(f"{self.name} must be one number, got an array")
        return float(self.checker(value, self.name))


def _no_fair(run: RunShape) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One schedule kind. ``schedule`` builds it from its params (None: reactive, no closed form); ``fair`` gives
    the settings that make it a fair contender in ``compare``; ``check`` adds checks the class cannot make."""

    name: str
    summary: str
    params: tuple[Param, ...] = ()
    schedule: Callable[..., Schedule] | None = None
    fair: Callable[[RunShape], dict[str, Any]] = _no_fair
    check: Callable[[Mapping[str, Any]], None] | None = None
    aliases: tuple[str, ...] = ()
    fair_help: str = ""  # the fair default in words, for compare's help
    compared_by_default: bool = False  # in compare's list when --schedules is not given

    @property
    def reactive(self) -> bool:
        return self.schedule is None

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


_GAMMA = Param("gamma", "number", "decay factor", default=0.1, vary=True, label="gamma", checker=check_gamma)


def _fair_multistep(run: RunShape) -> dict[str, Any]:
    """Decay at 50% and 75% of the run."""
    half, three_quarters = max(1, run.epochs // 2), max(1, (3 * run.epochs) // 4)
    marks = sorted({half, three_quarters}) if three_quarters > half else [half]
    return {"milestones": tuple(f"{m}ep" for m in marks)}


def _fair_exponential(run: RunShape) -> dict[str, Any]:
    """100x down over the run (gamma is per scheduler step)."""
    return {"gamma": 0.01 ** (1 / run.steps)}


def _fair_plateau(run: RunShape) -> dict[str, Any]:
    return {"gamma": 0.5, "plateau_patience": 2}


def _check_plateau(params: Mapping[str, Any]) -> None:
    gamma = params["gamma"]
    if not 0 < gamma < 1:  # torch's ReduceLROnPlateau multiplies the LR by it
        raise SteplrValueError(f"gamma of plateau must be a number in (0, 1), got {gamma!r}")


KINDS: tuple[Kind, ...] = (
    Kind("none", "constant LR (no decay)", schedule=Constant, aliases=("constant",), compared_by_default=True),
    Kind(
        "step",
        "decay by gamma every step_size",
        (
            Param(
                "step_size",
                "duration",
                "time between decays, e.g. 5 (epochs), 5ep or 115it",
                vary=True,
                label="step",
                example="10ep",
            ),
            _GAMMA,
        ),
        schedule=StepDecay,
        compared_by_default=True,
    ),
    Kind(
        "multistep",
        "decay by gamma at each milestone",
        (
            Param(
                "milestones",
                "durations",
                "times in the run at which to decay, e.g. 30,60,80 (epochs) or 2300it,4600it",
                in_run=True,
            ),
            _GAMMA,
        ),
        schedule=MultiStep,
        fair=_fair_multistep,
        fair_help="milestones at 50% and 75% of the run",
    ),
    Kind(
        "exponential",
        "decay by gamma every step",
        (_GAMMA,),
        schedule=Exponential,
        fair=_fair_exponential,
        fair_help="gamma for 100x down over the run",
    ),
    Kind(
        "cosine",
        "cosine annealing to eta_min",
        (
            Param("t_max", "duration", "half-period", run_length=True),
            Param("eta_min", "number", "the lowest learning rate", default=0.0),
        ),
        schedule=Cosine,
        fair_help="t_max the whole run",
    ),
    Kind(
        "plateau",
        "decay by gamma when the validation loss stops improving (reacts to the loss)",
        (
            _GAMMA,
            Param(
                "plateau_patience",
                "count",
                "epochs without a better validation loss before it cuts the LR",
                default=2,
                shown="patience",
            ),
        ),
        check=_check_plateau,
        fair=_fair_plateau,
        fair_help="gamma 0.5, patience 2",
    ),
    Kind(
        "polynomial",
        "decay to end_lr along a power of the steps left",
        (
            Param("total", "duration", "the time at which end_lr is reached", run_length=True),
            Param(
                "power",
                "number",
                "the exponent of the decay (1: a straight line)",
                default=1.0,
                vary=True,
                label="power",
            ),
            Param("end_lr", "number", "the learning rate from total on", default=0.0),
        ),
        schedule=PolynomialDecay,
        fair_help="total the whole run",
    ),
)

_BY_NAME: dict[str, Kind] = {name: kind for kind in KINDS for name in (kind.name, *kind.aliases)}


def names(*, aliases: bool = True, reactive: bool = True) -> tuple[str, ...]:
    """Every kind's name in registry order (aliases right after their kind), e.g. for help texts."""
    return tuple(
        n
        for kind in KINDS
        if reactive or not kind.reactive
        for n in ((kind.name, *kind.aliases) if aliases else (kind.name,))
    )


def compared(*, by_default: bool = False) -> tuple[str, ...]:
    """The kinds ``compare`` can train (one name each, the constant-LR baseline first); ``by_default``: only those
    it trains when not told which."""
    return tuple(n for n in names(aliases=False) if not by_default or lookup(n).compared_by_default)


def lookup(name: str, *, reactive: bool = True) -> Kind:
    """The entry of ``name``.

    Raises:
        SteplrValueError: for an unknown name (listing the known ones), or a reactive kind when ``reactive`` is
            False (it has no closed form to plan or draw).
    """
    kind = _BY_NAME.get(name) if isinstance(name, str) else None
    if kind is None:
        raise SteplrValueError(f"unknown schedule {name!r}; expected one of {', '.join(names(reactive=reactive))}")
    if kind.reactive and not reactive:
        raise SteplrValueError(
            f"schedule {name!r} reacts to the loss and has no closed form; expected one of "
            f"{', '.join(names(reactive=False))}"
        )
    return kind


def params_by_name() -> dict[str, tuple[Param, list[str]]]:
    """Every parameter name across the kinds, with its first declaration and the kinds that read it (in order)."""
    found: dict[str, tuple[Param, list[str]]] = {}
    for kind in KINDS:
        for param in kind.params:
            found.setdefault(param.name, (param, []))[1].append(kind.name)
    return found
