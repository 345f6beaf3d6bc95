"""``steplr train`` and ``steplr compare``: flags, printing and files; the work is in train/experiments.

Order of work in both commands: parse, validate every setting and schedule, load the data, print each plan's
warnings, and only then touch ``--out``. A command that fails before training leaves the file system as it found
it; ``--force`` keeps the old run until the new one has something to replace it with.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from steplr.cli.args import (
    UsageError,
    add_schedule_flags,
    duration,
    format_lr,
    name_list,
    positive_int,
    refuse_unread,
)
from steplr.errors import Interrupted
from steplr.schedules.explain import explain, format_plan
from steplr.schedules.registry import KINDS, Param, RunShape, compared, lookup, names
from steplr.schedules.spec import SETTINGS

__all__ = ["add_run_commands", "cmd_train", "cmd_compare", "RunUsageError", "claim_out", "check_out", "out_path",
           "print_warnings", "check_work", "add_budget_argument"]

RunUsageError = UsageError  # the name other modules used before the CLI shared one error type

_FIELDS = ("optimizer", "lr", "batch_size", "epochs", "interval", "seed", "validation")  # TrainConfig's, not schedule's
_RECIPE = "(default: the recipe's value)"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.2, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _add_overrides(parser: argparse.ArgumentParser, compare: bool) -> None:
    parser.add_argument("recipe", help="qwerty, digits, mnist or fashion-mnist")
    parser.add_argument("--out", default=None,
                        help=f"run folder (default: runs/RECIPE{'-compare' if compare else ''})")
    parser.add_argument("--data-dir", default=None, help="folder with (or for) the MNIST/Fashion-MNIST IDX files")
    parser.add_argument("--no-download", action="store_true", help="never download data")
    parser.add_argument("--force", action="store_true",
                        help="replace a non-empty --out folder (the old run stays until the new one replaces it)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help=f"optimizer {_RECIPE}")
    parser.add_argument("--lr", type=float, default=None, help=f"initial learning rate {_RECIPE}")
    parser.add_argument("--batch-size", type=positive_int, default=None, help=f"examples per batch {_RECIPE}")
    parser.add_argument("--epochs", type=positive_int, default=None, help=f"length of the run {_RECIPE}")
    parser.add_argument("--interval", choices=("iteration", "epoch"), default=None,
                        help=f"step the scheduler per iteration or per epoch {_RECIPE}")
    add_schedule_flags(parser, closed_forms=False, lists=False,
                       default_note=_compare_default if compare else _recipe_default)
    parser.add_argument("--warmup", type=duration, default=None,
                        help="linear warm-up in front of the schedule, e.g. 2 (epochs) or 50it (default: none)")
    parser.add_argument("--warmup-start-factor", type=float, default=None,
                        help="the warm-up starts at this x lr (default: 0.1)")
    if not compare:
        parser.add_argument("--schedule", default=None,
                            help=f"{', '.join(names(aliases=False)[:-1])} or {names(aliases=False)[-1]} {_RECIPE}")
        parser.add_argument("--seed", type=int, default=None, help="seed of the weights and batch order (default: 0)")
        parser.add_argument("--validation", type=_fraction, default=None,
                            help="hold out this fraction of the training set for validation (default: 0, the "
                                 "notes' protocol: train on all of it, report test)")
        parser.add_argument("--resume", action="store_true",
                            help="continue the run in --out (from its checkpoint, or from the start if it has none); "
                                 "with a larger --epochs, extend a finished run")
    else:
        parser.add_argument("--schedules", type=name_list, default=list(compared(by_default=True)),
                            help=f"schedules to compare ({', '.join(compared())}); none (constant LR) is always "
                                 "trained as the baseline; each is given fair settings where the recipe and the flags "
                                 f"set none ({_fair_defaults()})".replace("%", "%%"))
        parser.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1, the same for every schedule")
        parser.add_argument("--validation", type=_fraction, default=None,
                            help="fraction of the training set held out to choose on (default: 1/6)")


def memory_size(text: str) -> int:
    """``--max-memory``: a size such as 4G or 512M."""
    from steplr.training.budget import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-memory", type=memory_size, default=None,
                        help="refuse work whose estimated peak memory is above this, e.g. 4G (default: half of the "
                             "memory available when the command starts)")


def check_work(what: str, models: int, config: Any, data: Any, batches: int, budget: int | None) -> None:
    """Refuse a command's work before anything is allocated: iterations per run, models, estimated memory."""
    from steplr.training import budget as limits
    from steplr.experiments.grid import MAX_BATCH
    from steplr.training.models import build_model

    in_features = int(data.x_train[0].numel())
    parameters = sum(p.numel() for p in build_model(config.model, in_features, data.num_classes).parameters())
    data_bytes = int(data.x_train.nelement()) * 4 if models > 1 else 0
    work = limits.Work(models=models, iterations=config.epochs * batches,
                       steps=config.epochs * config.steps_per_epoch(batches), together=min(models, MAX_BATCH),
                       parameters=int(parameters), data_bytes=data_bytes)
    limits.check(work, budget if budget is not None else limits.default_budget(), what)


