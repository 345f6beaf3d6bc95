"""``steplr compare --model FILE:build_net --data FILE:load`` pays the import and the set-up once, however many runs.

What is measured, in one run of this script, on a user's file written to a temporary folder (an MLP with LayerNorm,
1,600 training examples of 20 features, 3 classes; 5 epochs, batch 64, trained one model after another):

1. Wall time of whole processes, alternating which goes first each round, medians over the rounds:
   (a) one command, 2 schedules (the constant LR and step) x 5 seeds = 10 runs;
   (b) five commands of 1 seed each (2 schedules x 1 seed), the same 10 runs in all.
   The ratio b / a, and the set-up one more process costs, (b - a) / 4.
2. Inside one process (a fresh child, timers around the steps of the command as ``cli/compare.py`` takes them):
   importing steplr's CLI and torch, importing the user's file and loading its data, the checks (one trial batch
   through the model), the training, and the figures and report; how often the file was imported and ``load()``
   called (a counter the file writes).

Results go to the ``user-model`` section of benchmarks/RESULTS.md (other sections kept) and are printed.

Run: ``.venv/bin/python benchmarks/bench_user_model.py`` (about two minutes on a 2-core machine); ``--rounds N``
changes the number of rounds, ``--quick`` does 1 round and writes nothing.
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

USER_FILE = """
import pathlib
import torch
from torch import nn

with pathlib.Path(__file__).with_name("calls.txt").open("a") as log:
    log.write("import\\n")


def build_net():
    return nn.Sequential(nn.Linear(20, 64), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, 3))


def load():
    with pathlib.Path(__file__).with_name("calls.txt").open("a") as log:
        log.write("load\\n")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2400, 20, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] + x[:, 2] > 0.5).long()
    return x[:1920], y[:1920], x[1920:], y[1920:]
"""

SETTINGS = ["--schedules", "step", "--epochs", "5", "--batch-size", "64", "--lr", "0.05", "--engine", "sequential"]

PROBE = """
import time
t0 = time.perf_counter()
import argparse, io, sys
from steplr.cli.main import build_parser
from steplr.cli import user as user_cli
import torch
from steplr.experiments.user import USER_DEFAULTS, prepare_compare, run_compare
t1 = time.perf_counter()
args = build_parser().parse_args(sys.argv[1:])
code = user_cli.UserCode()
build = code.function(args.model, "--model")
data = code.load_data(args.data, "cross_entropy")
t2 = time.perf_counter()
torch.set_num_threads(1)
given = {"lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs}
prepared = prepare_compare(model=build, data=data, schedules=["none", *args.schedules], seeds=args.seeds,
                           **{k: given.get(k, v) for k, v in USER_DEFAULTS.items()}, engine=args.trainer)
t3 = time.perf_counter()
result = run_compare(prepared)
t4 = time.perf_counter()
import pathlib, tempfile
from steplr.experiments.user import write_compare
with tempfile.TemporaryDirectory() as folder:
    write_compare(pathlib.Path(folder), result.comparison, prepared.plans, result.notes)
t5 = time.perf_counter()
print({"imports": t1 - t0, "user file and data": t2 - t1, "checks (validation split, trial batch)": t3 - t2,
       "training (10 runs)": t4 - t3, "figures and report": t5 - t4})
"""


def _command(folder: Path, seeds: int, out: Path) -> list[str]:
    spec = folder / "net.py"
    return [
        sys.executable, "-m", "steplr", "compare", "--model", f"{spec}:build_net", "--data", f"{spec}:load",
        "--seeds", str(seeds), "--out", str(out), *SETTINGS,
    ]  # fmt: skip


def _timed(commands: list[list[str]]) -> float:
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "net.py").write_text(USER_FILE)
        calls = folder / "calls.txt"
        one, five = [], []
        counter = 0

        def outs(n: int) -> list[Path]:
            nonlocal counter
            counter += 1
            return [folder / f"run{counter}-{i}" for i in range(n)]

        _timed([_command(folder, 1, outs(1)[0])])  # warm the file system caches and .pyc files
        for r in range(rounds):
            pair = [
                ("one", lambda: _timed([_command(folder, 5, outs(1)[0])])),
                ("five", lambda: _timed([_command(folder, 1, out) for out in outs(5)])),
            ]
            for name, run in pair if r % 2 == 0 else pair[::-1]:
                (one if name == "one" else five).append(run())
        calls.unlink()
        subprocess.run(_command(folder, 5, outs(1)[0]), check=True, capture_output=True)
        counted = calls.read_text().split()
        spec = folder / "net.py"
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, "compare", "--model", f"{spec}:build_net", "--data", f"{spec}:load",
             "--seeds", "5", *SETTINGS],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        steps = ast.literal_eval(probe.stdout.strip().splitlines()[-1])  # the dict the probe printed
    a, b = statistics.median(one), statistics.median(five)
    return {
        "one": a,
        "five": b,
        "ratio": b / a,
        "per_process": (b - a) / 4,
        "one_all": one,
        "five_all": five,
        "imports": counted.count("import"),
        "loads": counted.count("load"),
        "steps": steps,
    }


def markdown(result: dict[str, object], rounds: int) -> str:
    steps = result["steps"]
    assert isinstance(steps, dict)
    total = sum(steps.values())
    lines = [
        f"## Your own model: one command for many runs (median of {rounds} alternating rounds)",
        "",
        f"`bench_user_model.py`, {platform.python_implementation()} {platform.python_version()}, "
        "a user's file with an MLP (LayerNorm), 1,920 training examples of 20 features, 5 epochs, batch 64, "
        "trained one model after another (`--engine sequential`); 10 runs either way.",
        "",
        "| what | wall time |",
        "|---|---|",
        f"| one `compare --model --data --seeds 5` (2 schedules x 5 seeds) | {result['one']:.2f} s |",
        f"| five `compare ... --seeds 1` (2 schedules x 1 seed each) | {result['five']:.2f} s |",
        f"| ratio five / one | {result['ratio']:.2f}x |",
        f"| what one more process costs, (five - one) / 4 | {result['per_process']:.2f} s |",
        "",
        f"In one `--seeds 5` command the file was imported {result['imports']} time(s) and `load()` called "
        f"{result['loads']} time(s). Where its in-process seconds went (a probe timing the command's steps):",
        "",
        "| step | seconds | share |",
        "|---|---|---|",
        *(f"| {name} | {value:.2f} | {value / total:.0%} |" for name, value in steps.items()),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    result = measure(rounds)
    text = markdown(result, rounds)
    print(text)
    print(json.dumps({"one": result["one_all"], "five": result["five_all"]}))
    if not args.quick:
        from _results import write_section

        write_section("user-model", text)


if __name__ == "__main__":
    main()
