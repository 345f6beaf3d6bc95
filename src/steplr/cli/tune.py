"""``steplr sweep --engine optuna``: flags, worker processes, the console summary and the report.

The search and the statistics are in :mod:`steplr.experiments.tune`. The command runs the search (here and in
``--workers - 1`` helper processes sharing the study), then retrains the study's best configs on ``--seeds`` seeds
beside a constant LR (:func:`steplr.experiments.tune.confirm_best`) and writes ``summary.json``, ``trials.csv``,
``best_lr.png`` and ``report.html``. Configs are ranked on each search trial's own validation accuracy (the "trial
val acc" column); every reported comparison is on the test set. The seeds count is recorded in the study, so
``--report`` retrains on the same seeds and rebuilds the same numbers. A study whose trials all diverged (or were
pruned or failed) is a result, not an error: the files say that nothing could be chosen.

On the command line a bare step size counts epochs (``--step-size 1:20`` is ``1ep:20ep``), as everywhere in
steplr's CLI. Helpers are started as ``python -m steplr.cli.tune sweep RECIPE --engine optuna ...`` with the
flags the user typed, except the storage URL (it may hold a password, and a command line is visible to every user of
the machine): that, and the settings no flag carries, reach the helper as one JSON line on its stdin. Helpers run the
search only, each in its own process group, and end with the main process: SIGTERM, SIGHUP or Ctrl-C in the main
process (and any error) stops them and waits for them, and a helper whose parent dies stops by itself (Linux's
parent-death signal, and a check after every epoch).

Exit codes (the :mod:`steplr.cli.main` boundary): a storage that fails while searching raises
:class:`steplr.experiments.tune.StorageLost` (one line, exit code 3); an interrupted search raises
:class:`steplr.errors.Interrupted` (exit code 130). Rerunning the same command continues the study in both cases.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from steplr.cli.args import UsageError, duration
from steplr.cli.runs import batches, check_work, load_data, print_warnings, progress
from steplr.errors import Interrupted, SteplrError

if TYPE_CHECKING:
    import optuna

__all__ = ["cmd_optuna"]

DEFAULT_TRIALS = 30
DEFAULT_SEEDS = 3  # as the grid engine
_FLAGS = {"step_size": "--step-size", "gamma": "--gamma", "lr": "--lr"}
_OUTPUTS = ("report.html", "summary.json", "trials.csv", "best_lr.png")  # what this command writes in --out
_HELPER_STOP_SECONDS = 10.0  # a stopped helper fails its trial and exits; after this long it is killed
_RERUN = "rerun the same command to continue"


@dataclass(frozen=True)
class _Search:
    """The checked settings of one search: what every worker process runs and the report reads."""

    recipe: str
    study: str
    storage: str | None
    out: Path
    trials: int
    workers: int
    seeds: int | None  # None: not given (a search confirms on DEFAULT_SEEDS, --report on the seeds it recorded)
    validation: float
    epochs: int | None
    spaces: dict[str, str | None]  # step_size, gamma, lr as tune.parse_space reads them (lr None: the recipe's)
    data_dir: str | None
    download: bool
    grace: float | None = None  # PostgreSQL: seconds without a heartbeat before a trial is taken over (None: default)
    db_timeout: float | None = None  # PostgreSQL: seconds the server may take to answer (None: the default)


def cmd_optuna(args: argparse.Namespace, out_stream: TextIO, err_stream: TextIO | None = None) -> int:
    """Search (unless ``--report``), then confirm the best configs against a constant LR and report."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is noise here; the table says it all
    search = _settings(args)
    _check_out(search.out, args.force)
    err_stream = err_stream or sys.stderr
    if args.report:
        typed = [flag for kind, flag in _FLAGS.items() if getattr(args, kind) is not None]
        typed += [
            flag for flag, value in (("--epochs", args.epochs), ("--validation", args.validation)) if value is not None
        ]
        if typed:
            raise UsageError(f"--report rebuilds the report from the study's own settings: drop {', '.join(typed)}")
    from steplr.experiments.tune import JOURNAL_FILE, storage_errors
    from steplr.experiments.tune_storage import repair_journal

    if search.storage is None:  # said here, once, before any worker opens the file
        repaired = repair_journal(search.out / JOURNAL_FILE)
        if repaired:
            err_stream.write(f"steplr: warning: {repaired}\n")

    with _log_to(err_stream):
        if not args.report:
            _check_size(search, getattr(args, "max_memory", None))
            _warn_about_plans(search, err_stream)
            _search_with_helpers(args, search, err_stream)
        with storage_errors(search.storage, search.out):
            return _report(search, out_stream, err_stream, rebuilding=args.report)


