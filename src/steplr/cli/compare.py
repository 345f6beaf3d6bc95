"""``steplr compare``: train several schedules on the same seeds against a constant LR, choose on validation,
report on test with paired statistics. Flags, printing and files only: the work is
:func:`steplr.experiments.compare.compare`, the files :mod:`steplr.experiments.report`."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from steplr.cli.args import (
    UsageError,
    add_budget_option,
    add_seeds_option,
    add_tensorboard_option,
    add_validation_option,
    check_lrs,
    name_list,
    refuse_unread,
)
from steplr.cli.runs import (
    add_run_options,
    add_trainer_options,
    batches,
    check_out,
    check_work,
    claim_out,
    engine_note,
    figures,
    given_settings,
    load_data,
    memory_budget,
    out_path,
    plan_lines,
    print_warnings,
    progress,
    recipe_default,
    tensorboard_folder,
    write_tensorboard,
)
from steplr.cli.user import add_model_options, check_model_flags
from steplr.schedules.registry import KINDS, Param, RunShape, compared, lookup
from steplr.schedules.spec import SETTINGS

__all__ = ["add_compare_command", "cmd_compare"]


def _compare_default(param: Param, readers: list[str]) -> str:
    """What an unset schedule flag of compare means: a schedule with a fair setting for it gets that."""
    fair = [kind.name for kind in KINDS if kind.name in readers and param.name in kind.fair(RunShape(2, 2))]
    if not fair:
        return recipe_default(param, readers)
    return f"(default: the recipe's value; for {', '.join(fair)} the fair setting, see --schedules)"


def _fair_defaults() -> str:
    """The fair defaults of compare, in the words of the registry's entries."""
    return "; ".join(f"{kind.name}: {kind.fair_help}" for kind in KINDS if kind.fair_help)


def add_compare_command(commands: Any) -> None:
    parser = commands.add_parser(
        "compare",
        help="train several schedules on several seeds and report",
        description="Train schedules on the same seeds against a constant LR; choose on "
        "validation, report on test with paired statistics.",
    )
    add_run_options(
        parser,
        "runs/RECIPE-compare, or runs/FUNCTION-compare for --model",
        "replace a non-empty --out folder (the old run stays until the new one replaces it)",
        _compare_default,
        optional_recipe=True,
    )
    add_model_options(parser)
    add_trainer_options(parser, "--engine")
    parser.add_argument(
        "--schedules",
        type=name_list,
        default=list(compared(by_default=True)),
        help=f"schedules to compare ({', '.join(compared())}); none (constant LR) is always "
        "trained as the baseline; each is given fair settings where the recipe and the flags "
        f"set none ({_fair_defaults()})".replace("%", "%%"),
    )
    add_seeds_option(parser, 5, "seeds 0..N-1, the same for every schedule")
    add_validation_option(parser, "fraction of the training set held out to choose on (default: 1/6)")
    add_budget_option(parser)
    add_tensorboard_option(parser, "one per schedule and seed (DIR/SCHEDULE/seed-N)")


def _schedules(args: argparse.Namespace, baseline: str) -> list[str]:
    """The baseline and the compared schedules, in order; an unknown, repeated or unread choice refused."""
    schedules = args.schedules
    unknown = [s for s in schedules if s not in compared()]
    if unknown:
        raise UsageError(f"--schedules must name some of {', '.join(compared())}, got {','.join(schedules)!r}")
    if len(set(schedules)) != len(schedules):
        raise UsageError(f"--schedules names a schedule twice: {','.join(schedules)!r}")
    check_lrs(None if args.lr is None else [args.lr])
    return [baseline, *[s for s in schedules if s != baseline]]


def _check_settings(args: argparse.Namespace, schedules: list[str]) -> None:
    """Refuse a setting that no compared schedule reads (it would be recorded and silently ignored), and a warm-up
    that a reactive schedule in the comparison would lack."""
    refuse_unread(args, schedules, closed_forms=False)
    reactive = [s for s in schedules if lookup(s).reactive]
    if (args.warmup is not None or args.warmup_start_factor is not None) and reactive:
        raise UsageError(
            f"--warmup does not apply to {reactive[0]}, so a comparison would give the other schedules "
            f"a warm-up that {reactive[0]} lacks: drop {reactive[0]} or --warmup"
        )


def _print_plans(
    label: str, args: argparse.Namespace, base: Any, plans: dict[str, list[str]], out_stream: TextIO
) -> None:
    out_stream.write(
        f"{label}: {len(plans)} schedules x {args.seeds} seeds, validation {base.validation:.3g} of the training set\n"
    )
    for plan in plans.values():
        totals = [line for line in plan if " decay" in line and "; final lr " in line]
        out_stream.write(f"  plan {plan[0]}" + "".join(f"; {line}" for line in totals) + "\n")


