"""``steplr train``: train one recipe with one schedule, logging every epoch; ``--resume`` continues a run.

Flags, printing and files only: the training loop is :func:`steplr.training.train.train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, TextIO

from steplr.cli.args import (
    UsageError,
    add_budget_option,
    add_tensorboard_option,
    add_validation_option,
    check_lrs,
    format_lr,
    refuse_unread,
)
from steplr.cli.runs import (
    FIELDS,
    RECIPE_DEFAULT,
    add_run_options,
    batches,
    check_out,
    check_work,
    claim_out,
    existing,
    figures,
    given_settings,
    load_data,
    out_path,
    plan_lines,
    print_warnings,
    progress,
    recipe_default,
    tensorboard_folder,
    write_tensorboard,
)
from steplr.errors import Interrupted
from steplr.schedules.registry import names

__all__ = ["add_train_command", "cmd_train"]


def add_train_command(commands: Any) -> None:
    parser = commands.add_parser(
        "train",
        help="train one recipe with one schedule, logging every epoch",
        description="Train one recipe with one schedule. Durations are in epochs unless written Nit (iterations).",
    )
    add_run_options(
        parser,
        "runs/RECIPE",
        "replace a non-empty --out folder (the old run stays until the new one replaces it)",
        recipe_default,
    )
    kinds = names(aliases=False)
    parser.add_argument("--schedule", default=None, help=f"{', '.join(kinds[:-1])} or {kinds[-1]} {RECIPE_DEFAULT}")
    parser.add_argument("--seed", type=int, default=None, help="seed of the weights and batch order (default: 0)")
    add_validation_option(
        parser,
        "hold out this fraction of the training set for validation (default: 0, the "
        "notes' protocol: train on all of it, report test)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (from its checkpoint, or from the start if it has none); "
        "with a larger --epochs, extend a finished run",
    )
    add_budget_option(parser)
    add_tensorboard_option(parser, "the run as DIR/SCHEDULE/seed-N")


def _resume_config(out: Path, args: argparse.Namespace) -> Any:
    """The saved config of the run in ``out``, with a larger ``--epochs`` applied; other differences refused."""
    from steplr.training.config import TrainConfig

    if not (out / "config.json").is_file():
        raise UsageError(f"--resume: no run in {out} (no config.json)")
    try:
        saved = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    except (ValueError, TypeError) as error:  # not JSON, or not a config: the file, not the command, is wrong
        raise UsageError(f"--resume: {out / 'config.json'} is not a steplr run config ({error})") from None
    given = given_settings(args)
    has = {**{name: getattr(saved, name) for name in FIELDS}, **saved.schedule.settings()}
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


def _config(args: argparse.Namespace, out: Path) -> Any:
    """The run's config: the saved one for ``--resume``, else the recipe's with the flags applied (validated)."""
    from steplr.experiments.compare import recipe_config

    check_lrs(None if args.lr is None else [args.lr])
    if args.resume:
        if args.force:
            raise UsageError("--resume and --force contradict each other: choose one")
        return _resume_config(out, args)
    check_out(out, args.force, resumable=True)
    refuse_unread(args, [args.schedule or recipe_config(args.recipe).schedule.kind], closed_forms=False)
    return recipe_config(args.recipe, **given_settings(args))


def _epoch_logger(config: Any, out_stream: TextIO, bar: Any, done: list[int]) -> Any:
    """What is printed after each epoch (the epochs done are appended to ``done``)."""

    def on_epoch(record: Any) -> None:
        done.append(record.epoch)
        if bar is not None:
            bar.clear()
        out_stream.write(f"Epoch {record.epoch}, Loss: {record.train_loss:.4f}, LR: {format_lr(record.lr)}\n")
        if config.validation:
            out_stream.write(f"Validation Accuracy: {record.val_acc * 100:.2f}%\n")
        out_stream.write(f"Test Accuracy: {record.test_acc * 100:.2f}%\n")
        out_stream.flush()

    return on_epoch


def cmd_train(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
    import torch

    from steplr._files import atomic_write_text, remove_stale_temps
    from steplr.training.train import CHECKPOINT, check_resume, train

    torch.set_num_threads(1)  # small models: threads cost more than they save
    out = out_path(args, f"runs/{args.recipe}")
    config = _config(args, out)
    board = tensorboard_folder(args, [(config.schedule.kind, config.seed)], replace=args.force or args.resume)
    data = load_data(config.dataset, args)
    per_epoch = batches(data, config)
    check_work(f"train {args.recipe}", 1, config, data, per_epoch, args.max_memory)
    print_warnings(config.schedule.kind, plan_lines(config, per_epoch), err)
    resume = args.resume and (out / CHECKPOINT).is_file()  # a run killed before its first checkpoint starts over
    bar = progress(config.epochs * per_epoch)
    done: list[int] = []
    if resume:
        check_resume(config, data, out)  # a damaged run is refused before config.json is rewritten
    with claim_out(out, force=args.force, resumable=True) if not args.resume else existing(out) as claim:
        folder = claim.folder
        remove_stale_temps(folder, ["config.json", "lr.png", "loss.png", "accuracy.png"])  # of a killed run
        atomic_write_text(folder / "config.json", json.dumps(config.as_dict(), indent=1))
        claim.keep = True  # from here on the folder is a run: --resume continues (or restarts) it
        try:
            history = train(
                config,
                data,
                folder,
                resume=resume,
                on_epoch=_epoch_logger(config, out_stream, bar, done),
                on_iteration=bar.update if bar is not None else None,
                replace=out if folder != out else None,
            )
        except KeyboardInterrupt:
            epoch = (done[-1] + 1) if done else "1"
            raise Interrupted(
                f"in epoch {epoch} of {config.epochs}; `steplr train {args.recipe} --out {out} --resume` "
                "continues from the last checkpoint"
            ) from None
        finally:
            if bar is not None:
                bar.close()
    figures(out, {config.schedule.kind: [history]})
    out_stream.write(
        f"wrote {out}/: config.json, history.csv, history.json, lr.png, loss.png, accuracy.png, {CHECKPOINT}\n"
    )
    write_tensorboard(board, [(config.schedule.kind, config.seed, history)], out_stream)
    return 0