@contextlib.contextmanager
def _log_to(stream: TextIO) -> Iterator[None]:
    """The search's log lines (a trial taken over, a dead worker's trial retried, a journal repaired) as
    ``steplr: warning: ...`` lines on ``stream``."""
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("steplr: warning: %(message)s"))
    logger = logging.getLogger("steplr")  # steplr.experiments.tune and steplr.experiments.tune_storage
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _check_size(search: _Search, budget: int | None) -> None:
    """Refuse a search whose trials (one run each) or whose confirmation (up to five configs and their constant
    LRs, times the seeds, trained together) would be past steplr's caps or the memory budget."""
    from steplr.experiments.compare import recipe_config

    base = recipe_config(search.recipe, epochs=search.epochs, validation=search.validation)
    data = load_data(base.dataset, argparse.Namespace(data_dir=search.data_dir, no_download=not search.download))
    per_epoch = batches(data, base)
    check_work(f"sweep {search.recipe} (a trial)", 1, base, data, per_epoch, budget)
    check_work(f"sweep {search.recipe} (the confirmation)", 10 * (search.seeds or 3), base, data, per_epoch, budget)


def _warn_about_plans(search: _Search, err_stream: TextIO) -> None:
    """Before searching, explain's warnings for every (step_size, gamma) a search of lists or fixed values can try
    (the warnings do not depend on the base LR; a range has too many plans to list, and the plan of the config
    chosen on validation is printed after the search)."""
    from steplr.experiments.compare import recipe_config
    from steplr.experiments.tune import parse_space
    from steplr.schedules.explain import explain, format_plan
    from steplr.schedules.kinds import StepDecay

    spaces = [parse_space(search.spaces[kind] or "", kind) for kind in ("step_size", "gamma")]
    if any(space.kind == "range" for space in spaces):
        return
    base = recipe_config(search.recipe, epochs=search.epochs, validation=search.validation)
    data = load_data(base.dataset, argparse.Namespace(data_dir=search.data_dir, no_download=not search.download))
    spe = base.steps_per_epoch(batches(data, base))
    for step_size in spaces[0].values:
        for gamma in spaces[1].values:
            plan = explain(StepDecay(step_size, gamma), base.lr, base.epochs, spe)
            print_warnings(f"step {step_size}, gamma {gamma:g}", format_plan("", plan), err_stream)


# --------------------------------------------------------------------------------------------- checking


def _settings(args: argparse.Namespace) -> _Search:
    """Check every flag (nothing on disk is touched); raise UsageError naming the first bad one."""
    from steplr.experiments.compare import DEFAULT_VALIDATION, recipe_config
    from steplr.experiments.tune_storage import shown, storage_problem

    counts = {"trials": args.trials or DEFAULT_TRIALS, "workers": args.workers or 1, "seeds": args.seeds}
    for name, value in counts.items():
        if name == "seeds" and value is None:
            continue  # not given: resolved when the seeds are needed (the default, or what the study recorded)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UsageError(f"--{name} must be a positive integer, got {value!r}")
    validation = DEFAULT_VALIDATION if args.validation is None else args.validation
    if isinstance(validation, bool) or not isinstance(validation, (int, float)) or not 0 < validation < 1:
        raise UsageError(f"--validation must be a fraction in (0, 1) (trials are chosen on it), got {validation!r}")
    epochs = args.epochs
    try:
        recipe_config(args.recipe, epochs=epochs)
    except SteplrError as error:
        raise UsageError(str(error)) from None
    spaces = _spaces(args)
    study = args.study if args.study is not None else f"steplr-{args.recipe}"
    if not study.strip():
        raise UsageError("--study must be a non-empty name")
    if args.storage is not None:
        problem = storage_problem(args.storage)
        if problem is not None:
            raise UsageError(f"--storage {shown(args.storage)!r}: {problem}")
    seconds = _seconds(args)
    return _Search(
        args.recipe,
        study,
        args.storage,
        Path(args.out or f"runs/{args.recipe}-optuna"),
        counts["trials"],
        counts["workers"],
        counts["seeds"],
        float(validation),
        epochs,
        spaces,
        args.data_dir,
        not args.no_download,
        seconds["grace"],
        seconds["db_timeout"],
    )


