"""How the ``steplr`` command reads its arguments: one parser class and one function per kind of value.

Conventions every command follows (imports argparse and the NumPy-only schedule registry: no torch, no matplotlib):

* **Durations on the command line count epochs by default.** ``5`` and ``5ep`` are 5 epochs, ``115it`` is 115
  iterations (scheduler steps when stepping per batch). :func:`duration` turns each into its canonical string
  (``"5ep"``, ``"115it"``), which the Python API resolves with ``steps_per_epoch``. The Python API itself keeps
  torch's meaning: a bare ``int`` there is a number of scheduler steps.
* **Lists are comma-separated**: ``--gamma 0.1,0.5``. An empty item or a value of the wrong kind is one line naming
  the text the user typed.
* **No abbreviations**: ``--seed`` is never read as ``--seeds``. :class:`Parser` sets ``allow_abbrev=False`` and is
  handed down to every subcommand, so commands added with ``commands.add_parser(...)`` get it too.
* **A negative number is a value, never an option**: ``--lr -3``, ``--step-size -3``, ``--validation -3`` reach the
  flag's type (no steplr option looks like a number), which refuses them the same way in every command: a duration,
  a list or a range item by item with :func:`duration`, a fraction with :func:`fraction`, a count with
  :func:`positive_int`, a learning rate with :func:`check_lrs`.
* **Mistakes are one line and exit code 2**: :class:`Parser` raises :class:`UsageError` instead of printing usage and
  exiting; ``steplr.cli.main`` prints it.
* **Options every training command shares** (recipe, ``--out``, ``--force``, data, seeds, validation, memory budget)
  are added by the ``add_*`` functions below, so train, compare and sweep spell and check them alike.
* ``--help`` shows each option's default. Defaults that are ``None`` or ``False`` are not shown: an option whose
  unset value means something should say it in its help text, e.g. "(default: the recipe's value)".

Example, the way a command module uses it::

    sweep = commands.add_parser("sweep", help="...")        # a Parser, like its parent
    sweep.add_argument("--step-size", type=duration_list, default=["1ep", "2ep"], help="...")
    sweep.add_argument("--seeds", type=positive_int, default=3, help="...")
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from steplr.errors import SteplrError
from steplr.schedules.durations import MAX_STEPS, parse_duration
from steplr.schedules.registry import Param, lookup, params_by_name

__all__ = [
    "UsageError",
    "Parser",
    "HelpFormatter",
    "duration",
    "duration_list",
    "number_list",
    "name_list",
    "positive_int",
    "fraction",
    "unit_fraction",
    "duration_space",
    "number_space",
    "memory_size",
    "check_lrs",
    "format_lr",
    "add_schedule_flags",
    "schedule_values",
    "refuse_unread",
    "add_recipe_argument",
    "add_out_option",
    "add_force_option",
    "add_data_options",
    "add_seeds_option",
    "add_validation_option",
    "add_budget_option",
    "add_tensorboard_option",
    "add_warmup_options",
    "DURATIONS",
]

T = TypeVar("T")


class UsageError(SteplrError):
    """A mistake on the command line: ``main`` prints it as one line on stderr and exits with code 2."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, plus "(default: X)" after each option whose default is a real value.

    ``None``, ``False`` and suppressed defaults are left out, and so is any help that already mentions its default.
    Lists are shown the way they are typed: ``step,cosine``.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or "default" in text
        ):
            return text
        shown = _as_typed(default).replace("%", "%%")  # the help text goes through `%` formatting next
        return f"{text} (default: {shown})"


