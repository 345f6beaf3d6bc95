"""What ``steplr train``, ``compare`` and ``sweep`` share: the run settings they override, the ``--out`` folder
(checked, claimed, cleaned up), loading the data, the work's size check, plan warnings, figures and progress.

Order of work in every training command: parse, validate every setting and schedule, load the data, print each
plan's warnings, and only then touch ``--out``. A command that fails before training leaves the file system as it
found it; ``--force`` keeps the old run until the new one has something to replace it with.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from steplr.cli.args import (
    UsageError,
    add_data_options,
    add_force_option,
    add_out_option,
    add_recipe_argument,
    add_schedule_flags,
    add_warmup_options,
    positive_int,
)
from steplr.schedules.registry import Param
from steplr.schedules.spec import SETTINGS

__all__ = [
    "RunUsageError",
    "FIELDS",
    "RECIPE_DEFAULT",
    "add_run_options",
    "recipe_default",
    "given_settings",
    "out_path",
    "check_out",
    "Claim",
    "claim_out",
    "existing",
    "load_data",
    "batches",
    "check_work",
    "print_warnings",
    "plan_lines",
    "describe",
    "figures",
    "progress",
    "ENGINES",
    "add_optimizer_options",
    "add_interval_option",
    "add_trainer_options",
    "memory_budget",
    "engine_note",
    "tensorboard_folder",
    "write_tensorboard",
]

RunUsageError = UsageError  # the name other modules used before the CLI shared one error type

# TrainConfig's fields, not the schedule's
FIELDS = (
    "optimizer",
    "lr",
    "batch_size",
    "epochs",
    "interval",
    "seed",
    "validation",
    "momentum",
    "nesterov",
    "weight_decay",
    "loss",
)
ENGINES = ("auto", "batched", "sequential")  # steplr.training.engines.ENGINES (a test keeps them equal)
RECIPE_DEFAULT = "(default: the recipe's value)"


def recipe_default(param: Param, readers: list[str]) -> str:
    """What an unset schedule flag of train and compare means."""
    if param.run_length:
        return "(default: the whole run after any warm-up)"
    if param.optional:
        return f"(default: {param.unset})"
    if param.type == "flag":
        return f"(default: the recipe's value, else {'on' if param.default else 'off'})"
    if param.default is None:
        return RECIPE_DEFAULT
    shown = f"{param.default:g}" if isinstance(param.default, float) else str(param.default)
    return f"(default: the recipe's value, else {shown})"


def add_run_options(
    parser: argparse.ArgumentParser,
    out: str,
    force: str,
    default_note: Callable[[Param, list[str]], str],
    *,
    optional_recipe: bool = False,
) -> None:
    """The recipe, its folders, and every run setting train and compare can override (None when not given).
    ``optional_recipe``: the recipe may be left out (``--model`` stands in for it)."""
    add_recipe_argument(parser, optional=optional_recipe)
    add_out_option(parser, out)
    add_data_options(parser)
    add_force_option(parser, force)
    add_optimizer_options(parser, RECIPE_DEFAULT)
    parser.add_argument("--lr", type=float, default=None, help=f"initial learning rate {RECIPE_DEFAULT}")
    parser.add_argument("--batch-size", type=positive_int, default=None, help=f"examples per batch {RECIPE_DEFAULT}")
    parser.add_argument("--epochs", type=positive_int, default=None, help=f"length of the run {RECIPE_DEFAULT}")
    add_interval_option(parser, RECIPE_DEFAULT)
    add_schedule_flags(parser, closed_forms=False, lists=False, default_note=default_note)
    add_warmup_options(
        parser,
        "linear warm-up in front of the schedule, e.g. 2 (epochs) or 50it (default: none)",
        None,
        "the warm-up starts at this x lr (default: 0.1)",
    )


def add_optimizer_options(parser: argparse.ArgumentParser, default: str) -> None:
    """``--optimizer`` and SGD's and the decays' settings (None when not given)."""
    parser.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default=None, help=f"optimizer {default}")
    parser.add_argument(
        "--momentum", type=float, default=None, help="SGD's momentum, in [0, 1) (default: the recipe's, else 0)"
    )
    parser.add_argument(
        "--nesterov", action="store_true", default=None, help="SGD's Nesterov momentum (needs --momentum > 0)"
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="L2 penalty (sgd, adam) or decoupled weight decay (adamw) (default: the recipe's, else 0)",
    )


def add_interval_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--interval",
        choices=("iteration", "epoch"),
        default=None,
        help=f"step the scheduler per iteration or per epoch {default}",
    )


def add_trainer_options(parser: argparse.ArgumentParser, engine_flag: str | None) -> None:
    """``--loss``, ``--device`` and (when ``engine_flag``) the flag choosing the engine that trains the models."""
    parser.add_argument(
        "--loss",
        choices=("cross_entropy", "mse"),
        default=None,
        help="with --model: the loss (default: cross_entropy; mse for a regression's float targets); recipes "
        "train with cross_entropy",
    )
    parser.add_argument(
        "--device", default=None, help="where to train, a torch device such as cpu or cuda:0 (default: cpu)"
    )
    if engine_flag is not None:
        parser.add_argument(
            engine_flag,
            dest="trainer",
            choices=ENGINES,
            default="auto",
            help="what trains the models: batched (many models at once), sequential (one after another), or auto "
            "(batched where it can; otherwise sequential, saying why on stderr)",
        )


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user gave, by their flat names (a flag not given is left out)."""
    found = {name: getattr(args, name, None) for name in (*FIELDS, *sorted(SETTINGS))}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in found.items() if v is not None}


