"""``steplr explain``: print the plan of one or more closed-form schedules. Also the schedule options and the
combinations of their values that ``steplr plot`` draws (NumPy only: no torch, no matplotlib)."""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any, TextIO

from steplr.cli.args import (
    DURATIONS,
    UsageError,
    add_schedule_flags,
    add_warmup_options,
    check_lrs,
    name_list,
    number_list,
    positive_int,
    refuse_unread,
    schedule_values,
)
from steplr.schedules.explain import explain, format_plan
from steplr.schedules.kinds import Schedule
from steplr.schedules.registry import Kind, Param, lookup, names
from steplr.schedules.spec import ScheduleSpec

__all__ = ["add_explain_command", "add_schedule_arguments", "cmd_explain", "combinations", "described"]


def described(what: str) -> str:
    """A command's description: ``what``, then how durations read."""
    return f"{what} {DURATIONS[0].upper()}{DURATIONS[1:]}."


def _explain_default(param: Param, readers: list[str]) -> str:
    """What an unset flag means in explain and plot."""
    if param.run_length:
        return "(default: the whole run after any warm-up)"
    if param.optional:
        return f"(default: {param.unset})"
    if param.type == "flag":
        return "(default: off)" if param.default is False else "(default: on)"
    value = param.example if param.example is not None else param.default
    return "" if value is None else f"(default: {value:g})" if isinstance(value, float) else f"(default: {value})"


def add_schedule_arguments(parser: argparse.ArgumentParser, lists: bool) -> None:
    """The options of explain and plot: schedules, LRs, their parameters, warm-up and the run's length."""
    many = " (comma-separated values draw one curve each)" if lists else ""
    parser.add_argument(
        "--schedule", type=name_list, default=["step"], help=f"one of {', '.join(names(reactive=False))}{many}"
    )
    parser.add_argument("--lr", type=number_list, default=[0.1], help=f"initial learning rate{many}")
    add_schedule_flags(parser, closed_forms=True, lists=lists, default_note=_explain_default)
    add_warmup_options(
        parser,
        "linear warm-up first, e.g. 2 (epochs) or 500it (default: no warm-up)",
        0.1,
        "warm-up starts at this x lr",
    )
    parser.add_argument("--epochs", type=positive_int, required=True, help="length of the run in epochs (required)")
    parser.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        default=1,
        help="scheduler steps per epoch: batches per epoch when stepping per iteration, 1 when stepping per epoch",
    )


def add_explain_command(commands: Any) -> None:
    parser = commands.add_parser(
        "explain",
        help="print the plan: constant intervals, decays, final LR, warnings",
        description=described("Print the plan of a schedule."),
    )
    add_schedule_arguments(parser, lists=False)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the plan as JSON (a plan of more than 1000 intervals lists the first and last "
        "500; interval_count and intervals_omitted say so)",
    )


def _typed_form(value: str) -> str:
    """A canonical duration the way the CLI reads it: epochs bare ("10ep" -> "10"), iterations with "it"."""
    return value.removesuffix("ep")


def _kind_values(kind: Kind, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every combination of the kind's parameter values the arguments give (a list flag gives one per value)."""
    given = schedule_values(args, kind.name)
    combos: list[dict[str, Any]] = [{}]
    for param in kind.params:
        value = given.get(param.name, param.example if param.example is not None else None)
        if value is None and param.required:
            raise UsageError(f"--schedule {kind.name} needs {param.flag} ({param.help})")
        choices = value if param.vary and isinstance(value, list) else [value]
        combos = [{**c, param.name: v} for c in combos for v in choices]
    return combos


def _label(kind: str, entry: Kind, values: dict[str, Any], lr: float) -> str:
    parts = [kind]
    for param in entry.params:
        value = values[param.name]
        if param.vary and value is not None:
            shown = f"{value:g}" if isinstance(value, float) else _typed_form(value)
            parts.append(f"{param.label} {shown}")
    return ", ".join([*parts, f"lr {lr:g}"])


def combinations(args: argparse.Namespace) -> list[tuple[str, Schedule, float]]:
    """Every (label, schedule, lr) the arguments ask for, validated."""
    entries = [lookup(kind, reactive=False) for kind in args.schedule]
    refuse_unread(args, args.schedule, closed_forms=True)
    check_lrs(args.lr)
    found = []
    for kind, entry in zip(args.schedule, entries):
        for values, lr in itertools.product(_kind_values(entry, args), args.lr):
            spec = ScheduleSpec(kind, values, args.warmup, args.warmup_start_factor)
            schedule = spec.build(args.epochs, args.steps_per_epoch, flags=True)
            found.append((_label(kind, entry, values, lr), schedule, lr))
    return found


def cmd_explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    plans = [(label, explain(s, lr, args.epochs, args.steps_per_epoch)) for label, s, lr in combinations(args)]
    if args.json:
        data = [plan.as_dict() for _, plan in plans]
        json.dump(data[0] if len(data) == 1 else data, out, indent=2)
        out.write("\n")
        return 0
    blocks = ["\n".join(format_plan(label, plan)) for label, plan in plans]
    out.write("\n\n".join(blocks) + "\n")
    return 0
