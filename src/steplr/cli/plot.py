"""``steplr plot``: draw one or more closed-form schedules on one figure (needs the ``plot`` extra)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TextIO

from steplr.cli.args import UsageError
from steplr.cli.explain import add_schedule_arguments, combinations, described

__all__ = ["add_plot_command", "cmd_plot"]


def add_plot_command(commands: Any) -> None:
    parser = commands.add_parser(
        "plot", help="draw one or more schedules on one figure", description=described("Draw schedules on one figure.")
    )
    add_schedule_arguments(parser, lists=True)
    parser.add_argument("-o", "--output", default="lr.png", help="image file to write (PNG, SVG or PDF)")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    parser.add_argument(
        "--log", action="store_true", help="logarithmic LR axis (default: chosen when the LR spans 100x or more)"
    )
    parser.add_argument(
        "--title", default=None, help="figure title, drawn as plain text: $ is a dollar sign (default: none)"
    )


def _check_output(args: argparse.Namespace) -> Path:
    """The figure's path, refused before any drawing when it cannot or must not be written."""
    target = Path(args.output)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {args.output}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {args.output}: folder {str(folder)!r} is not writable")
    if target.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--output must end in .png, .svg or .pdf, got {args.output!r}")
    if (target.exists() or target.is_symlink()) and not args.force:
        raise UsageError(f"{args.output} already exists: pass --force to overwrite it")
    return target


def cmd_plot(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    target = _check_output(args)
    combos = combinations(args)
    from steplr.experiments.plots import Curve, plot_schedules

    curves = [Curve(label, schedule, lr) for label, schedule, lr in combos]
    path = plot_schedules(curves, args.epochs, target, args.steps_per_epoch, args.log or None, args.title)
    out.write(f"wrote {path} ({len(curves)} schedule{'s' if len(curves) != 1 else ''})\n")
    return 0