def add_run_commands(commands: Any) -> None:
    train = commands.add_parser("train", help="train one recipe with one schedule, logging every epoch",
                                description="Train one recipe with one schedule. Durations are in epochs unless "
                                            "written Nit (iterations).")
    _add_overrides(train, compare=False)
    add_budget_argument(train)
    comp = commands.add_parser("compare", help="train several schedules on several seeds and report",
                               description="Train schedules on the same seeds against a constant LR; choose on "
                                           "validation, report on test with paired statistics.")
    _add_overrides(comp, compare=True)
    add_budget_argument(comp)


def _recipe_default(param: Param, readers: list[str]) -> str:
    """What an unset schedule flag of train and compare means."""
    if param.run_length:
        return "(default: the whole run after any warm-up)"
    if param.default is None:
        return _RECIPE
    shown = f"{param.default:g}" if isinstance(param.default, float) else str(param.default)
    return f"(default: the recipe's value, else {shown})"


def _compare_default(param: Param, readers: list[str]) -> str:
    """What an unset schedule flag of compare means: a schedule with a fair setting for it gets that."""
    fair = [kind.name for kind in KINDS if kind.name in readers and param.name in kind.fair(RunShape(2, 2))]
    if not fair:
        return _recipe_default(param, readers)
    return f"(default: the recipe's value; for {', '.join(fair)} the fair setting, see --schedules)"