def _spaces(args: argparse.Namespace) -> dict[str, str | None]:
    """The search spaces of the flags as the study records them (a bare step size read as epochs)."""
    from steplr.experiments.tune import DEFAULT_GAMMA, DEFAULT_STEP_SIZE, SweepError, parse_space

    spaces: dict[str, str | None] = {"step_size": DEFAULT_STEP_SIZE, "gamma": DEFAULT_GAMMA, "lr": None}
    for kind, flag in _FLAGS.items():
        typed = getattr(args, kind, None)
        if typed is None:
            continue
        text = _epochs_when_bare(typed) if kind == "step_size" else typed
        try:
            parse_space(text, kind)
        except SweepError as error:
            reason = str(error).partition(f"{text!r}: ")[2] or str(error)
            raise UsageError(f"{flag} {typed!r}: {reason}") from None
        spaces[kind] = text
    return spaces


def _seconds(args: argparse.Namespace) -> dict[str, float | None]:
    """``--grace`` and ``--db-timeout`` checked (None where not given)."""
    from steplr.experiments.tune import SweepError
    from steplr.experiments.tune_storage import check_seconds

    seconds: dict[str, float | None] = {}
    for name in ("grace", "db_timeout"):
        value = getattr(args, name, None)  # flags of the sweep parser (optuna engine, PostgreSQL)
        try:
            seconds[name] = None if value is None else check_seconds(value, name)
        except SweepError:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be a positive number of seconds, got {value!r}") from None
    return seconds


def _epochs_when_bare(text: str) -> str:
    """A ``--step-size`` list or range with bare counts read as epochs: ``1:20`` -> ``1ep:20ep``."""
    separator = ":" if ":" in text else ","
    parts = []
    for part in text.split(separator):
        try:
            parts.append(duration(part.strip()))
        except argparse.ArgumentTypeError:
            parts.append(part)  # left as typed: parse_space names the problem along with the whole text
    return separator.join(parts)


def _check_out(out: Path, force: bool) -> None:
    """Refuse an --out that is a file, holds another command's files (without --force), or cannot be written."""
    from steplr.experiments.tune import JOURNAL_FILE

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if out.is_dir() and not force:
        # A study's folder is continued, not refused: running the same search again resumes it.
        ours = (*_OUTPUTS, JOURNAL_FILE)
        others = sorted(p.name for p in out.iterdir() if not p.name.lstrip(".").startswith(ours))
        if others:
            raise UsageError(
                f"--out {out} holds files this command did not write ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}): pass --force to write into it, or choose "
                "another folder"
            )
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot write into {existing}")


# --------------------------------------------------------------------------------------------- searching


def _search_with_helpers(args: argparse.Namespace, search: _Search, err_stream: TextIO) -> None:
    """Run the search here and in ``workers - 1`` helper processes until the study holds its trials.

    SIGTERM and SIGHUP stop the search as Ctrl-C does; on any way out but success the helpers are stopped (SIGTERM
    to their process groups, SIGKILL after :data:`_HELPER_STOP_SECONDS`) and waited for before the error goes on.
    """
    helpers: list[subprocess.Popen[bytes]] = []
    bar = progress(search.trials)
    stopped: list[str] = []  # the signals received: an error raised while stopping is still a stop
    try:
        with _signals_interrupt(received=stopped):
            for _ in range(search.workers - 1):
                helpers.append(_start_helper(args, search))
            # Recorded in the study so that --report confirms on the same seeds as this search's report.
            _run(
                search,
                on_trial=(lambda *_: bar.update()) if bar is not None else None,
                confirm_seeds=DEFAULT_SEEDS if search.seeds is None else search.seeds,
            )
            for helper in helpers:
                helper.wait()  # they stop by themselves once the study holds its trials
    except KeyboardInterrupt:
        _stop_helpers(helpers)
        raise Interrupted(f"the search stopped (its finished trials are kept in the study); {_RERUN}") from None
    except BaseException:
        _stop_helpers(helpers)
        if stopped:  # e.g. the storage failing under the signal: the user stopped the search, say that
            raise Interrupted(f"the search stopped (its finished trials are kept in the study); {_RERUN}") from None
        raise
    finally:
        if bar is not None:
            bar.close()
    for helper in helpers:
        if helper.returncode != 0:
            err_stream.write(
                f"steplr: warning: worker process {helper.pid} exited with code {helper.returncode}; "
                "the other workers ran its share of the trials\n"
            )