def cmd_compare(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
    import torch

    torch.set_num_threads(1)
    if check_model_flags(args):
        return _cmd_compare_user(args, out_stream, err)
    return _cmd_compare_recipe(args, out_stream, err)


def _cmd_compare_recipe(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
    from steplr.experiments.compare import BASELINE, DEFAULT_VALIDATION, compare_config, recipe_config, train_comparison
    from steplr.experiments.grid import MAX_BATCH
    from steplr.experiments.report import compare_lines, write_compare_outputs
    from steplr.experiments.tensorboard import comparison_runs
    from steplr.training.engines import choose_engine
    from steplr.training.train import replace_folder

    names = _schedules(args, BASELINE)
    out = out_path(args, f"runs/{args.recipe}-compare")
    check_out(out, args.force)
    _check_settings(args, names)
    given = {"validation": DEFAULT_VALIDATION, **given_settings(args)}
    chosen = {k: v for k, v in given.items() if k in SETTINGS}  # win over each schedule's fair default
    base = recipe_config(args.recipe, **{k: v for k, v in given.items() if k not in SETTINGS})
    data = load_data(base.dataset, args)
    per_epoch = batches(data, base)
    budget = memory_budget(args)
    check_work(f"compare {args.recipe}", len(names) * args.seeds, base, data, per_epoch, budget)
    # After check_work has capped the number of runs: the list below has one entry per run.
    board = tensorboard_folder(args, [(name, seed) for name in names for seed in range(args.seeds)], args.force)
    configs = {name: compare_config(base, name, chosen, per_epoch) for name in names}
    plans = {name: plan_lines(config, per_epoch) for name, config in configs.items()}  # validates every schedule
    engine, reason = choose_engine(list(configs.values()), data, engine=args.trainer, device=args.device)
    plan_warnings = [w for name in names for w in print_warnings(name, plans[name], err)]
    engine_note(engine, reason, args.trainer, err)
    with claim_out(out, force=args.force) as claim:
        folder = claim.folder
        _print_plans(args.recipe, args, base, plans, out_stream)
        bar = progress(len(names) * args.seeds * base.epochs)
        result = train_comparison(
            args.recipe,
            base,
            configs,
            data,
            list(range(args.seeds)),
            engine=args.trainer,
            device=args.device,
            max_memory=budget,
            max_batch=MAX_BATCH,
            on_epoch=(lambda records: bar.update(len(records))) if bar is not None else None,
        )
        if bar is not None:
            bar.close()
        notes = plan_warnings + result.notes()
        rows = write_compare_outputs(folder, result, figures(folder, result.runs, result.judged_on), plans, notes)
    if folder != out:
        replace_folder(folder, out)
    # The plan warnings went to stderr before training.
    out_stream.write("\n".join(compare_lines(rows, notes[len(plan_warnings) :])) + "\n")
    out_stream.write(f"report: {out / 'report.html'}\n")
    write_tensorboard(board, comparison_runs(result.runs, list(range(args.seeds))), out_stream)
    return 0


def _cmd_compare_user(args: argparse.Namespace, out_stream: TextIO, err: TextIO) -> int:
    """``compare --model SPEC --data SPEC``: the user's file imported once, the data loaded once, every setting
    checked (one trial batch through the model) before the folder is touched."""
    from steplr.cli.user import UserCode, user_errors
    from steplr.experiments.report import compare_lines
    from steplr.experiments.user import USER_DEFAULTS, prepare_compare, run_compare
    from steplr.training.train import replace_folder

    code = UserCode()
    build = code.function(args.model, "--model")
    loss = args.loss or "cross_entropy"
    data = code.load_data(args.data, loss)
    out = out_path(args, f"runs/{build.__name__}-compare")
    check_out(out, args.force)
    tensorboard_folder(args, [], args.force)  # the extra and the folder, before any work (the runs: below)
    names = [s for s in args.schedules if s != "none"]
    _schedules(args, "none")
    _check_settings(args, ["none", *names])
    given = given_settings(args)
    with user_errors(args):
        prepared = prepare_compare(
            model=build,
            data=data,
            schedules=["none", *names],
            seeds=args.seeds,
            **{k: given.get(k, v) for k, v in USER_DEFAULTS.items()},
            loss=loss,
            engine=args.trainer,
            device=args.device,
            max_memory=memory_budget(args),
            data_label=args.data,
            schedule_settings={k: v for k, v in given.items() if k in SETTINGS},
        )
    for label, lines in prepared.plans.items():
        print_warnings(label, lines, err)
    board = tensorboard_folder(args, [(k, s) for k in prepared.configs for s in prepared.setup.seeds], args.force)
    engine_note(prepared.engine, prepared.engine_reason, args.trainer, err)
    with claim_out(out, force=args.force) as claim:
        folder = claim.folder
        _print_plans(prepared.setup.base.model, args, prepared.setup.base, prepared.plans, out_stream)
        bar = progress(prepared.models * prepared.setup.base.epochs)
        result = run_compare(
            prepared, (lambda records: bar.update(len(records))) if bar is not None else None, out=folder
        )
        if bar is not None:
            bar.close()
    if folder != out:
        replace_folder(folder, out)
    rows = result.comparison.summary()
    out_stream.write("\n".join(compare_lines(rows, result.notes[len(prepared.warnings) :])) + "\n")
    out_stream.write(f"report: {out / 'report.html'}\n")
    write_tensorboard(board, [(k, s, h) for (k, s), h in result.histories.items()], out_stream)
    return 0
