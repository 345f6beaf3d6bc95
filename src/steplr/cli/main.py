"""The ``steplr`` command: the top-level parser, ``explain`` and ``plot``, printing and exit codes, nothing else.

Values are read by :mod:`steplr.cli.args` (a bare duration is epochs there); train, compare and sweep live in their
own ``cli_*`` modules. Every error a user can cause is one line on stderr and exit code 2; no tracebacks, and no
library's warnings. SIGTERM stops a command as Ctrl-C does.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import gc
import io
import itertools
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from steplr import __version__
from steplr.cli.args import (
    Parser,
    UsageError,
    add_schedule_flags,
    duration,
    name_list,
    number_list,
    positive_int,
    refuse_unread,
    schedule_values,
)
from steplr.cli.runs import RunUsageError, add_run_commands, cmd_compare, cmd_train
from steplr.cli.sweep import add_sweep_command, cmd_sweep
from steplr.errors import DivergedError, Interrupted, TrainError
from steplr.schedules.explain import explain, format_plan
from steplr.schedules.kinds import Schedule
from steplr.schedules.registry import Kind, Param, lookup, names
from steplr.schedules.spec import ScheduleSpec

__all__ = ["main", "entrypoint", "build_parser"]

_DURATIONS = "durations count epochs: 5 or 5ep is 5 epochs, 115it is 115 iterations (scheduler steps)"


def _explain_default(param: Param, readers: list[str]) -> str:
    """What an unset flag means in explain and plot."""
    if param.run_length:
        return "(default: the whole run after any warm-up)"
    value = param.example if param.example is not None else param.default
    return "" if value is None else f"(default: {value:g})" if isinstance(value, float) else f"(default: {value})"


def _add_schedule_arguments(parser: argparse.ArgumentParser, lists: bool) -> None:
    many = " (comma-separated values draw one curve each)" if lists else ""
    parser.add_argument("--schedule", type=name_list, default=["step"],
                        help=f"one of {', '.join(names(reactive=False))}{many}")
    parser.add_argument("--lr", type=number_list, default=[0.1], help=f"initial learning rate{many}")
    add_schedule_flags(parser, closed_forms=True, lists=lists, default_note=_explain_default)
    parser.add_argument("--warmup", type=duration, default=None,
                        help="linear warm-up first, e.g. 2 (epochs) or 500it (default: no warm-up)")
    parser.add_argument("--warmup-start-factor", type=float, default=0.1, help="warm-up starts at this x lr")
    parser.add_argument("--epochs", type=positive_int, required=True, help="length of the run in epochs (required)")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=1,
                        help="scheduler steps per epoch: batches per epoch when stepping per iteration, "
                             "1 when stepping per epoch")


def build_parser() -> Parser:
    """The whole ``steplr`` command line: explain and plot here, train/compare/sweep from their modules."""
    parser = Parser(prog="steplr", description="Exact learning-rate schedules: see the plan before you train.",
                    epilog=f"In every command, {_DURATIONS}. Run 'steplr COMMAND --help' for a command's options. "
                           "Exit codes: 0 done; 1 the loss diverged (train); 2 bad input or an unusable file; 3 the "
                           "Optuna study's storage failed while searching (rerun the same command to continue); "
                           "130 interrupted (Ctrl-C, SIGTERM).")
    parser.add_argument("--version", action="version", version=f"steplr {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser,
                                     help="one of the commands below")
    ex = commands.add_parser("explain", help="print the plan: constant intervals, decays, final LR, warnings",
                             description=f"Print the plan of a schedule. {_DURATIONS[0].upper()}{_DURATIONS[1:]}.")
    _add_schedule_arguments(ex, lists=False)
    ex.add_argument("--json", action="store_true",
                    help="print the plan as JSON (a plan of more than 1000 intervals lists the first and last 500; "
                         "interval_count and intervals_omitted say so)")
    pl = commands.add_parser("plot", help="draw one or more schedules on one figure",
                             description=f"Draw schedules on one figure. {_DURATIONS[0].upper()}{_DURATIONS[1:]}.")
    _add_schedule_arguments(pl, lists=True)
    pl.add_argument("-o", "--output", default="lr.png", help="image file to write (PNG, SVG or PDF)")
    pl.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    pl.add_argument("--log", action="store_true",
                    help="logarithmic LR axis (default: chosen when the LR spans 100x or more)")
    pl.add_argument("--title", default=None,
                    help="figure title, drawn as plain text: $ is a dollar sign (default: none)")
    add_run_commands(commands)
    add_sweep_command(commands)
    return parser


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


def _combinations(args: argparse.Namespace) -> list[tuple[str, Schedule, float]]:
    """Every (label, schedule, lr) the arguments ask for, validated."""
    entries = [lookup(kind, reactive=False) for kind in args.schedule]
    refuse_unread(args, args.schedule, closed_forms=True)
    for lr in args.lr:
        if not lr > 0 or lr == float("inf"):
            raise UsageError(f"--lr must be a finite number > 0, got {lr!r}")
    found = []
    for kind, entry in zip(args.schedule, entries):
        for values, lr in itertools.product(_kind_values(entry, args), args.lr):
            spec = ScheduleSpec(kind, values, args.warmup, args.warmup_start_factor)
            schedule = spec.build(args.epochs, args.steps_per_epoch, flags=True)
            found.append((_label(kind, entry, values, lr), schedule, lr))
    return found


def _cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    plans = [(label, explain(s, lr, args.epochs, args.steps_per_epoch)) for label, s, lr in _combinations(args)]
    if args.json:
        data = [plan.as_dict() for _, plan in plans]
        json.dump(data[0] if len(data) == 1 else data, out, indent=2)
        out.write("\n")
        return 0
    blocks = ["\n".join(format_plan(label, plan)) for label, plan in plans]
    out.write("\n\n".join(blocks) + "\n")
    return 0


def _cmd_plot(args: argparse.Namespace, out: TextIO) -> int:
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
    combos = _combinations(args)
    from steplr.experiments.plots import Curve, plot_schedules

    curves = [Curve(label, schedule, lr) for label, schedule, lr in combos]
    path = plot_schedules(curves, args.epochs, target, args.steps_per_epoch, args.log or None, args.title)
    out.write(f"wrote {path} ({len(curves)} schedule{'s' if len(curves) != 1 else ''})\n")
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; return the exit code (0 success, 1 diverged, 2 bad input, 130 Ctrl-C or SIGTERM, 141
    the reader of a run's output left)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else (sys.stderr or io.StringIO())  # stderr closed too: nowhere to say anything
    if out is None:  # started with standard output closed (`steplr explain >&-`): Python gives no sys.stdout
        err.write("steplr: error: standard output is closed; redirect it to a file or /dev/null instead\n")
        return 2
    parser = build_parser()
    command = None
    try:
        with _third_party_warnings_hidden(), _sigterm_interrupts():
            with contextlib.redirect_stdout(out):  # --help and --version print to sys.stdout
                args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
            command = args.command
            if command is None:
                err.write(parser.format_help())
                return 2
            if command in ("explain", "plot"):
                return (_cmd_explain if command == "explain" else _cmd_plot)(args, out)
            runs = {"train": cmd_train, "compare": cmd_compare, "sweep": cmd_sweep}
            return runs[command](args, out, err)  # these print plan warnings on err
    except DivergedError as error:
        err.write(f"steplr: {error}\n")
        return 1
    except (UsageError, RunUsageError, TrainError) as error:
        err.write(f"steplr: error: {error}\n")
        return 2
    except (ValueError, TypeError) as error:
        err.write(f"steplr: error: {error}\n")
        # A study storage lost mid-search (steplr.experiments.tune.StorageLost) has its own code: rerunning
        # continues it.
        tune = sys.modules.get("steplr.experiments.tune")  # it can only be that error if the search module was imported
        return 3 if tune is not None and isinstance(error, tune.StorageLost) else 2
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what the command had claimed was removed on the way out
        _forget_the_interrupt()
        where = f": {stop}" if isinstance(stop, Interrupted) and str(stop) else ""
        err.write(f"steplr: interrupted{where}\n")
        return 130
    except BrokenPipeError:  # `steplr ... | head`: the reader left
        _discard_stdout()
        if command in ("explain", "plot"):
            return 0  # it has read all it wanted
        err.write(f"steplr: {command} stopped: its standard output was closed by the reader\n")
        return 141  # 128 + SIGPIPE, as for a program the broken pipe ended
    except OSError as error:
        err.write(f"steplr: error: {error.strerror or error}: {error.filename or ''}\n")
        return 2
    except SystemExit as stop:  # --help
        return int(stop.code or 0)


@contextlib.contextmanager
def _third_party_warnings_hidden() -> Iterator[None]:
    """Hide library warnings (torch, matplotlib, numpy) from users: the CLI says what matters to them in its own
    lines (plan warnings, errors). A user's own ``python -W ...`` or ``PYTHONWARNINGS`` still decides."""
    with warnings.catch_warnings():
        if not sys.warnoptions:
            warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the command runs, SIGTERM stops it as Ctrl-C does: a KeyboardInterrupt, so every cleanup the command
    has for Ctrl-C runs (a half-written file removed, a claimed folder emptied, the run left resumable).

    A signal handler's exception is raised wherever the interpreter happens to be. When that is a finalizer (a
    weakref callback during garbage collection: common in torch code) Python reports it as "Exception ignored" and
    carries on; the signal is then sent again a moment later, from a timer thread, until it lands. A repeated
    SIGTERM is ignored, so the cleanup is not cut short (SIGKILL still ends the process at once).
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    terminated: list[int] = []
    again: list[threading.Timer] = []
    main_thread = threading.get_ident()

    def stop(signum: int, frame: object) -> None:
        if terminated and not again:
            return
        again.clear()
        terminated[:] = [signum]
        raise KeyboardInterrupt

    def resend() -> None:  # to the main thread, so that a blocking call there returns to let the handler run
        if hasattr(signal, "pthread_kill"):
            signal.pthread_kill(main_thread, signal.SIGTERM)
        else:  # Windows
            _thread.interrupt_main(signal.SIGTERM)

    def swallowed(unraisable: Any) -> None:
        if terminated and not again and isinstance(unraisable.exc_value, KeyboardInterrupt):
            # not from here: a handler run now would raise inside this hook, and be swallowed again
            again.append(threading.Timer(0.05, resend))
            again[0].daemon = True
            again[0].start()
        else:
            hook(unraisable)

    hook = sys.unraisablehook
    previous = signal.signal(signal.SIGTERM, stop)
    sys.unraisablehook = swallowed
    try:
        yield
    finally:
        for timer in list(again):  # before the handler goes: a signal resent after that would end the process
            timer.cancel()
            timer.join()
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = hook


def _forget_the_interrupt() -> None:
    """Undo CPython's note that a KeyboardInterrupt went unhandled, which it makes when one leaves code run by
    ``exec`` or ``eval`` of a string (the dataclasses module and torch build functions so), even if it is caught
    later, as here. With the note, ``python -m steplr`` ends by killing itself with SIGINT instead of returning
    130. Evaluating a string resets it (``run_eval_code_obj`` in CPython's pythonrun.c)."""
    eval("None")


def _discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that nothing more (the interpreter's final flush included) fails."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file (a test's StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def entrypoint() -> None:
    code = main()
    try:  # what is still buffered goes out now, while a closed pipe can still be told apart from a real error
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:  # the reader left before the last of the output: nothing more to say
        _discard_stdout()
    # The work is done and every file written: let the interpreter's shutdown skip the cyclic garbage collection
    # of everything alive (torch's modules above all), which costs ~0.6 s of a ~3 s `steplr train` here
    # (benchmarks/RESULTS.md, "command"). Finalizers and atexit handlers still run; only the final sweeps over
    # these objects are skipped, and the operating system reclaims the memory.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entrypoint()
