"""``steplr sweep``: grid sweeps (batched) and Optuna searches; flags, printing and files only.

Both engines choose on the validation split and report the test set; every config reported against the constant
LR goes through :mod:`steplr.experiments.paired`. A flag that belongs to the other engine is an error, never ignored.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from steplr.cli.args import UsageError, duration_list, number_list, positive_int
from steplr.cli.runs import (
    _batches,
    _load_data,
    _progress,
    add_budget_argument,
    check_out,
    check_work,
    claim_out,
    out_path,
    print_warnings,
)
from steplr.schedules.explain import explain, format_plan
from steplr.schedules.kinds import StepDecay

__all__ = ["add_sweep_command", "cmd_sweep"]

_GRID_ONLY: tuple[str, ...] = ()
_OPTUNA_ONLY = ("trials", "storage", "study", "workers", "report", "grace", "db_timeout")
GRID_DEFAULTS = {"step_size": "1ep,2ep,5ep,10ep", "gamma": "0.1,0.3,0.5,0.7,0.9"}


def add_sweep_command(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep", help="tune step_size and gamma: a batched grid, or Optuna",
        description="Tune StepLR's step_size and gamma against a constant LR: choose on validation, report on test. "
                    "Durations are in epochs unless written Nit.")
    sweep.add_argument("recipe", help="qwerty, digits, mnist or fashion-mnist")
    sweep.add_argument("--engine", choices=("grid", "optuna"), default="grid",
                       help="grid: every combination, trained as one batch; optuna: a TPE search")
    sweep.add_argument("--step-size", default=None,
                       help="comma-separated durations (5 = 5ep, or Nit); optuna also takes a range 1ep:20ep "
                            f"(default: grid {GRID_DEFAULTS['step_size']}; optuna 1ep:20ep)")
    sweep.add_argument("--gamma", default=None,
                       help=f"comma-separated factors; optuna also takes a range 0.05:0.99 (default: grid "
                            f"{GRID_DEFAULTS['gamma']}; optuna 0.05:0.99)")
    sweep.add_argument("--lr", default=None,
                       help="comma-separated base LRs; optuna also takes a range 1e-4:1e-1 (default: the recipe's)")
    sweep.add_argument("--seeds", type=positive_int, default=None,
                       help="seeds 0..N-1 of every config and of the constant LR (optuna: of its best configs) "
                            "(default: 3; optuna --report: as the search)")
    sweep.add_argument("--epochs", type=positive_int, default=None, help="length of each run (default: the recipe's)")
    sweep.add_argument("--validation", type=float, default=None,
                       help="fraction of the training set held out to choose on (default: 1/6)")
    sweep.add_argument("--out", default=None, help="run folder (default: runs/RECIPE-sweep or runs/RECIPE-optuna)")
    sweep.add_argument("--force", action="store_true",
                       help="grid: replace a non-empty --out folder; optuna: write into a folder holding other "
                            "files (a study's own folder is continued without it)")
    sweep.add_argument("--data-dir", default=None, help="folder with (or for) the MNIST/Fashion-MNIST IDX files")
    sweep.add_argument("--no-download", action="store_true", help="never download data")
    sweep.add_argument("--trials", type=positive_int, default=None,
                       help="optuna: finished trials wanted in the study (default: 30)")
    sweep.add_argument("--storage", default=None,
                       help="optuna: postgresql://user@host:port/db to share a study across machines "
                            "(default: a journal file in --out)")
    sweep.add_argument("--study", default=None, help="optuna: study name (default: steplr-RECIPE)")
    sweep.add_argument("--workers", type=positive_int, default=None, help="optuna: local worker processes (default: 1)")
    sweep.add_argument("--report", action="store_true", help="optuna: rebuild the report from the storage only")
    sweep.add_argument("--grace", type=float, default=None,
                       help="optuna, PostgreSQL: seconds a running trial may go without a heartbeat before another "
                            "worker takes it over (default: 60; give every worker the same)")
    sweep.add_argument("--db-timeout", type=float, default=None,
                       help="optuna, PostgreSQL: seconds the database may take to answer before the search stops "
                            "with exit code 3 (default: 30)")
    add_budget_argument(sweep)


def _check_engine_flags(args: argparse.Namespace) -> None:
    other = _OPTUNA_ONLY if args.engine == "grid" else _GRID_ONLY
    given = [name for name in other if getattr(args, name) not in (None, False)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} applies to --engine {'optuna' if args.engine == 'grid' else 'grid'}, "
                         f"not {args.engine}")
    if args.validation is not None and not 0 <= args.validation < 1:
        raise UsageError(f"--validation must be a fraction in [0, 1), got {args.validation}")


def _grid_values(args: argparse.Namespace) -> tuple[list[str], list[float], list[float] | None]:
    def parse(kind: Any, text: str, flag: str) -> Any:
        if ":" in text:
            raise UsageError(f"{flag} {text!r}: a range LOW:HIGH is for --engine optuna; the grid takes a list")
        try:
            return kind(text)
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"{flag}: {error}") from None

    step_sizes = parse(duration_list, GRID_DEFAULTS["step_size"] if args.step_size is None else args.step_size,
                       "--step-size")
    gammas = parse(number_list, GRID_DEFAULTS["gamma"] if args.gamma is None else args.gamma, "--gamma")
    lrs = parse(number_list, args.lr, "--lr") if args.lr is not None else None
    for flag, values in (("--step-size", step_sizes), ("--gamma", gammas), ("--lr", lrs or [])):
        if len(set(values)) != len(values):
            raise UsageError(f"{flag} lists a value twice: {','.join(map(str, values))}")
    return step_sizes, gammas, lrs


def cmd_sweep(args: argparse.Namespace, out_stream: TextIO, err: TextIO | None = None) -> int:
    import sys

    err = err or sys.stderr
    _check_engine_flags(args)
    if args.engine == "optuna":
        import torch

        torch.set_num_threads(1)  # one small model per worker: threads cost more than they save
        from steplr.cli.tune import cmd_optuna

        return cmd_optuna(args, out_stream, err)
    # The grid trains large batches, whose batched matmuls can use every core (1.1-1.4x on two cores at K >= 256 in
    # repeated, noisy runs), so torch keeps its default thread count here.
    from steplr.experiments.compare import DEFAULT_VALIDATION, recipe_config
    from steplr.experiments.grid import grid_sweep
    from steplr.experiments.report import write_grid_outputs
    from steplr.training.train import replace_folder

    step_sizes, gammas, lrs = _grid_values(args)
    out = out_path(args, f"runs/{args.recipe}-sweep")
    check_out(out, args.force)
    validation = DEFAULT_VALIDATION if args.validation is None else args.validation
    if validation == 0:
        raise UsageError("--validation 0 leaves nothing to choose the best config on: give a fraction such as 0.2")
    base = recipe_config(args.recipe, epochs=args.epochs, validation=validation)
    for lr in lrs or []:
        recipe_config(args.recipe, lr=lr)  # names a bad lr before any work
    data = _load_data(base.dataset, args)
    seeds = args.seeds or 3
    models = (len(step_sizes) * len(gammas) + 1) * len(lrs or [base.lr]) * seeds
    check_work(f"sweep {args.recipe}", models, base, data, _batches(data, base), args.max_memory)
    spe = _steps_per_epoch(base, data)
    warnings = []
    for s in step_sizes:
        for g in gammas:
            for lr in lrs or [base.lr]:
                plan = explain(StepDecay(s, g), lr, base.epochs, spe)  # also names a bad step size or gamma
                warnings += print_warnings(f"step {s}, gamma {g:g}, lr {lr:g}", format_plan("", plan), err)
    with claim_out(out, force=args.force) as claim:
        folder = claim.folder
        total = models
        bar = _progress(total)
        result = grid_sweep(args.recipe, data, step_sizes, gammas, list(range(seeds)), lrs,
                            {"epochs": args.epochs, "validation": validation},
                            on_progress=bar.update if bar is not None else None)
        if bar is not None:
            bar.close()
        lines = write_grid_outputs(folder, out, result, spe, warnings)
    if folder != out:
        replace_folder(folder, out)
    out_stream.write("\n".join(lines) + "\n")
    return 0


def _steps_per_epoch(base: Any, data: Any) -> int:
    return int(base.steps_per_epoch(_batches(data, base)))