def _fair_defaults() -> str:
    """The fair defaults of compare, in the words of the registry's entries."""
    return "; ".join(f"{kind.name}: {kind.fair_help}" for kind in KINDS if kind.fair_help)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user gave, by their flat names (a flag not given is left out)."""
    found = {name: getattr(args, name, None) for name in (*_FIELDS, *sorted(SETTINGS))}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in found.items() if v is not None}


def _check_compare_settings(args: argparse.Namespace, schedules: list[str]) -> None:
    """Refuse a setting that no compared schedule reads (it would be recorded and silently ignored), and a warm-up
    that a reactive schedule in the comparison would lack."""
    refuse_unread(args, schedules, closed_forms=False)
    reactive = [s for s in schedules if lookup(s).reactive]
    if (args.warmup is not None or args.warmup_start_factor is not None) and reactive:
        raise UsageError(f"--warmup does not apply to {reactive[0]}, so a comparison would give the other schedules "
                         f"a warm-up that {reactive[0]} lacks: drop {reactive[0]} or --warmup")


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
    claim = Claim(target)
    try:
        yield claim
    except BaseException:
        if full:
            shutil.rmtree(target, ignore_errors=True)
        elif not claim.keep and created:
            shutil.rmtree(target, ignore_errors=True)
        elif not claim.keep:  # it was empty before this command: empty it again
            for entry in target.iterdir():
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        raise


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


def _load_data(name: str, args: argparse.Namespace) -> Any:
    from steplr.training.data import load_dataset

    return load_dataset(name, data_dir=args.data_dir, download=not args.no_download)


def print_warnings(label: str, lines: list[str], err: TextIO) -> list[str]:
    """Repeat a plan's explain warnings on stderr (they never stop the run); return them for the report."""
    warnings = [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")]
    for warning in warnings:
        err.write(f"steplr: warning: {label}: {warning}\n")
    return [f"{label}: {w}" for w in warnings]


def _plan_lines(config: Any, batches: int) -> list[str]:
    """The explain plan of a run config (validates its schedule); a reactive schedule's rule in words."""
    if config.schedule.reactive:
        factor, patience = config.plateau()
        watched = "validation" if config.validation else "training"
        return [f"{describe(config)}, lr {config.lr:g}: x{factor:g} after {patience} epochs "
                f"without a better {watched} loss"]
    plan = explain(config.build_schedule(batches), config.lr, config.epochs, config.steps_per_epoch(batches))
    return format_plan(f"{describe(config)}, lr {config.lr:g}, per {config.interval}", plan)


def describe(config: Any) -> str:
    """A schedule with every setting it reads, defaults included: ``step (step_size 5ep, gamma 0.5)``."""
    return str(config.schedule.describe())


def _batches(data: Any, config: Any) -> int:
    from steplr.training.data import split_validation

    return int(-(-split_validation(data, config.validation).x_train.shape[0] // config.batch_size))


def _figures(out: Path, runs: dict[str, Any]) -> dict[str, Path]:
    from steplr.experiments.plots import plot_run_lrs, plot_run_metric

    return {
        "Learning rate per iteration": plot_run_lrs(runs, out / "lr.png"),
        "Loss": plot_run_metric(runs, "loss", out / "loss.png"),
        "Accuracy": plot_run_metric(runs, "acc", out / "accuracy.png"),
    }


def _progress(total: int) -> Any:
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="it", leave=False, file=sys.stderr)


# --------------------------------------------------------------------------------------------- train


def _resume_config(out: Path, args: argparse.Namespace) -> Any:
    """The saved config of the run in ``out``, with a larger ``--epochs`` applied; other differences refused."""
    import dataclasses

    from steplr.training.config import TrainConfig

    if not (out / "config.json").is_file():
        raise UsageError(f"--resume: no run in {out} (no config.json)")
    try:
        saved = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    except (ValueError, TypeError) as error:
        raise UsageError(f"--resume: {out / 'config.json'} is not a steplr run config ({error})") from None
    given = _given(args)
    has = {**{name: getattr(saved, name) for name in _FIELDS}, **saved.schedule.settings()}
    differences = [
        f"--{name.replace('_', '-')} {value} (the run has {has.get(name)})"
        for name, value in given.items()
        if name != "epochs" and value != has.get(name)
    ]
    if differences:
        raise UsageError("--resume continues the saved run; these settings differ: " + "; ".join(differences))
    epochs = given.get("epochs", saved.epochs)
    if epochs < saved.epochs:
        raise UsageError(f"--resume --epochs {epochs}: the run has {saved.epochs} epochs and cannot be shortened")
    return dataclasses.replace(saved, epochs=epochs)


def cmd_train(args: argparse.Namespace, out_stream: TextIO, err: TextIO | None = None) -> int:
    import torch

    from steplr._files import atomic_write_text, remove_stale_temps
    from steplr.experiments.compare import recipe_config
    from steplr.training.train import CHECKPOINT, check_resume, train

    err = err or sys.stderr
    torch.set_num_threads(1)  # small models: threads cost more than they save
    out = out_path(args, f"runs/{args.recipe}")
    if args.resume:
        if args.force:
            raise UsageError("--resume and --force contradict each other: choose one")
        config = _resume_config(out, args)
    else:
        check_out(out, args.force, resumable=True)
        refuse_unread(args, [args.schedule or recipe_config(args.recipe).schedule.kind], closed_forms=False)
        config = recipe_config(args.recipe, **_given(args))
    data = _load_data(config.dataset, args)
    batches = _batches(data, config)
    check_work(f"train {args.recipe}", 1, config, data, batches, args.max_memory)
    print_warnings(config.schedule.kind, _plan_lines(config, batches), err)
    resume = args.resume and (out / CHECKPOINT).is_file()  # a run killed before its first checkpoint starts over
    bar = _progress(config.epochs * batches)

    done: list[int] = []

    def on_epoch(record: Any) -> None:
        done.append(record.epoch)
        if bar is not None:
            bar.clear()
        out_stream.write(f"Epoch {record.epoch}, Loss: {record.train_loss:.4f}, LR: {format_lr(record.lr)}\n")
        if config.validation:
            out_stream.write(f"Validation Accuracy: {record.val_acc * 100:.2f}%\n")
        out_stream.write(f"Test Accuracy: {record.test_acc * 100:.2f}%\n")
        out_stream.flush()

    if resume:
        check_resume(config, data, out)  # a damaged run is refused before config.json is rewritten
    with claim_out(out, force=args.force, resumable=True) if not args.resume else _existing(out) as claim:
        folder = claim.folder
        remove_stale_temps(folder, ["config.json", "lr.png", "loss.png", "accuracy.png"])  # of a killed run
        atomic_write_text(folder / "config.json", json.dumps(config.as_dict(), indent=1))
        claim.keep = True  # from here on the folder is a run: --resume continues (or restarts) it
        try:
            history = train(config, data, folder, resume=resume, on_epoch=on_epoch,
                            on_iteration=bar.update if bar is not None else None,
                            replace=out if folder != out else None)
        except KeyboardInterrupt:
            epoch = (done[-1] + 1) if done else "1"
            raise Interrupted(f"in epoch {epoch} of {config.epochs}; `steplr train {args.recipe} --out {out} --resume` "
                              "continues from the last checkpoint") from None
        finally:
            if bar is not None:
                bar.close()
    _figures(out, {config.schedule.kind: [history]})
    out_stream.write(f"wrote {out}/: config.json, history.csv, history.json, lr.png, loss.png, accuracy.png, "
                     f"{CHECKPOINT}\n")
    return 0


@contextmanager
def _existing(out: Path) -> Iterator[Claim]:
    yield Claim(out)


# --------------------------------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace, out_stream: TextIO, err: TextIO | None = None) -> int:
    import torch

    from steplr.experiments.compare import BASELINE, DEFAULT_VALIDATION, compare, compare_config, recipe_config
    from steplr.experiments.grid import MAX_BATCH
    from steplr.experiments.report import compare_lines, write_compare_outputs
    from steplr.training.train import replace_folder

    err = err or sys.stderr
    torch.set_num_threads(1)
    schedules = args.schedules
    unknown = [s for s in schedules if s not in compared()]
    if unknown:
        raise UsageError(f"--schedules must name some of {', '.join(compared())}, got {','.join(schedules)!r}")
    if len(set(schedules)) != len(schedules):
        raise UsageError(f"--schedules names a schedule twice: {','.join(schedules)!r}")
    out = out_path(args, f"runs/{args.recipe}-compare")
    check_out(out, args.force)
    _check_compare_settings(args, [BASELINE, *[s for s in schedules if s != BASELINE]])
    given = {"validation": DEFAULT_VALIDATION, **_given(args)}
    chosen = {k: v for k, v in given.items() if k in SETTINGS}  # win over each schedule's fair default
    base = recipe_config(args.recipe, **{k: v for k, v in given.items() if k not in SETTINGS})
    data = _load_data(base.dataset, args)
    batches = _batches(data, base)
    names = [BASELINE, *[s for s in schedules if s != BASELINE]]
    check_work(f"compare {args.recipe}", len(names) * args.seeds, base, data, batches, args.max_memory)
    configs = {name: compare_config(base, name, chosen, batches) for name in names}
    plans = {name: _plan_lines(config, batches) for name, config in configs.items()}  # validates every schedule
    plan_warnings = [w for name in names for w in print_warnings(name, plans[name], err)]
    with claim_out(out, force=args.force) as claim:
        folder = claim.folder
        out_stream.write(f"{args.recipe}: {len(names)} schedules x {args.seeds} seeds, validation "
                         f"{base.validation:.3g} of the training set\n")
        for name in names:
            totals = [line for line in plans[name] if " decay" in line and "; final lr " in line]
            out_stream.write(f"  plan {plans[name][0]}" + "".join(f"; {line}" for line in totals) + "\n")
        bar = _progress(base.epochs)
        result = compare(args.recipe, data, names, list(range(args.seeds)), given,
                         on_epoch=(lambda _: bar.update()) if bar is not None else None, max_batch=MAX_BATCH)
        if bar is not None:
            bar.close()
        notes = plan_warnings + result.notes()
        rows = write_compare_outputs(folder, result, _figures(folder, result.runs), plans, notes)
    if folder != out:
        replace_folder(folder, out)
    # The plan warnings went to stderr before training.
    out_stream.write("\n".join(compare_lines(rows, notes[len(plan_warnings):])) + "\n")
    out_stream.write(f"report: {out / 'report.html'}\n")
    return 0

