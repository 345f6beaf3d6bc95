"""``steplr train`` and ``steplr compare``: flags, printing and files; the work is in train/experiments."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from .explain import explain, format_plan

__all__ = ["add_run_commands", "cmd_train", "cmd_compare"]

_OVERRIDES = ("optimizer", "lr", "batch_size", "epochs", "schedule", "step_size", "gamma", "milestones", "t_max",
              "eta_min", "interval", "seed")


class RunUsageError(Exception):
    """Bad flags or an unusable output folder: one line, exit code 2."""


def _duration(text: str) -> str | int:
    return int(text) if text.strip().isdigit() else text


def _milestones(text: str) -> list[str | int]:
    return [_duration(part) for part in text.split(",") if part.strip()]


def _add_overrides(parser: argparse.ArgumentParser, compare: bool) -> None:
    parser.add_argument("recipe", help="qwerty, digits, mnist or fashion-mnist")
    parser.add_argument("--out", default=None, help="run folder (default: runs/RECIPE or runs/RECIPE-compare)")
    parser.add_argument("--data-dir", default=None, help="folder with (or for) the MNIST/Fashion-MNIST IDX files")
    parser.add_argument("--no-download", action="store_true", help="never download data")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
    parser.add_argument("--lr", type=float, default=None, help="initial learning rate")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--step-size", type=_duration, default=None, help="e.g. 5ep, 115it or 115")
    parser.add_argument("--gamma", type=float, default=None)
    parser.add_argument("--interval", choices=("iteration", "epoch"), default=None,
                        help="step the scheduler per iteration or per epoch")
    if not compare:
        parser.add_argument("--schedule", default=None,
                            help="none, step, multistep, exponential, cosine or plateau")
        parser.add_argument("--milestones", type=_milestones, default=None, help="multistep: e.g. 2ep,4ep")
        parser.add_argument("--t-max", type=_duration, default=None, help="cosine: half-period")
        parser.add_argument("--eta-min", type=float, default=None)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    else:
        parser.add_argument("--schedules", default="none,step",
                            help="comma-separated: none, step, multistep, exponential, cosine, plateau")
        parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1, the same for every schedule")


def add_run_commands(commands: Any) -> None:
    train = commands.add_parser("train", help="train one recipe with one schedule, logging every epoch")
    _add_overrides(train, compare=False)
    comp = commands.add_parser("compare", help="train several schedules on several seeds and report")
    _add_overrides(comp, compare=True)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    found = {name: getattr(args, name, None) for name in _OVERRIDES}
    milestones = found.get("milestones")
    if milestones is not None:
        found["milestones"] = tuple(milestones)
    return found


def _prepare_out(args: argparse.Namespace, default: str, resuming: bool = False) -> Path:
    out = Path(args.out or default)
    if out.exists() and not out.is_dir():
        raise RunUsageError(f"--out {out} exists and is not a folder")
    if resuming:
        if not out.is_dir():
            raise RunUsageError(f"--resume: no run folder at {out}")
        return out
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise RunUsageError(f"--out {out} is not empty: pass --resume to continue it or --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _load_data(name: str, args: argparse.Namespace) -> Any:
    from .data import load_dataset

    return load_dataset(name, data_dir=args.data_dir, download=not args.no_download)


def _plan_lines(config: Any, batches: int) -> list[str]:
    if config.schedule == "plateau":
        return [f"plateau: x{config.gamma:g} after {config.plateau_patience} epochs without a better test loss"]
    plan = explain(config.build_schedule(batches), config.lr, config.epochs, config.steps_per_epoch(batches))
    return format_plan(f"{config.schedule}, lr {config.lr:g}, per {config.interval}", plan)


def _figures(out: Path, runs: dict[str, Any]) -> dict[str, Path]:
    from .plots import plot_run_lrs, plot_run_metric

    return {
        "Learning rate per iteration": plot_run_lrs(runs, out / "lr.png"),
        "Loss": plot_run_metric(runs, "loss", out / "loss.png"),
        "Accuracy": plot_run_metric(runs, "acc", out / "accuracy.png"),
    }


def cmd_train(args: argparse.Namespace, out_stream: TextIO) -> int:
    import torch

    from .experiments import recipe_config
    from ._files import atomic_write_text
    from .train import CHECKPOINT, TrainConfig, load_checkpoint, train

    torch.set_num_threads(1)  # small models: threads cost more than they save
    out = _prepare_out(args, f"runs/{args.recipe}", resuming=args.resume)
    if args.resume:
        if any(value is not None for value in _overrides(args).values()):
            raise RunUsageError("--resume continues the saved config: drop the other settings")
        config = TrainConfig.from_dict(load_checkpoint(out / CHECKPOINT)["config"])
    else:
        config = recipe_config(args.recipe, **_overrides(args))
        (out / CHECKPOINT).unlink(missing_ok=True)
    data = _load_data(config.dataset, args)
    atomic_write_text(out / "config.json", json.dumps(config.as_dict(), indent=1))
    batches = -(-data.x_train.shape[0] // config.batch_size)
    bar = _progress(config.epochs * batches)

    def on_epoch(record: Any) -> None:
        if bar is not None:
            bar.clear()
        out_stream.write(f"Epoch {record.epoch}, Loss: {record.train_loss:.4f}, LR: {record.lr:.6f}\n")
        out_stream.write(f"Test Accuracy: {record.test_acc * 100:.2f}%\n")
        out_stream.flush()

    try:
        history = train(config, data, out, resume=args.resume, on_epoch=on_epoch,
                        on_iteration=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    _figures(out, {config.schedule: [history]})
    out_stream.write(f"wrote {out}/: config.json, history.csv, history.json, lr.png, loss.png, accuracy.png, "
                     f"{CHECKPOINT}\n")
    return 0


def _progress(total: int) -> Any:
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="it", leave=False, file=sys.stderr)


def cmd_compare(args: argparse.Namespace, out_stream: TextIO) -> int:
    import torch

    from .experiments import COMPARE_SCHEDULES, compare
    from .report import summary_table, verdicts, write_report

    torch.set_num_threads(1)
    schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    unknown = [s for s in schedules if s not in COMPARE_SCHEDULES]
    if unknown or not schedules:
        raise RunUsageError(f"--schedules must name some of {', '.join(COMPARE_SCHEDULES)}, got {args.schedules!r}")
    if len(set(schedules)) != len(schedules):
        raise RunUsageError(f"--schedules names a schedule twice: {args.schedules!r}")
    if args.seeds <= 0:
        raise RunUsageError(f"--seeds must be a positive integer, got {args.seeds}")
    out = _prepare_out(args, f"runs/{args.recipe}-compare")
    from .experiments import recipe_config

    dataset = recipe_config(args.recipe, **_overrides(args)).dataset
    data = _load_data(dataset, args)
    base = recipe_config(args.recipe, **_overrides(args))
    bar = _progress(base.epochs)  # all runs train together: one tick per epoch
    result = compare(args.recipe, data, schedules, list(range(args.seeds)), _overrides(args),
                     on_epoch=(lambda _: bar.update()) if bar is not None else None)
    if bar is not None:
        bar.close()
    batches = -(-data.x_train.shape[0] // result.base.batch_size)
    figures = _figures(out, result.runs)
    plans = {name: _plan_lines(config, batches) for name, config in result.configs.items()}
    rows = result.summary()
    table = summary_table(rows, args.seeds)
    _write_summary(out, rows)
    report = write_report(out / "report.html", result, figures, plans)
    out_stream.write(f"{args.recipe}: {len(schedules)} schedules x {args.seeds} seeds\n{table}\n")
    for line in verdicts(rows, args.seeds):
        out_stream.write(f"- {line}\n")
    out_stream.write(f"report: {report}\n")
    return 0


def _write_summary(out: Path, rows: list[Any]) -> None:
    from dataclasses import asdict

    from ._files import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(rows[0])))
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    atomic_write_text(out / "summary.csv", buffer.getvalue())
    atomic_write_text(out / "summary.json", json.dumps([asdict(r) for r in rows], indent=1))