@contextlib.contextmanager
def _signals_interrupt(parent: int | None = None, received: list[str] | None = None) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise KeyboardInterrupt in this thread, as Ctrl-C (SIGINT) does, so
    that every way of stopping a search runs the same cleanup; or, in a helper whose ``parent`` is gone,
    :class:`steplr.experiments.tune.Abandon` (see :func:`_end_with_parent`). Each signal's name is appended to
    ``received``. Only the main thread can handle signals: elsewhere the block runs as it is."""
    from steplr.experiments.tune import Abandon

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        if received is not None:
            received.append(signal.Signals(signum).name)
        if parent is not None and os.getppid() != parent:
            raise Abandon("the main process is gone")
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _start_helper(args: argparse.Namespace, search: _Search) -> subprocess.Popen[bytes]:
    """One helper worker in its own session and process group (the terminal's Ctrl-C reaches the main process only,
    which stops the helpers itself); the storage and the other settings go through its stdin, never its argv."""
    helper = subprocess.Popen(
        _helper_command(args, search), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True
    )
    assert helper.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # it died at once: its exit code says so later
        helper.stdin.write(_helper_input(search, os.getpid()).encode())
    with contextlib.suppress(BrokenPipeError):
        helper.stdin.close()
    return helper


def _stop_helpers(helpers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each running helper's process group, wait for them, SIGKILL what is left after a while."""
    for helper in helpers:
        if helper.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(helper.pid, signal.SIGTERM)
    deadline = time.monotonic() + _HELPER_STOP_SECONDS
    for helper in helpers:
        try:
            helper.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(helper.pid, signal.SIGKILL)
            helper.wait()


def _run(
    search: _Search,
    on_trial: Callable[..., None] | None,
    confirm_seeds: int | None,
    on_epoch: Callable[..., None] | None = None,
) -> optuna.Study:
    from steplr.experiments.tune import run_optuna

    return run_optuna(
        search.recipe,
        step_size=search.spaces["step_size"] or "",
        gamma=search.spaces["gamma"] or "",
        lr=search.spaces["lr"],
        trials=search.trials,
        storage=search.storage,
        study_name=search.study,
        run_dir=search.out,
        validation=search.validation,
        epochs=search.epochs,
        data_dir=search.data_dir,
        download=search.download,
        on_trial=on_trial,
        on_epoch=on_epoch,
        confirm_seeds=confirm_seeds,
        grace_period=search.grace,
        db_timeout=search.db_timeout,
    )


def _helper_command(args: argparse.Namespace, search: _Search) -> list[str]:
    """The command line of a helper: the flags as the user typed them, search only, no storage URL (see
    :func:`_helper_input`)."""
    command = [
        sys.executable,
        "-m",
        "steplr.cli.tune",
        "sweep",
        search.recipe,
        "--engine",
        "optuna",
        "--trials",
        str(search.trials),
        "--study",
        search.study,
        "--out",
        str(search.out),
    ]
    typed = {
        "--step-size": args.step_size,
        "--gamma": args.gamma,
        "--lr": args.lr,
        "--validation": args.validation,
        "--epochs": args.epochs,
        "--seeds": search.seeds,
        "--data-dir": search.data_dir,
    }
    for flag, value in typed.items():
        if value is not None:
            command += [flag, str(value)]
    if not search.download:
        command.append("--no-download")
    return command


def _helper_input(search: _Search, parent: int) -> str:
    """What a helper reads on its stdin: the storage URL (it may hold a password), the grace period and database
    timeout (settings no helper flag carries yet), and the process id of the main process it must end with."""
    return (
        json.dumps(
            {"storage": search.storage, "grace": search.grace, "db_timeout": search.db_timeout, "parent": parent}
        )
        + "\n"
    )


def _helper_settings(argv: Sequence[str], text: str) -> tuple[_Search, int | None]:
    """A helper's search settings from its command line and its stdin line; and the main process's id."""
    from steplr.cli.main import build_parser

    try:
        given = json.loads(text)
    except ValueError:
        given = None
    if not isinstance(given, dict) or "parent" not in given:  # never guess the storage: it may not be the journal
        raise UsageError("a helper worker needs its settings as a JSON line on stdin (steplr sweep starts helpers)")
    args = build_parser().parse_args(list(argv))
    args.storage, args.grace, args.db_timeout = given.get("storage"), given.get("grace"), given.get("db_timeout")
    parent = given.get("parent")
    return _settings(args), parent if isinstance(parent, int) else None


def _end_with_parent(parent: int | None) -> None:
    """Ask Linux to send this process SIGTERM when its parent dies; stop now if it is already gone.

    A helper whose parent died leaves at once, writing nothing (:class:`steplr.experiments.tune.Abandon`): the dead main
    process may hold the journal's lock, which Optuna frees only after 30 s; the helper's trial is failed and
    retried by whoever resumes the study."""
    from steplr.experiments.tune import Abandon

    if parent is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        raise Abandon("the main process is gone")


