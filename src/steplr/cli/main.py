"""The ``steplr`` command: the top-level parser, one subcommand per module, and :func:`main`, the one place where
errors become exit codes.

Values are read by :mod:`steplr.cli.args` (a bare duration is epochs there). Every error steplr raises on purpose
(:class:`steplr.errors.SteplrError`) is one line on stderr and exit code 2 (1 for a diverged run, 3 for a study
storage lost while searching); a module of a missing extra says which extra to install (exit 2); Ctrl-C and SIGTERM
exit 130; anything else is a bug and is shown as one: a traceback and exit code 1. Library warnings are hidden.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import gc
import io
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from steplr import __version__
from steplr._extras import missing_extra
from steplr.cli.args import DURATIONS, Parser
from steplr.cli.compare import add_compare_command, cmd_compare
from steplr.cli.explain import add_explain_command, cmd_explain
from steplr.cli.plot import add_plot_command, cmd_plot
from steplr.cli.sweep import add_sweep_command, cmd_sweep
from steplr.cli.train import add_train_command, cmd_train
from steplr.errors import DivergedError, Interrupted, SteplrError

__all__ = ["main", "entrypoint", "build_parser"]

Command = Callable[[argparse.Namespace, TextIO, TextIO], int]
# Each subcommand's function: (arguments, standard output, standard error) -> exit code. Looked up by name when a
# command runs, so that a test can put another function in its place.
COMMANDS: dict[str, Command] = {
    "explain": cmd_explain,
    "plot": cmd_plot,
    "train": cmd_train,
    "compare": cmd_compare,
    "sweep": cmd_sweep,
}


def build_parser() -> Parser:
    """The whole ``steplr`` command line, each subcommand's options from its module."""
    parser = Parser(
        prog="steplr",
        description="Exact learning-rate schedules: see the plan before you train.",
        epilog=f"In every command, {DURATIONS}. Run 'steplr COMMAND --help' for a command's options. "
        "Exit codes: 0 done; 1 the loss diverged (train); 2 bad input or an unusable file; 3 the "
        "Optuna study's storage failed while searching (rerun the same command to continue); "
        "130 interrupted (Ctrl-C, SIGTERM).",
    )
    parser.add_argument(
        "--version", action="version", version=f"steplr {__version__}", help="print the version and exit"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=Parser, help="one of the commands below"
    )
    for add in (add_explain_command, add_plot_command, add_train_command, add_compare_command, add_sweep_command):
        add(commands)
    return parser


def _run(parser: Parser, argv: Sequence[str] | None, out: TextIO, err: TextIO, running: list[str]) -> int:
    """Parse and run one command (its name appended to ``running`` once known)."""
    with contextlib.redirect_stdout(out):  # --help and --version print to sys.stdout
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        err.write(parser.format_help())
        return 2
    running.append(args.command)
    return COMMANDS[args.command](args, out, err)  # train, compare and sweep print plan warnings on err


def _storage_lost(error: SteplrError) -> bool:
    """A study storage lost mid-search (exit code 3: rerunning continues it). Only the search imports its module."""
    storage = sys.modules.get("steplr.experiments.tune_storage")
    return storage is not None and isinstance(error, storage.StorageLost)


def _bug(err: TextIO) -> int:
    """An error steplr did not raise on purpose: shown whole, so it can be reported and fixed."""
    err.write(traceback.format_exc())
    return 1


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; return the exit code (0 success, 1 diverged or a bug (with a traceback), 2 bad input
    or a missing extra, 3 a study storage lost, 130 Ctrl-C or SIGTERM, 141 the reader of a run's output left)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else (sys.stderr or io.StringIO())  # stderr closed too: nowhere to say anything
    if out is None:  # started with standard output closed (`steplr explain >&-`): Python gives no sys.stdout
        err.write("steplr: error: standard output is closed; redirect it to a file or /dev/null instead\n")
        return 2
    parser = build_parser()
    running: list[str] = []
    try:
        with _third_party_warnings_hidden(), _sigterm_interrupts():
            return _run(parser, argv, out, err, running)
    except DivergedError as error:
        err.write(f"steplr: {error}\n")
        return 1
    except SteplrError as error:
        err.write(f"steplr: error: {error}\n")
        return 3 if _storage_lost(error) else 2
    except ModuleNotFoundError as error:
        missing = missing_extra(error, running[0] if running else None)
        if missing is None:  # a module of steplr's own or of the core: a broken install or a bug
            return _bug(err)
        err.write(f"steplr: error: {missing}\n")
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what the command had claimed was removed on the way out
        _forget_the_interrupt()
        where = f": {stop}" if isinstance(stop, Interrupted) and str(stop) else ""
        err.write(f"steplr: interrupted{where}\n")
        return 130
    except BrokenPipeError:  # `steplr ... | head`: the reader left
        _discard_stdout()
        if running[:1] in (["explain"], ["plot"]):
            return 0  # it has read all it wanted
        err.write(f"steplr: {running[0] if running else None} stopped: its standard output was closed by the reader\n")
        return 141  # 128 + SIGPIPE, as for a program the broken pipe ended
    except OSError as error:
        err.write(f"steplr: error: {error.strerror or error}: {error.filename or ''}\n")
        return 2
    except SystemExit as stop:  # --help
        return int(stop.code or 0)
    except Exception:
        return _bug(err)


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
    # of everything alive (torch's modules above all), a large share of a short command's time (measured in
    # benchmarks/RESULTS.md, "command"). Finalizers and atexit handlers still run; only the final sweeps over
    # these objects are skipped, and the operating system reclaims the memory.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entrypoint()
