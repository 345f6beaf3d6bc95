"""``steplr sweep``: tune a schedule's parameters (StepLR's step_size and gamma unless ``--schedule`` names another
closed-form kind; Optuna tunes StepLR only). The grid engine (every combination, trained as one batch) is here;
``--engine optuna`` is dispatched to :mod:`steplr.cli.tune`. Flags, printing and files only.

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
    add_tensorboard_option,
    add_validation_option,
    check_lrs,
    duration_list,
    duration_space,
    name_list,
    number_list,
    number_space,
    positive_int,
    refuse_unread,
)
from steplr.cli.runs import (
    ENGINES,
    add_interval_option,
    add_optimizer_options,
    add_trainer_options,
    batches,
    check_out,
    check_work,
    claim_out,
    engine_note,
    given_settings,
    load_data,
    memory_budget,
    out_path,
    print_warnings,
    progress,
    tensorboard_folder,
    write_tensorboard,
)
from steplr.cli.user import add_model_options, check_model_flags
from steplr.schedules.explain import format_plan
from steplr.schedules.registry import lookup, names, params_by_name

__all__ = ["add_sweep_command", "cmd_sweep", "GRID_DEFAULTS"]

# Settings of the trained runs the grid reads; Optuna trains the recipe's.
_GRID_ONLY: tuple[str, ...] = (
    "model",
    "data",
    "optimizer",
    "momentum",
    "nesterov",
    "weight_decay",
    "batch_size",
    "interval",
    "loss",
    "device",
    "tensorboard",
)
_USER_DEFAULT = "(default: the recipe's; for --model sgd, lr 0.01, batch 32, 10 epochs, per epoch)"
_OPTUNA_ONLY = ("trials", "storage", "study", "workers", "report", "grace", "db_timeout")
GRID_DEFAULTS = {"step_size": "1ep,2ep,5ep,10ep", "gamma": "0.1,0.3,0.5,0.7,0.9"}  # of --schedule step only
_DEFAULT_KIND = "step"  # what both engines tune unless told; Optuna tunes nothing else
_SPACES = {"step_size": duration_list, "gamma": number_list}  # flags that also take Optuna's ranges (read as typed)
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _count_list(text: str) -> list[int]:
    """Comma-separated whole numbers: ``"1,2"`` -> ``[1, 2]`` (their range is the kind's to check)."""
    try:
        return [int(item) for item in name_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def _flag_list(text: str) -> list[bool]:
    """Comma-separated truth values: ``"true,false"`` -> ``[True, False]``."""
    items = [item.lower() for item in name_list(text)]
    if any(item not in _BOOLEANS for item in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated true or false, got {text!r}")
    return [_BOOLEANS[item] for item in items]


def _choice_list(choices: tuple[str, ...]) -> Any:
    def read(text: str) -> list[str]:
        items: list[str] = name_list(text)
        wrong = [item for item in items if item not in choices]
        if wrong:
            raise argparse.ArgumentTypeError(f"expected comma-separated {', '.join(choices)}, got {wrong[0]!r}")
        return items

    return read


_GRID_READERS = {
    "duration": duration_list,
    "durations": duration_list,
    "number": number_list,
    "count": _count_list,
    "flag": _flag_list,
}


def _add_spaces(sweep: argparse.ArgumentParser) -> None:
    """What is searched: step sizes, gammas and base LRs, as lists (both engines) or ranges (Optuna)."""
    sweep.add_argument(
        "--step-size",
        type=duration_space,
        default=None,
        help="comma-separated durations (5 = 5ep, or Nit); optuna also takes a range 1ep:20ep "
        f"(default: grid {GRID_DEFAULTS['step_size']}; optuna 1ep:20ep)",
    )
    sweep.add_argument(
        "--gamma",
        type=number_space,
        default=None,
        help=f"comma-separated factors; optuna also takes a range 0.05:0.99 (default: grid "
        f"{GRID_DEFAULTS['gamma']}; optuna 0.05:0.99)",
    )
    sweep.add_argument(
        "--lr",
        type=number_space,
        default=None,
        help="comma-separated base LRs; optuna also takes a range 1e-4:1e-1 (default: the recipe's)",
    )


def _add_schedule_options(sweep: argparse.ArgumentParser) -> None:
    """``--schedule`` and a comma-list flag per parameter of the other closed-form kinds, from the registry."""
    swept = [n for n in names(aliases=False, reactive=False) if lookup(n).params]
    sweep.add_argument(
        "--schedule",
        choices=swept,
        default=_DEFAULT_KIND,
        help="grid: the closed-form kind whose parameters are swept (optuna: step only)",
    )
    for name, (param, kinds) in params_by_name().items():
        readers = [k for k in kinds if not lookup(k).reactive]
        if name in _SPACES or not readers:
            continue
        many = "one list of times" if param.type == "durations" else "comma-separated values"
        sweep.add_argument(
            param.flag,
            dest=name,
            type=_choice_list(param.choices) if param.type == "choice" else _GRID_READERS[param.type],
            default=None,
            help=f"grid, {', '.join(readers)}: {param.help} ({many}; default: the kind's)",
        )


def _add_optuna_options(sweep: argparse.ArgumentParser) -> None:
    sweep.add_argument(
        "--trials", type=positive_int, default=None, help="optuna: finished trials wanted in the study (default: 30)"
    )
    sweep.add_argument(
        "--storage",
        default=None,
        help="optuna: postgresql://user@host:port/db to share a study across machines "
        "(default: a journal file in --out)",
    )
    sweep.add_argument("--study", default=None, help="optuna: study name (default: steplr-RECIPE)")
    sweep.add_argument("--workers", type=positive_int, default=None, help="optuna: local worker processes (default: 1)")
    sweep.add_argument("--report", action="store_true", help="optuna: rebuild the report from the storage only")
    sweep.add_argument(
        "--grace",
        type=float,
        default=None,
        help="optuna, PostgreSQL: seconds a running trial may go without a heartbeat before another "
        "worker takes it over (default: 60; give every worker the same)",
    )
    sweep.add_argument(
        "--db-timeout",
        type=float,
        default=None,
        help="optuna, PostgreSQL: seconds the database may take to answer before the search stops "
        "with exit code 3 (default: 30)",
    )


def add_sweep_command(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="tune step_size and gamma (or another schedule's parameters): a batched grid, or Optuna",
        description="Tune StepLR's step_size and gamma (the grid engine: any closed-form --schedule's parameters) "
        "against a constant LR: choose on validation, report on test. Durations are in epochs unless written Nit.",
    )
    add_recipe_argument(sweep, optional=True)
    sweep.add_argument(
        "--engine",
        choices=("grid", "optuna", *ENGINES),
        default="grid",
        help="grid: every combination, its models trained batched where an engine can (else one after another, "
        "said on stderr); auto, batched, sequential: the grid, its models trained so; optuna: a TPE search",
    )
    add_model_options(sweep)
    add_optimizer_options(sweep, _USER_DEFAULT)
    sweep.add_argument("--batch-size", type=positive_int, default=None, help=f"examples per batch {_USER_DEFAULT}")
    add_interval_option(sweep, _USER_DEFAULT)
    add_trainer_options(sweep, None)
    _add_spaces(sweep)
    _add_schedule_options(sweep)
    add_seeds_option(
        sweep,
        None,
        "seeds 0..N-1 of every config and of the constant LR (optuna: of its best configs) "
        "(default: 3; optuna --report: as the search)",
    )
    sweep.add_argument("--epochs", type=positive_int, default=None, help="length of each run (default: the recipe's)")
    add_validation_option(sweep, "fraction of the training set held out to choose on (default: 1/6)")
    add_out_option(sweep, "runs/RECIPE-sweep or runs/RECIPE-optuna")
    add_force_option(
        sweep,
        "grid: replace a non-empty --out folder; optuna: write into a folder holding other "
        "files (a study's own folder is continued without it)",
    )
    add_data_options(sweep)
    _add_optuna_options(sweep)
    add_budget_option(sweep)
    add_tensorboard_option(
        sweep, "one per config and seed, DIR/CONFIG/seed-N (the constant LR: DIR/none_lr-X/seed-N)", "grid"
    )


def _check_engine_flags(args: argparse.Namespace) -> None:
    if args.engine == "optuna" and args.schedule != _DEFAULT_KIND:
        raise UsageError(f"--schedule {args.schedule} applies to --engine grid; optuna tunes step only")
    refuse_unread(args, [args.schedule], closed_forms=True)
    other = _OPTUNA_ONLY if args.engine == "grid" else _GRID_ONLY
    given = [name for name in other if getattr(args, name) not in (None, False)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(
            f"{flag} applies to --engine {'optuna' if args.engine == 'grid' else 'grid'}, not {args.engine}"
        )


def _grid_list(read: Any, text: str, flag: str) -> Any:
    """A grid's list of values (already checked item by item by the flag's type); a range is Optuna's."""
    if ":" in text:
        raise UsageError(f"{flag} {text!r}: a range LOW:HIGH is for --engine optuna; the grid takes a list")
    return read(text)


def _grid_values(args: argparse.Namespace) -> tuple[dict[str, list[Any]], list[float] | None]:
    """The grid of ``--schedule`` (its parameters' flags; step's defaults for step) and the base LRs."""
    from steplr.experiments.grid import grid_from_flags, grid_params

    given: dict[str, Any] = {}
    for param in grid_params(args.schedule):
        value = getattr(args, param.name)
        if param.name in _SPACES:  # typed as a list or an Optuna range: read as a grid's list here
            text = value or (GRID_DEFAULTS.get(param.name) if args.schedule == _DEFAULT_KIND else None)
            value = None if text is None else _grid_list(_SPACES[param.name], text, param.flag)
        given[param.name] = value
    lrs = _grid_list(number_list, args.lr, "--lr") if args.lr is not None else None
    check_lrs(lrs)
    if lrs is not None and len(set(lrs)) != len(lrs):
        raise UsageError(f"--lr lists a value twice: {','.join(map(str, lrs))}")
    return grid_from_flags(args.schedule, given), lrs


def _plan_warnings(
    base: Any, kind: str, grid: dict[str, list[Any]], lrs: list[float], spe: int, err: TextIO
) -> list[str]:
    """Every grid config's explain warnings, printed on ``err`` (also names a bad value)."""
    from steplr.experiments.grid import grid_plans

    warnings = []
    for label, plan in grid_plans(base, kind, grid, lrs, spe):
        warnings += print_warnings(label, format_plan("", plan), err)
    return warnings


def cmd_sweep(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
    args.trainer = args.engine if args.engine in ENGINES else "auto"
    if args.engine in ENGINES:
        args.engine = "grid"
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
    if check_model_flags(args):
        return _cmd_grid_user(args, out_stream, err)
    from steplr.experiments.compare import recipe_config
    from steplr.experiments.grid import _grid_configs, grid_points, grid_sweep
    from steplr.experiments.report import write_grid_outputs
    from steplr.experiments.tensorboard import grid_sweep_runs, sweep_run_keys
    from steplr.training.engines import choose_engine
    from steplr.training.train import replace_folder

    grid, lrs = _grid_values(args)
    out = out_path(args, f"runs/{args.recipe}-sweep")
    check_out(out, args.force)
    tensorboard_folder(args, [], args.force)  # the extra and the folder, before any work (the runs: below)
    validation = _validation(args)
    settings = {k: v for k, v in given_settings(args).items() if k in _RUN_FIELDS}
    overrides = {**settings, "epochs": args.epochs, "validation": validation}
    base = recipe_config(args.recipe, **overrides)
    for lr in lrs or []:
        recipe_config(args.recipe, lr=lr)  # names a bad lr before any work
    data = load_data(base.dataset, args)
    seeds = args.seeds or 3
    models = (len(grid_points(grid)) + 1) * len(lrs or [base.lr]) * seeds
    per_epoch = batches(data, base)
    budget = memory_budget(args)
    check_work(f"sweep {args.recipe}", models, base, data, per_epoch, budget)
    spe = int(base.steps_per_epoch(per_epoch))
    warnings = _plan_warnings(base, args.schedule, grid, lrs or [base.lr], spe, err)
    configs = _grid_configs(base, args.schedule, grid, lrs or [base.lr], list(range(seeds)))
    engine, reason = choose_engine(configs, data, engine=args.trainer, device=args.device)
    board = tensorboard_folder(args, sweep_run_keys(args.schedule, list(grid), configs), args.force)
    engine_note(engine, reason, args.trainer, err)
    runs: list[Any] = []
    with claim_out(out, force=args.force) as claim:
        folder = claim.folder
        bar = progress(models)
        sweep_arguments: dict[str, Any] = {
            "grid": grid,
            "seeds": list(range(seeds)),
            "lrs": lrs,
            "overrides": overrides,
            "on_progress": bar.update if bar is not None else None,
            "schedule": args.schedule,
            "engine": args.trainer,
            "device": args.device,
            "max_memory": budget,
        }
        if board is None:
            result = grid_sweep(args.recipe, data, **sweep_arguments)
        else:  # the same sweep, keeping every run's history for TensorBoard
            result, runs = grid_sweep_runs(args.recipe, data, **sweep_arguments)
        if bar is not None:
            bar.close()
        lines = write_grid_outputs(folder, out, result, spe, warnings)
    if folder != out:
        replace_folder(folder, out)
    out_stream.write("\n".join(lines) + "\n")
    write_tensorboard(board, runs, out_stream)
    return 0


_RUN_FIELDS = ("optimizer", "momentum", "nesterov", "weight_decay", "batch_size", "interval")


def _validation(args: argparse.Namespace) -> float:
    from steplr.experiments.compare import DEFAULT_VALIDATION

    validation = DEFAULT_VALIDATION if args.validation is None else args.validation
    if validation == 0:
        raise UsageError("--validation 0 leaves nothing to choose the best config on: give a fraction such as 0.2")
    return float(validation)


def _cmd_grid_user(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
    """``sweep --model SPEC --data SPEC``: the user's file imported once, the data loaded once, every setting
    checked (one trial batch through the model) before the folder is touched."""
    from steplr.cli.user import UserCode, user_errors
    from steplr.experiments.tensorboard import sweep_run_keys
    from steplr.experiments.user import USER_DEFAULTS, prepare_sweep, run_sweep
    from steplr.training.train import replace_folder

    grid, lrs = _grid_values(args)
    code = UserCode()
    build = code.function(args.model, "--model")
    loss = args.loss or "cross_entropy"
    data = code.load_data(args.data, loss)
    out = out_path(args, f"runs/{build.__name__}-sweep")
    check_out(out, args.force)
    tensorboard_folder(args, [], args.force)  # the extra and the folder, before any work (the runs: below)
    given = {**given_settings(args), "validation": _validation(args)}
    settings = {k: given.get(k, v) for k, v in USER_DEFAULTS.items() if k != "lr"}
    with user_errors(args):
        prepared = prepare_sweep(
            model=build,
            data=data,
            schedule=args.schedule,
            grid=grid,
            lr=lrs or USER_DEFAULTS["lr"],
            seeds=args.seeds or 3,
            **settings,
            loss=loss,
            engine=args.trainer,
            device=args.device,
            max_memory=memory_budget(args),
            data_label=args.data,
        )
    for warning in prepared.warnings:
        err.write(f"steplr: warning: {warning}\n")
    board = tensorboard_folder(args, sweep_run_keys(prepared.kind, list(prepared.grid), prepared.configs), args.force)
    engine_note(prepared.engine, prepared.engine_reason, args.trainer, err)
    with claim_out(out, force=args.force) as claim:
        folder = claim.folder
        bar = progress(prepared.models)
        result = run_sweep(
            prepared, bar.update if bar is not None else None, out=folder, shown=out, keep_histories=board is not None
        )
        if bar is not None:
            bar.close()
    if folder != out:
        replace_folder(folder, out)
    out_stream.write("\n".join(result.lines) + "\n")
    write_tensorboard(board, result.histories, out_stream)
    return 0