# --------------------------------------------------------------------------------------------- the run folder


def out_path(args: argparse.Namespace, default: str) -> Path:
    """``--out`` as a path (``default`` when not given); an empty string is a mistake, not the default."""
    if args.out is not None and not args.out.strip():
        raise UsageError("--out must name a folder, got ''")
    return Path(args.out if args.out is not None else default)


def check_out(path: Path, force: bool, resumable: bool = False) -> None:
    """Refuse an ``--out`` that cannot be used, before any work: a file, or a non-empty folder without --force."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        hint = "pass --resume to continue it or --force to replace it" if resumable else "pass --force to replace it"
        raise UsageError(f"--out {path} is not empty: {hint}")


class Claim:
    """The folder a command writes into (:func:`claim_out`); ``keep`` once it holds something worth keeping."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.keep = False


def _prepare(path: Path, full: bool, created: bool) -> Path:
    """The folder to write into (``path``, or a staging folder beside a full one), checked writable; on failure
    nothing this made is left behind."""
    target = path
    try:
        if full:
            target = _new_folder_beside(path)
        else:
            path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=target, prefix=".steplr-probe-")  # noqa: SIM115
        probe.close()
    except BaseException as error:  # unwritable, or interrupted while setting up: leave nothing behind
        if full and target != path:
            shutil.rmtree(target, ignore_errors=True)
        elif created:
            shutil.rmtree(path, ignore_errors=True)
        if isinstance(error, OSError):
            raise UsageError(f"--out {path} is not writable: {error.strerror or error}") from None
        raise
    return target


@contextmanager
def claim_out(path: Path, force: bool, resumable: bool = False) -> Iterator[Claim]:
    """A folder to write the command's outputs into, checked writable before any work.

    An empty or missing ``path`` is used directly. A non-empty one is refused unless ``force``; then the outputs
    go to a staging folder beside it, which the caller puts in place (``train.replace_folder``), so the old run is
    intact until the new one is ready. If the command fails or is interrupted, what it wrote is removed again
    (the folder too if it created it), unless the caller set ``claim.keep`` (a run that can be resumed); a staging
    folder is always removed, leaving the old run as it was.
    """
    check_out(path, force, resumable)
    full = path.is_dir() and any(path.iterdir())
    created = not path.exists()
    claim = Claim(_prepare(path, full, created))
    target = claim.folder
    try:
        yield claim
    except BaseException:
        if full or (not claim.keep and created):
            shutil.rmtree(target, ignore_errors=True)
        elif not claim.keep:  # it was empty before this command: empty it again
            for entry in target.iterdir():
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        raise


@contextmanager
def existing(out: Path) -> Iterator[Claim]:
    """The folder of a run being resumed, as a :class:`Claim` that is never cleaned up."""
    yield Claim(out)