def _as_typed(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_as_typed(item) for item in value)
    return str(value)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises :class:`UsageError`, refuses abbreviations and shows defaults in help.

    ``add_subparsers`` hands this class to every subcommand (argparse builds subparsers with the parent's class and
    only the keywords ``add_parser`` receives, so the defaults below must live here, not in the parent's call).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def duration(text: str) -> str:
    """A CLI duration as its canonical string: ``"5"`` and ``"5ep"`` give ``"5ep"``, ``"115it"`` gives ``"115it"``.

    Raises:
        argparse.ArgumentTypeError: for zero, negative counts, fractions and anything else that is not a duration.
    """
    try:
        parsed = parse_duration(text, "duration")
    except SteplrError as error:
        raise argparse.ArgumentTypeError(f"{error} (a bare number counts epochs)") from None
    if isinstance(parsed, int):
        return f"{parsed}ep"
    return str(parsed)


def _items(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}")
    return items


def _list_of(parse: Callable[[str], T], text: str, what: str) -> list[T]:
    items = _items(text, what)
    found = []
    for item in items:
        try:
            found.append(parse(item))
        except argparse.ArgumentTypeError as error:
            where = f"in {text!r}: " if len(items) > 1 else ""  # a one-item list: the error already names it
            raise argparse.ArgumentTypeError(f"{where}{error}") from None
    return found


def duration_list(text: str) -> list[str]:
    """Comma-separated durations, each as :func:`duration` returns it: ``"1,2ep,50it"`` -> ``["1ep", "2ep",
    "50it"]``."""
    return _list_of(duration, text, "durations")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def number_list(text: str) -> list[float]:
    """Comma-separated numbers as floats: ``"0.1,1e-3"`` -> ``[0.1, 0.001]``. Ranges are checked by the command."""
    return _list_of(_number, text, "numbers")


def name_list(text: str) -> list[str]:
    """Comma-separated names, spaces around them dropped: ``"step, cosine"`` -> ``["step", "cosine"]``."""
    return _items(text, "names")


def positive_int(text: str) -> int:
    """A whole number from 1 to 2**62: ``"5"`` -> ``5``.

    Raises:
        argparse.ArgumentTypeError: for ``0``, negatives, fractions and words.
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A fraction of the training set, from 0 up to (not including) 1: ``"0.2"`` -> ``0.2``.

    Raises:
        argparse.ArgumentTypeError: for words, negatives and anything from 1 up.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.2, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def unit_fraction(text: str) -> float:
    """A factor from 0 to 1, both included (the warm-up's start factor): ``"0.1"`` -> ``0.1``."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def _space(parse: Callable[[str], Any], text: str, what: str) -> str:
    """``text`` as typed, once every item of a list (``a,b``) or both ends of a range (``LOW:HIGH``) parse; what
    is neither (a list and a range at once, a missing end) is left to the engine to name."""
    if ":" not in text:
        _list_of(parse, text, what)
        return text
    ends = text.split(":")
    if len(ends) == 2 and all(end.strip() and "," not in end for end in ends):
        for end in ends:
            try:
                parse(end.strip())
            except argparse.ArgumentTypeError as error:
                raise argparse.ArgumentTypeError(f"in {text!r}: {error}") from None
    return text


def duration_space(text: str) -> str:
    """A list of durations (``1,2,5``) or a range (``1ep:20ep``), checked item by item as :func:`duration` does and
    returned as typed (the sweep engines read it)."""
    return _space(duration, text, "durations")


def number_space(text: str) -> str:
    """A list of numbers (``0.1,0.5``) or a range (``0.05:0.99``), checked item by item and returned as typed."""
    return _space(_number, text, "numbers")


def memory_size(text: str) -> int:
    """``--max-memory``: a size such as 4G or 512M, in bytes."""
    from steplr.training.budget import parse_size

    try:
        return parse_size(text)
    except SteplrError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def check_lrs(values: list[float] | None) -> None:
    """Refuse a base learning rate that is not a finite number > 0 (``--lr`` of every command but Optuna's ranges)."""
    for lr in values or []:
        if not lr > 0 or lr == float("inf"):
            raise UsageError(f"--lr must be a finite number > 0, got {lr!r}")


def format_lr(lr: float) -> str:
    """The ``LR:`` field of the per-epoch log: six decimals, or scientific notation when they would show zero.

    >>> format_lr(0.001)
    '0.001000'
    >>> format_lr(3.2e-8)
    '3.200000e-08'
    """
    if 0 < lr < 1e-6:
        return f"{lr:.6e}"
    return f"{lr:.6f}"


# --------------------------------------------------------------------------- schedule flags, from the registry

_READERS: dict[str, Callable[[str], Any]] = {
    "duration": duration,
    "durations": duration_list,
    "number": float,
    "count": int,
    "choice": str,
}
_LISTS: dict[str, Callable[[str], Any]] = {"duration": duration_list, "number": number_list}


def add_schedule_flags(
    parser: argparse.ArgumentParser, *, closed_forms: bool, lists: bool, default_note: Callable[[Param, list[str]], str]
) -> None:
    """One flag per schedule parameter of the registry (``--step-size``, ``--gamma``...), shared by the kinds that
    read it. Every flag's value is None when not given (so a command can tell, and refuse a flag no chosen kind
    reads); ``default_note(param, readers)`` says in the help what an unset flag means (kind by kind where the
    kinds that share a flag differ). A word parameter takes one of its choices; a flag parameter (``--three-phase``)
    takes no value and sets True.

    ``closed_forms``: leave out parameters only reactive kinds read (explain and plot draw closed forms). ``lists``:
    a parameter marked ``vary`` takes comma-separated values (explain prints, plot draws, one schedule per value).
    """
    many = " (comma-separated values draw one curve each)" if lists else ""
    for name, (param, kinds) in params_by_name().items():
        readers = [k for k in kinds if not (closed_forms and lookup(k).reactive)]
        if not readers:
            continue
        if len(readers) == 1:
            text = f"{readers[0]}: {param.help}"
        else:
            text = param.help if closed_forms else f"{param.help} of {', '.join(readers)}"
        vary = many if param.vary else ""
        help = f"{text}{vary} {_notes(name, readers, default_note)}".rstrip().replace("%", "%%")
        if param.type == "flag":
            parser.add_argument(param.flag, dest=name, action="store_true", default=None, help=help)
            continue
        reader = _LISTS[param.type] if closed_forms and param.vary else _READERS[param.type]
        choices = param.choices or None
        parser.add_argument(param.flag, dest=name, type=reader, choices=choices, default=None, help=help)


def _notes(name: str, readers: list[str], default_note: Callable[[Param, list[str]], str]) -> str:
    """What an unset flag means: one note, or one per group of kinds when the kinds sharing it differ."""
    by_note: dict[str, list[str]] = {}
    for kind in readers:
        param = lookup(kind).param(name)
        assert param is not None  # readers read it
        by_note.setdefault(default_note(param, [kind]), []).append(kind)
    if len(by_note) == 1:
        param = lookup(readers[0]).param(name)
        assert param is not None
        return default_note(param, readers)
    head = "(default: "
    if all(note.startswith(head) and note.endswith(")") for note in by_note):
        parts = [f"{note[len(head) : -1]} for {', '.join(kinds)}" for note, kinds in by_note.items()]
        return f"{head}{'; '.join(parts)})"
    return "; ".join(f"{', '.join(kinds)}: {note or 'no default'}" for note, kinds in by_note.items())


def schedule_values(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The values of ``kind``'s parameters the command line gave (the parameters it left unset are left out)."""
    return {p.name: getattr(args, p.name) for p in lookup(kind).params if getattr(args, p.name, None) is not None}


def refuse_unread(args: argparse.Namespace, kinds: list[str], *, closed_forms: bool) -> None:
    """Refuse a schedule flag that none of ``kinds`` reads (it would be recorded and silently ignored)."""
    chosen = {lookup(k).name for k in kinds}
    for name, (param, readers) in params_by_name().items():
        if getattr(args, name, None) is None or set(readers) & chosen:
            continue
        users = [k for k in readers if not (closed_forms and lookup(k).reactive)]
        raise UsageError(f"{param.flag} applies to {', '.join(users)}; not to {', '.join(kinds)}")


# --------------------------------------------------------------------------- options the training commands share

RECIPES_HELP = "qwerty, digits, mnist or fashion-mnist"
DURATIONS = "durations count epochs: 5 or 5ep is 5 epochs, 115it is 115 iterations (scheduler steps)"


def add_recipe_argument(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    """The recipe positional; ``optional``: it may be left out (``--model`` and ``--data`` stand in for it)."""
    if optional:
        parser.add_argument("recipe", nargs="?", default=None, help=f"{RECIPES_HELP}; or leave out and give --model")
    else:
        parser.add_argument("recipe", help=RECIPES_HELP)


def add_out_option(parser: argparse.ArgumentParser, default: str) -> None:
    """``--out``: the command's folder; ``default`` says which one it is when not given."""
    parser.add_argument("--out", default=None, help=f"run folder (default: {default})")


def add_force_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--force", action="store_true", help=help)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Where the MNIST-like data lives, and whether it may be downloaded."""
    parser.add_argument("--data-dir", default=None, help="folder with (or for) the MNIST/Fashion-MNIST IDX files")
    parser.add_argument("--no-download", action="store_true", help="never download data")


def add_seeds_option(parser: argparse.ArgumentParser, default: int | None, help: str) -> None:
    parser.add_argument("--seeds", type=positive_int, default=default, help=help)


def add_validation_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--validation", type=fraction, default=None, help=help)


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-memory",
        type=memory_size,
        default=None,
        help="refuse work whose estimated peak memory is above this, e.g. 4G (default: half of the "
        "memory available when the command starts)",
    )


def add_tensorboard_option(parser: argparse.ArgumentParser, layout: str, engine: str = "") -> None:
    """``--tensorboard DIR``: write every run's scalars as TensorBoard events under DIR (the extra tensorboard);
    ``layout`` says which run goes where, ``engine`` the only engine that takes the flag."""
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        default=None,
        help=(f"{engine}: " if engine else "")
        + f"also write TensorBoard runs under DIR, {layout}; each holds lr per iteration, loss/* and accuracy/* "
        "(train, validation, test) per epoch (needs the tensorboard extra)",
    )


def add_warmup_options(
    parser: argparse.ArgumentParser, help: str, factor_default: float | None, factor_help: str
) -> None:
    """``--warmup`` (a duration) and ``--warmup-start-factor`` (in [0, 1])."""
    parser.add_argument("--warmup", type=duration, default=None, help=help)
    parser.add_argument("--warmup-start-factor", type=unit_fraction, default=factor_default, help=factor_help)