def _helper(argv: Sequence[str], stdin: TextIO) -> int:
    """A helper worker's whole life: the command's flags, the search only, no output but warnings.

    Exit codes: 0 done; 2 bad settings (the main process meets the same problem and reports it once); 3 the storage
    failed (the main process reports it); 130 stopped by SIGTERM or SIGHUP (from the main process), or its parent
    died.
    """
    import optuna
    import torch

    from steplr.experiments.tune import Abandon, StorageLost

    torch.set_num_threads(1)  # one small model per worker: threads cost more than they save
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        search, parent = _helper_settings(argv, stdin.read())
        with _signals_interrupt(parent), _log_to(sys.stderr):
            _end_with_parent(parent)

            def parent_alive(*_: object) -> None:  # where the parent-death signal does not exist
                if parent is not None and os.getppid() != parent:
                    raise Abandon("the main process is gone")

            _run(search, on_trial=None, confirm_seeds=None, on_epoch=parent_alive)  # search only
    except StorageLost:
        return 3
    except SteplrError:  # bad settings, a missing extra...: the main process says it
        return 2
    except (KeyboardInterrupt, Abandon):
        return 130
    return 0


# --------------------------------------------------------------------------------------------- reporting


def _report(search: _Search, out_stream: TextIO, err_stream: TextIO, rebuilding: bool) -> int:
    """Confirm the study's best configs on the test set and write the summary, the trials, a figure, the report."""
    from steplr.experiments.compare import recipe_config
    from steplr.experiments.report import StudyInfo, optuna_plan, write_optuna_nothing, write_optuna_outputs
    from steplr.experiments.tune import (
        JOURNAL_FILE,
        SweepError,
        best_trials,
        confirm_best,
        count_trials,
        open_study,
        study_rows,
    )
    from steplr.experiments.tune_storage import shown
    from steplr.training.data import load_dataset

    study = open_study(
        search.recipe,
        search.study,
        search.storage,
        search.out,
        create=False,
        grace_period=search.grace,
        db_timeout=search.db_timeout,
    )
    if not study.get_trials(deepcopy=False):
        raise SweepError(f"study {search.study!r} has no trials yet: run the search (without --report) first")
    where = shown(search.storage) if search.storage else str(search.out / JOURNAL_FILE)
    info = StudyInfo(search.recipe, search.study, where, dict(study.user_attrs), count_trials(study), study_rows(study))
    out_stream.write(f"{info}\n")
    out_stream.flush()
    if not best_trials(study, 1):
        search.out.mkdir(parents=True, exist_ok=True)
        out_stream.write("\n".join(write_optuna_nothing(search.out, info)) + "\n")
        return 0
    seeds, seeds_line = _seeds(search, study, rebuilding)
    if seeds_line:
        out_stream.write(seeds_line + "\n")
    data = load_dataset(recipe_config(search.recipe).dataset, data_dir=search.data_dir, download=search.download)
    result = confirm_best(study, data, range(seeds))
    search.out.mkdir(parents=True, exist_ok=True)
    plan = optuna_plan(result)
    warnings = print_warnings(f"chosen on validation: trial {result.rows[0].trial}", plan, err_stream)  # and below
    lines = write_optuna_outputs(search.out, info, result, plan, warnings, seeds_line)
    out_stream.write("\n".join(lines) + "\n")
    return 0


def _seeds(search: _Search, study: optuna.Study, rebuilding: bool) -> tuple[int, str]:
    """How many seeds to confirm on and, for ``--report``, a line saying where that count comes from."""
    from steplr.experiments.report import seeds_phrase
    from steplr.experiments.tune import recorded_seeds

    given = search.seeds
    if not rebuilding:
        return (DEFAULT_SEEDS if given is None else given), ""  # the search has just recorded this count
    recorded = recorded_seeds(study)
    if given is not None:
        if recorded is None or recorded == given:
            return given, f"retraining on {seeds_phrase(given)}, as --seeds asks"
        return given, (
            f"retraining on {seeds_phrase(given)}, as --seeds asks: the search retrained on "
            f"{seeds_phrase(recorded)}, so these numbers may differ from its report"
        )
    if recorded is not None:
        return recorded, f"retraining on {seeds_phrase(recorded)}, as the search did (recorded in the study)"
    return DEFAULT_SEEDS, (
        f"retraining on {seeds_phrase(DEFAULT_SEEDS)} (the default): the study does not record "
        "how many seeds its search retrained on; pass --seeds to choose"
    )


if __name__ == "__main__":
    sys.exit(_helper(sys.argv[1:], sys.stdin))