def _new_folder_beside(path: Path) -> Path:
    """A new folder next to ``path`` for a replacement run, created with the umask's mode like any other folder
    (``tempfile.mkdtemp`` would make it 0700, and the run folder it becomes would keep that mode)."""
    for attempt in range(100):
        candidate = path.with_name(f".{path.name}.new-{os.getpid()}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise UsageError(f"--out {path}: cannot create a staging folder beside it")


# --------------------------------------------------------------------------------------------- the work


def load_data(name: str, args: argparse.Namespace) -> Any:
    from steplr.training.data import load_dataset

    return load_dataset(name, data_dir=args.data_dir, download=not args.no_download)


def batches(data: Any, config: Any) -> int:
    """Batches per epoch of ``config`` on ``data`` (after its validation split)."""
    from steplr.training.data import split_validation

    return int(-(-split_validation(data, config.validation).x_train.shape[0] // config.batch_size))


def memory_budget(args: argparse.Namespace) -> int | None:
    """``--max-memory``, else half the memory available (None where the system does not say)."""
    from steplr.training import budget as limits

    return args.max_memory if args.max_memory is not None else limits.default_budget()


def check_work(what: str, models: int, config: Any, data: Any, batches: int, budget: int | None) -> None:
    """Refuse a command's work before anything is allocated: iterations per run, models, estimated memory. Where
    the engines split the models to fit the budget (``max_memory`` of ``train_many``), only one model's state must
    fit beside every model's history; otherwise all the models trained together."""
    from steplr.experiments.compare import takes_max_memory
    from steplr.experiments.grid import MAX_BATCH
    from steplr.training import budget as limits
    from steplr.training.models import build_model

    in_features = int(data.x_train[0].numel())
    parameters = sum(p.numel() for p in build_model(config.model, in_features, data.num_classes).parameters())
    data_bytes = int(data.x_train.nelement()) * 4 if models > 1 else 0
    work = limits.Work(
        models=models,
        iterations=config.epochs * batches,
        steps=config.epochs * config.steps_per_epoch(batches),
        together=1 if takes_max_memory() else min(models, MAX_BATCH),
        parameters=int(parameters),
        data_bytes=data_bytes,
    )
    limits.check(work, budget if budget is not None else limits.default_budget(), what)


def print_warnings(label: str, lines: list[str], err: TextIO) -> list[str]:
    """Repeat a plan's explain warnings on stderr (they never stop the run); return them for the report."""
    warnings = [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")]
    for warning in warnings:
        err.write(f"steplr: warning: {label}: {warning}\n")
    return [f"{label}: {w}" for w in warnings]


def plan_lines(config: Any, batches: int) -> list[str]:
    """The explain plan of a run config (validates its schedule); a reactive schedule's rule in words."""
    from steplr.experiments.compare import plan_lines as lines

    return lines(config, batches)


def describe(config: Any) -> str:
    """A schedule with every setting it reads, defaults included: ``step (step_size 5ep, gamma 0.5)``."""
    return str(config.schedule.describe())


def figures(out: Path, runs: dict[str, Any], metric: str = "accuracy") -> dict[str, Path]:
    from steplr.experiments.compare import compare_figures

    return compare_figures(out, runs, metric)


def engine_note(engine: str, reason: str, asked: str, err: TextIO) -> None:
    """One line on stderr when ``auto`` fell back to training one model after another, with the reason."""
    if asked == "auto" and engine == "sequential":
        err.write(f"steplr: note: training the models one after another: {reason}\n")


def progress(total: int) -> Any:
    """A progress bar on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="it", leave=False, file=sys.stderr)


def tensorboard_folder(args: argparse.Namespace, runs: list[tuple[str, int]], replace: bool) -> Path | None:
    """``--tensorboard DIR`` checked before any work (None when not given): the extra installed, DIR usable, and
    each (label, seed) run's folder free unless ``replace`` (--force, --resume)."""
    if args.tensorboard is None:
        return None
    from steplr.experiments import tensorboard as board

    board.require()
    folder = board.check_folder(args.tensorboard)
    board.check_free(folder, runs, replace=replace, hint=": pass --force to replace it, or another --tensorboard")
    return folder


def write_tensorboard(folder: Path | None, runs: list[tuple[str, int, Any]], out_stream: TextIO) -> None:
    """Write the finished runs (label, seed, History) as TensorBoard runs under ``folder`` and say where."""
    if folder is None:
        return
    from steplr.experiments.tensorboard import write_runs

    write_runs(folder, runs, replace=True)
    count = f"{len(runs)} run" + ("s" if len(runs) != 1 else "")
    out_stream.write(f"tensorboard: {count} in {folder}/ (tensorboard --logdir {folder})\n")
