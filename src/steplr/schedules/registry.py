"""The registry: the one list of schedule kinds, and everything the rest of steplr needs to know about each.

An entry (``Kind``) names a kind as the command line and saved configs spell it, the ``Schedule`` class
that computes it (none for a reactive kind such as ``plateau``, which follows the loss and has no closed form), its
parameters (``Param``: value type, flag, help, default, whether the default is the run's length), and the fair
default ``compare`` gives it. The CLI flags of every command, config validation, ``compare``'s list and the LR tables
are made from these entries, so adding a closed-form kind is one class in ``steplr.schedules.kinds``, one entry
here, and its tests.

Imports NumPy only (through the kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from steplr.errors import SteplrTypeError, SteplrValueError
from steplr.schedules._checks import check_duration, check_fraction, check_gamma, check_real
from steplr.schedules.cycles import ANNEAL_STRATEGIES, CYCLIC_MODES, CosineWarmRestarts, Cyclic, OneCycle
from steplr.schedules.kinds import (
    Constant,
    ConstantFactor,
    Cosine,
    Exponential,
    Linear,
    MultiStep,
    PolynomialDecay,
    Schedule,
    StepDecay,
)

__all__ = ["Param", "Kind", "KINDS", "lookup", "names", "compared", "params_by_name", "RunShape"]

ValueType = Literal["duration", "durations", "number", "count", "choice", "flag"]


@dataclass(frozen=True)
class RunShape:
    """What a fair default may depend on: the run's length.

    Attributes:
        epochs: the run's epochs.
        steps: its scheduler steps in all.
    """

    epochs: int
    steps: int


@dataclass(frozen=True)
class Param:
    """One parameter of a schedule kind.

    Attributes:
        name: the class's keyword, the key in a spec's params and in old flat configs, and (with ``-`` for ``_``)
            the CLI flag.
        type: the kind of value: ``"duration"``, ``"durations"``, ``"number"``, ``"count"``, ``"choice"`` (one of
            ``choices``, a word) or ``"flag"`` (True or False).
        help: the help text of the CLI flag.
        default: the value when not given; None means required, unless ``run_length`` or ``optional``.
        run_length: None means "the rest of the run after any warm-up".
        in_run: the values are times in the whole run (a warm-up does not move them).
        vary: explain and plot take a comma-separated list and draw one curve per value.
        label: names such a value in a curve's label.
        example: what explain and plot use for a required parameter the user did not give.
        shown: the name a plan's description uses (default ``name``).
        checker: for ``"number"`` parameters, turns the value into a float or raises.
        choices: the words a ``"choice"`` parameter takes.
        least: for ``"count"`` parameters, the smallest value.
        optional: None is a value of its own (the class's meaning of "not set", e.g. cyclic's ``step_size_down``
            as long as ``step_size_up``), which ``unset`` says in words.
        unset: what None means, in words, for an ``optional`` parameter.

    Examples:
        >>> gamma = lookup("step").param("gamma")
        >>> gamma.flag, gamma.default, gamma.required
        ('--gamma', 0.1, False)
        >>> gamma.check(0.5)
        0.5
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
    choices: tuple[str, ...] = ()
    least: int = 0  # for "count" params: the smallest value
    optional: bool = False
    unset: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is None and not self.run_length and not self.optional

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
        if self.type == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise SteplrValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        if self.type == "flag":
            if not isinstance(value, bool):
                raise SteplrTypeError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.type == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < self.least:
                raise SteplrValueError(f"{self.name} must be an integer >= {self.least}, got {value!r}")
            return value
        if isinstance(value, np.ndarray):  # a spec is one schedule; tables broadcast specs, not arrays in them
            raise SteplrTypeError(f"{self.name} must be one number, got an array")
        return float(self.checker(value, self.name))


