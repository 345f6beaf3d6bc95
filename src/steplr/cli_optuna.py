"""``steplr sweep --engine optuna``: the Optuna search's flags, printing and report; the search is in tune.py."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from .cli_runs import RunUsageError, _load_data, _progress
from .explain import explain, format_plan
from .schedules import StepDecay

__all__ = ["cmd_optuna"]


def cmd_optuna(args: argparse.Namespace, out_stream: TextIO) -> int:
    import optuna

    from .tune import SweepError, redact, run_optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is noise here; the table says it all
    study = args.study or f"steplr-{args.recipe}"
    if args.trials <= 0:
        raise RunUsageError(f"--trials must be a positive integer, got {args.trials}")
    if args.workers <= 0:
        raise RunUsageError(f"--workers must be a positive integer, got {args.workers}")
    step_range = args.step_size if ":" in args.step_size else "1ep:20ep"
    gamma_range = args.gamma if ":" in args.gamma else "0.05:0.99"
    out = Path(args.out or f"runs/{args.recipe}-optuna")
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        return _optuna_report(args, out, study, out_stream)
    helpers = []
    if args.workers > 1:  # the same search in more processes, cooperating through the shared storage
        command = [sys.executable, "-m", "steplr", "sweep", args.recipe, "--engine", "optuna", "--step-size",
                   step_range, "--gamma", gamma_range, "--trials", str(args.trials), "--study", study, "--out",
                   str(out)]
        for flag, value in (("--lr", args.lr), ("--storage", args.storage), ("--data-dir", args.data_dir)):
            if value is not None:
                command += [flag, value]
        if args.no_download:
            command.append("--no-download")
        helpers = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(args.workers - 1)]
    try:
        bar = _progress(args.trials)
        result = run_optuna(args.recipe, step_size_range=step_range, gamma_range=gamma_range, lr_range=args.lr,
                            trials=args.trials, storage=args.storage, study_name=study, run_dir=out,
                            data_dir=args.data_dir, download=not args.no_download,
                            on_trial=(lambda *_: bar.update()) if bar is not None else None)
        if bar is not None:
            bar.close()
    except SweepError:
        for helper in helpers:
            helper.kill()
        raise
    for helper in helpers:
        helper.wait()
    out_stream.write(f"study {study!r} on {redact(args.storage) if args.storage else out / 'optuna-journal.log'}: "
                     f"{len(result.trials)} trials\n")
    return _optuna_report(args, out, study, out_stream)


def _optuna_report(args: argparse.Namespace, out: Path, study_name: str, out_stream: TextIO) -> int:
    from .experiments import recipe_config
    from .plots import Curve, plot_schedules
    from .report import text_table, write_sweep_report
    from .tune import open_study, redact, study_rows

    study = open_study(args.recipe, study_name, args.storage, out, create=False)
    rows = [r for r in study_rows(study) if r["value"] is not None]
    if not rows:
        raise RunUsageError(f"study {study_name!r} has no finished trials yet")
    rows.sort(key=lambda r: r["value"], reverse=True)
    base = recipe_config(args.recipe)
    spe = 1 if base.interval == "epoch" else None
    header = ("trial", "step_size", "gamma", "lr", "final test acc", "state")
    table = [(str(r["number"]), str(r["step_size"]), f"{r['gamma']:.3g}", f"{r['lr']:.3g}",
              f"{r['value'] * 100:.2f}%", str(r["state"])) for r in rows]
    best = rows[0]
    batches = None if spe == 1 else -(-_load_data(base.dataset, args).x_train.shape[0] // base.batch_size)
    steps_per_epoch = spe or batches or 1
    figure = plot_schedules(
        [Curve(f"trial {r['number']}: step {r['step_size']}, gamma {r['gamma']:.3g}", StepDecay(r["step_size"], r["gamma"]),
               r["lr"]) for r in rows[:5]],
        base.epochs, out / "best_lr.png", steps_per_epoch, title="Learning rate of the best five trials",
    )
    plan = explain(StepDecay(best["step_size"], best["gamma"]), best["lr"], base.epochs, steps_per_epoch)
    plan_lines = format_plan(f"winner: trial {best['number']}", plan)
    where = redact(args.storage) if args.storage else str(out / "optuna-journal.log")
    report = write_sweep_report(out / "report.html", f"steplr sweep (optuna): {args.recipe}",
                                f"Study {study_name!r} in {where}: {len(rows)} finished trials.", header, table,
                                {"Learning rate of the best five trials": figure}, plan_lines,
                                {"recipe": base.as_dict(), "study": study_name, "storage": where})
    out_stream.write(text_table(header, table[:5]) + "\n" + "\n".join(plan_lines) + f"\nreport: {report}\n")
    return 0
