"""``steplr sweep``: tune StepLR's step_size and gamma. The grid engine (every combination, trained as one batch)
is here; ``--engine optuna`` is dispatched to :mod:`steplr.cli.tune`. Flags, printing and files only.

Both engines choose on the validation split and report the test set; every config reported against the constant
LR goes through :mod:`steplr.experiments.paired`. A flag that belongs to the other engine is an error, never ignored.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from steplr.cli.args import (
    UsageError,
    add_budget_option,
    add_data_options,
    add_force_option,
    add_out_option,
    add_recipe_argument,
    add_seeds_option,
    add_validation_option,
    check_lrs,
    duration_list,
    duration_space,
    number_list,
    number_space,
    positive_int,
)
from steplr.cli.runs import (
    batches,
    check_out,
    check_work,
    claim_out,
    load_data,
    out_path,
    print_warnings,
    progress,
)
from steplr.schedules.explain import explain, format_plan
from steplr.schedules.kinds import StepDecay

__all__ = ["add_sweep_command", "cmd_sweep", "GRID_DEFAULTS"]

_GRID_ONLY: tuple[str, ...] = ()
_OPTUNA_ONLY = ("trials", "storage", "study", "workers", "report", "grace", "db_timeout")
GRID_DEFAULTS = {"step_size": "1ep,2ep,5ep,10ep", "gamma": "0.1,0.3,0.5,0.7,0.9"}


def _add_spaces(sweep: argparse.ArgumentParser) -> None:
    """What is searched: step sizes, gammas and base LRs, as lists (both engines) or ranges (Optuna)."""
    sweep.add_argument("--step-size", type=duration_space, default=None,
                       help="comma-separated durations (5 = 5ep, or Nit); optuna also takes a range 1ep:20ep "
                            f"(default: grid {GRID_DEFAULTS['step_size']}; optuna 1ep:20ep)")
    sweep.add_argument("--gamma", type=number_space, default=None,
                       help=f"comma-separated factors; optuna also takes a range 0.05:0.99 (default: grid "
                            f"{GRID_DEFAULTS['gamma']}; optuna 0.05:0.99)")
    sweep.add_argument("--lr", type=number_space, default=None,
                       help="comma-separated base LRs; optuna also takes a range 1e-4:1e-1 (default: the recipe's)")


def _add_optuna_options(sweep: argparse.ArgumentParser) -> None:
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


def add_sweep_command(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep", help="tune step_size and gamma: a batched grid, or Optuna",
        description="Tune StepLR's step_size and gamma against a constant LR: choose on validation, report on test. "
                    "Durations are in epochs unless written Nit.")
    add_recipe_argument(sweep)
    sweep.add_argument("--engine", choices=("grid", "optuna"), default="grid",
                       help="grid: every combination, trained as one batch; optuna: a TPE search")
    _add_spaces(sweep)
    add_seeds_option(sweep, None, "seeds 0..N-1 of every config and of the constant LR (optuna: of its best configs) "
                                  "(default: 3; optuna --report: as the search)")
    sweep.add_argument("--epochs", type=positive_int, default=None, help="length of each run (default: the recipe's)")
    add_validation_option(sweep, "fraction of the training set held out to choose on (default: 1/6)")
    add_out_option(sweep, "runs/RECIPE-sweep or runs/RECIPE-optuna")
    add_force_option(sweep, "grid: replace a non-empty --out folder; optuna: write into a folder holding other "
                            "files (a study's own folder is continued without it)")
    add_data_options(sweep)
    _add_optuna_options(sweep)
    add_budget_option(sweep)


def _check_engine_flags(args: argparse.Namespace) -> None:
    other = _OPTUNA_ONLY if args.engine == "grid" else _GRID_ONLY
    given = [name for name in other if getattr(args, name) not in (None, False)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} applies to --engine {'optuna' if args.engine == 'grid' else 'grid'}, "
                         f"not {args.engine}")


def _grid_list(read: Any, text: str, flag: str) -> Any:
    """A grid's list of values (already checked item by item by the flag's type); a range is Optuna's."""
    if ":" in text:
        raise UsageError(f"{flag} {text!r}: a range LOW:HIGH is for --engine optuna; the grid takes a list")
    return read(text)


def _grid_values(args: argparse.Namespace) -> tuple[list[str], list[float], list[float] | None]:
    step_sizes = _grid_list(duration_list, args.step_size or GRID_DEFAULTS["step_size"], "--step-size")
    gammas = _grid_list(number_list, args.gamma or GRID_DEFAULTS["gamma"], "--gamma")
    lrs = _grid_list(number_list, args.lr, "--lr") if args.lr is not None else None
    check_lrs(lrs)
    for flag, values in (("--step-size", step_sizes), ("--gamma", gammas), ("--lr", lrs or [])):
        if len(set(values)) != len(values):
            raise UsageError(f"{flag} lists a value twice: {','.join(map(str, values))}")
    return step_sizes, gammas, lrs


def _plan_warnings(step_sizes: list[str], gammas: list[float], lrs: list[float], epochs: int, spe: int,
                   err: TextIO) -> list[str]:
    """Every grid config's explain warnings, printed on ``err`` (also names a bad step size or gamma)."""
    warnings = []
    for s in step_sizes:
        for g in gammas:
            for lr in lrs:
                plan = explain(StepDecay(s, g), lr, epochs, spe)
                warnings += print_warnings(f"step {s}, gamma {g:g}, lr {lr:g}", format_plan("", plan), err)
    return warnings


def cmd_sweep(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
    _check_engine_flags(args)
    if args.engine == "optuna":
        import torch

        torch.set_num_threads(1)  # one small model per worker: threads cost more than they save
        from steplr.cli.tune import cmd_optuna

        return cmd_optuna(args, out_stream, err)
    # The grid trains large batches, whose batched matmuls can use every core (1.1-1.4x on two cores at K >= 256 in
    # repeated, noisy runs), so torch keeps its default thread count here.
    return _cmd_grid(args, out_stream, err)


def _cmd_grid(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
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
    data = load_data(base.dataset, args)
    seeds = args.seeds or 3
    models = (len(step_sizes) * len(gammas) + 1) * len(lrs or [base.lr]) * seeds
    per_epoch = batches(data, base)
    check_work(f"sweep {args.recipe}", models, base, data, per_epoch, args.max_memory)
    spe = int(base.steps_per_epoch(per_epoch))
    warnings = _plan_warnings(step_sizes, gammas, lrs or [base.lr], base.epochs, spe, err)
    with claim_out(out, force=args.force) as claim:
        folder = claim.folder
        bar = progress(models)
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