def _no_fair(run: RunShape) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One schedule kind: the registry's entry for it.

    Attributes:
        name: the kind's name as the command line and saved configs spell it (``"step"``).
        summary: one line about it, for help texts.
        params: its parameters, in the order of the class's keywords.
        schedule: builds the schedule from its params (None: a reactive kind, with no closed form).
        fair: the settings that make it a fair contender in ``compare``, for a run of a given shape.
        check: checks the class cannot make itself, or None.
        aliases: other names it answers to.
        fair_help: the fair default in words, for compare's help.
        compared_by_default: ``compare`` trains it when not told which schedules.

    Examples:
        >>> lookup("multistep").fair(RunShape(epochs=20, steps=400))  # decay at 50% and 75% of the run
        {'milestones': ('10ep', '15ep')}
        >>> lookup("step").reactive, lookup("plateau").reactive
        (False, True)
    """

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


def _fair_constant_factor(run: RunShape) -> dict[str, Any]:
    """The factor held for the first tenth of the run."""
    return {"total_iters": f"{max(1, run.steps // 10)}it"}


def _fair_restarts(run: RunShape) -> dict[str, Any]:
    """Three cycles, each twice as long as the one before, the last ending with the run."""
    return {"t_0": f"{max(1, run.steps // 7)}it", "t_mult": 2}


def _fair_cyclic(run: RunShape) -> dict[str, Any]:
    """Two whole triangles over the run (gamma 1: a gamma carried over from another kind would shrink them)."""
    return {"step_size_up": f"{max(1, run.steps // 4)}it", "gamma": 1.0}


_TOTAL_ITERS = "the time over which the factor applies, e.g. 5 (epochs) or 500it"

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
    Kind(
        "linear-factor",
        "scale the LR by a factor going linearly from start_factor to end_factor, then hold (torch's LinearLR)",
        (
            Param("start_factor", "number", "the factor at the start", default=1.0 / 3, checker=check_fraction),
            Param("end_factor", "number", "the factor from total_iters on", default=1.0, checker=check_fraction),
            Param("total_iters", "duration", _TOTAL_ITERS, run_length=True),
        ),
        schedule=Linear,
        aliases=("linear", "linearlr"),
        fair_help="total_iters the whole run",
    ),
    Kind(
        "constant-factor",
        "factor x LR until total_iters, then the LR (torch's ConstantLR)",
        (
            Param("factor", "number", "the factor before total_iters", default=1.0 / 3, checker=check_fraction),
            Param("total_iters", "duration", _TOTAL_ITERS, example="2ep"),
        ),
        schedule=ConstantFactor,
        fair=_fair_constant_factor,
        aliases=("constantlr",),
        fair_help="total_iters a tenth of the run",
    ),
    Kind(
        "restarts",
        "cosine annealing to eta_min, restarting at the LR; each cycle t_mult x the last (SGDR)",
        (
            Param("t_0", "duration", "the first cycle's length", example="10ep"),
            Param(
                "t_mult",
                "count",
                "each cycle is this many times as long as the one before (an integer >= 1)",
                default=1,
                least=1,
            ),
            Param("eta_min", "number", "the lowest learning rate", default=0.0),
        ),
        schedule=CosineWarmRestarts,
        fair=_fair_restarts,
        aliases=("sgdr", "warm-restarts"),
        fair_help="t_0 a seventh of the run, t_mult 2: three cycles",
    ),
    Kind(
        "onecycle",
        "the one-cycle policy: up from lr/div_factor to lr, then down to far below (torch's OneCycleLR, lr = max_lr)",
        (
            Param("total_steps", "duration", "the cycle's length (then it holds its final LR)", run_length=True),
            Param("pct_start", "number", "the share of the cycle spent rising", default=0.3, checker=check_fraction),
            Param("anneal_strategy", "choice", "how each phase moves", default="cos", choices=ANNEAL_STRATEGIES),
            Param("div_factor", "number", "the cycle starts at lr / div_factor", default=25.0, checker=check_gamma),
            Param(
                "final_div_factor",
                "number",
                "the cycle ends at lr / div_factor / final_div_factor",
                default=1e4,
                checker=check_gamma,
            ),
            Param("three_phase", "flag", "come back down to the start before the final fall", default=False),
        ),
        schedule=OneCycle,
        aliases=("one-cycle", "1cycle"),
        fair_help="total_steps the whole run",
    ),
    Kind(
        "cyclic",
        "cycle between the LR and max_lr in triangles (torch's CyclicLR; lr = its base_lr)",
        (
            Param("max_lr", "number", "the other end of each cycle (a learning rate, not a factor)", example=1.0),
            Param("step_size_up", "duration", "the time of each rise", example="2ep"),
            Param(
                "step_size_down",
                "duration",
                "the time of each fall",
                optional=True,
                unset="as step_size_up",
            ),
            Param(
                "mode",
                "choice",
                "triangle heights: equal, halving, or x gamma per step",
                default="triangular",
                choices=CYCLIC_MODES,
            ),
            Param(
                "gamma",
                "number",
                "exp_range: the height's factor per step",
                default=1.0,
                vary=True,
                label="gamma",
                checker=check_gamma,
            ),
        ),
        schedule=Cyclic,
        fair=_fair_cyclic,
        aliases=("clr",),
        fair_help="step_size_up a quarter of the run (two cycles); max_lr must be given",
    ),
)

_BY_NAME: dict[str, Kind] = {name: kind for kind in KINDS for name in (kind.name, *kind.aliases)}


def names(*, aliases: bool = True, reactive: bool = True) -> tuple[str, ...]:
    """Every kind's name in registry order (aliases right after their kind), e.g. for help texts.

    Args:
        aliases: include each kind's other names.
        reactive: include the kinds without a closed form (``plateau``).

    Returns:
        The names, registry order.

    Examples:
        >>> names(aliases=False)[:4]
        ('none', 'step', 'multistep', 'exponential')
    """
    return tuple(
        n
        for kind in KINDS
        if reactive or not kind.reactive
        for n in ((kind.name, *kind.aliases) if aliases else (kind.name,))
    )


def compared(*, by_default: bool = False) -> tuple[str, ...]:
    """The kinds ``compare`` can train, one name each, the constant-LR baseline first.

    Args:
        by_default: only those ``compare`` trains when not told which.

    Returns:
        The kinds' names, registry order.

    Examples:
        >>> compared(by_default=True)
        ('none', 'step')
    """
    return tuple(n for n in names(aliases=False) if not by_default or lookup(n).compared_by_default)


def lookup(name: str, *, reactive: bool = True) -> Kind:
    """The registry's entry for a kind.

    Args:
        name: a kind's name or alias, as the command line and saved configs spell it.
        reactive: accept a kind without a closed form (``plateau``).

    Returns:
        The kind's entry: its class, parameters, flags and fair default.

    Raises:
        SteplrValueError: for an unknown name (listing the known ones), or a reactive kind when ``reactive`` is
            False (it has no closed form to plan or draw).

    Examples:
        >>> kind = lookup("step")
        >>> [param.name for param in kind.params]
        ['step_size', 'gamma']
        >>> kind.schedule(step_size=10, gamma=0.5).lr(0.1, 25)
        0.025
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
    """Every parameter name across the kinds, with its first declaration and the kinds that read it.

    Returns:
        ``{name: (param, kinds)}``, in registry order.

    Examples:
        >>> params_by_name()["gamma"][1][:2]
        ['step', 'multistep']
    """
    found: dict[str, tuple[Param, list[str]]] = {}
    for kind in KINDS:
        for param in kind.params:
            found.setdefault(param.name, (param, []))[1].append(kind.name)
    return found
