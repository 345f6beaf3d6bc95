"""``steplr sweep``: grid sweeps (batched) and Optuna searches; flags, printing and files only."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any, TextIO

from .cli_runs import RunUsageError, _load_data, _prepare_out, _progress
from .explain import explain, format_plan
from .schedules import StepDecay

__all__ = ["add_sweep_command", "cmd_sweep"]


def add_sweep_command(commands: Any) -> None:
    sweep = commands.add_parser("sweep", help="tune step_size and gamma: a batched grid, or Optuna over ranges")
    sweep.add_argument("recipe", help="qwerty, digits, mnist or fashion-mnist")
    sweep.add_argument("--step-size", default="1ep,2ep,5ep,10ep",
                       help="grid: comma-separated durations; optuna: a range such as 1ep:20ep")
    sweep.add_argument("--gamma", default="0.1,0.3,0.5,0.7,0.9", help="grid: comma-separated; optuna: 0.05:0.99")
    sweep.add_argument("--lr", default=None, help="grid: comma-separated base LRs; optuna: a range 1e-4:1e-1")
    sweep.add_argument("--seeds", type=int, default=3, help="grid: seeds 0..N-1 for every config")
    sweep.add_argument("--epochs", type=int, default=None)
    sweep.add_argument("--out", default=None, help="run folder (default: runs/RECIPE-sweep)")
    sweep.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    sweep.add_argument("--data-dir", default=None)
    sweep.add_argument("--no-download", action="store_true")
    sweep.add_argument("--engine", choices=("grid", "optuna"), default="grid")
    sweep.add_argument("--trials", type=int, default=30, help="optuna: finished trials wanted in the study")
    sweep.add_argument("--storage", default=None,
                       help="optuna: postgresql://user@host:port/db to share a study across machines "
                            "(default: a journal file in --out)")
    sweep.add_argument("--study", default=None, help="optuna: study name (default: steplr-RECIPE)")
    sweep.add_argument("--workers", type=int, default=1, help="optuna: local worker processes")
    sweep.add_argument("--report", action="store_true", help="optuna: rebuild the report from the storage only")


def _durations(text: str) -> list[Any]:
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise RunUsageError(f"--step-size must be a comma-separated list of durations, got {text!r}")
    return [int(item) if item.isdigit() else item for item in items]


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise RunUsageError(f"{flag} must be a comma-separated list of numbers, got {text!r}") from None
    return values


def cmd_sweep(args: argparse.Namespace, out_stream: TextIO) -> int:
    if args.engine == "optuna":
        import torch

        torch.set_num_threads(1)  # one small model per worker: threads cost more than they save
        from .cli_optuna import cmd_optuna

        return cmd_optuna(args, out_stream)
    # The grid trains large batches, whose batched matmuls can use every core (1.1-1.4x on two cores at K >= 256 in
    # repeated, noisy runs), so torch keeps its default thread count here.
    if args.seeds <= 0:
        raise RunUsageError(f"--seeds must be a positive integer, got {args.seeds}")
    step_sizes = _durations(args.step_size)
    gammas = _floats(args.gamma, "--gamma")
    lrs = _floats(args.lr, "--lr") if args.lr else None
    for s in step_sizes:
        for g in gammas:
            StepDecay(s, g)  # names a bad step size or gamma before any training
    out = _prepare_out(args, f"runs/{args.recipe}-sweep")
    from .experiments import recipe_config
    from .grid import grid_sweep

    base = recipe_config(args.recipe, epochs=args.epochs)
    data = _load_data(base.dataset, args)
    total = (len(step_sizes) * len(gammas) + 1) * len(lrs or [base.lr]) * args.seeds
    bar = _progress(total)
    result = grid_sweep(args.recipe, data, step_sizes, gammas, list(range(args.seeds)), lrs,
                        {"epochs": args.epochs}, on_progress=bar.update if bar is not None else None)
    if bar is not None:
        bar.close()
    _write_grid_outputs(out, result, data, out_stream)
    return 0


def _write_grid_outputs(out: Path, result: Any, data: Any, out_stream: TextIO) -> None:
    import numpy as np

    from .plots import Curve, plot_heatmap, plot_schedules
    from .report import text_table, write_sweep_report
    from ._files import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(result.rows[0]))
    writer.writeheader()
    writer.writerows(result.rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    summaries = result.summaries()
    best = summaries[0]
    batches = -(-data.x_train.shape[0] // result.base.batch_size)
    spe = batches if result.base.interval == "iteration" else 1
    grid = np.full((len(result.step_sizes), len(result.gammas)), np.nan)
    for s in summaries:
        if s.lr == best.lr:
            grid[result.step_sizes.index(s.step_size), result.gammas.index(s.gamma)] = s.test_acc_mean
    figures = {
        "Mean final test accuracy": plot_heatmap(
            grid, [str(s) for s in result.step_sizes], [f"{g:g}" for g in result.gammas], best.baseline_acc,
            out / "heatmap.png", f"{result.recipe}: step_size x gamma (lr {best.lr:g}, {len(result.seeds)} seeds)",
        ),
        "Learning rate of the best five": plot_schedules(
            [Curve(f"step {s.step_size}, gamma {s.gamma:g}, lr {s.lr:g}", StepDecay(s.step_size, s.gamma), s.lr)
             for s in summaries[:5]],
            result.base.epochs, out / "best_lr.png", spe, title="Learning rate of the best five configs",
        ),
    }
    header = ("step_size", "gamma", "lr", "final test acc", "vs constant LR", "diverged seeds")
    rows = [
        (str(s.step_size), f"{s.gamma:g}", f"{s.lr:g}", f"{s.test_acc_mean * 100:.2f}% ± {s.test_acc_sd * 100:.2f}",
         f"{s.margin * 100:+.2f} pts", str(s.diverged))
        for s in summaries
    ]
    plan = explain(StepDecay(best.step_size, best.gamma), best.lr, result.base.epochs, spe)
    plan_lines = format_plan(f"winner: step {best.step_size}, gamma {best.gamma:g}, lr {best.lr:g}", plan)
    beating = [s for s in summaries if s.margin > 0]
    verdict = (
        f"{len(beating)} of {len(summaries)} StepLR configs beat a constant LR at their base LR; the best by "
        f"{beating[0].margin * 100:.2f} points (step {beating[0].step_size}, gamma {beating[0].gamma:g}, "
        f"lr {beating[0].lr:g})."
        if beating else "No StepLR config beats a constant LR at its base LR here."
    )
    intro = (f"{len(summaries)} StepLR configs x {len(result.seeds)} seeds, trained in batches, against a constant "
             f"LR on the same seeds ({best.baseline_acc * 100:.2f}% at lr {best.lr:g}). {verdict}")
    report = write_sweep_report(out / "report.html", f"steplr sweep: {result.recipe}", intro, header, rows,
                                figures, plan_lines,
                                {"recipe": result.base.as_dict(), "step_sizes": result.step_sizes,
                                 "gammas": result.gammas, "lrs": result.lrs, "seeds": result.seeds})
    out_stream.write(f"{result.recipe}: {len(summaries)} configs x {len(result.seeds)} seeds\n")
    out_stream.write(text_table(header, rows[:5]) + "\n" + verdict + "\n")
    out_stream.write("\n".join(plan_lines) + "\n")
    out_stream.write(f"results: {out / 'results.csv'}\nreport: {report}\n")
