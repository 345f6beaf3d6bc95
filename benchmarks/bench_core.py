"""Core benchmarks, measured side by side in one run, written to benchmarks/RESULTS.md.

1. Per-call cost of ``scheduler.step()`` (right after ``optimizer.step()``): steplr.StepLR against
   torch.optim.lr_scheduler.StepLR, with 1 and 10 param groups, float and tensor learning rates.
2. The same for every drop-in against torch's class of the same name (kinds whose rate changes at every step
   included), float learning rates, 1 group, 10 groups of one lr, 10 groups of distinct lrs.
3. Start-up: wall time of ``steplr explain`` against ``python -c "import torch"`` and an empty interpreter.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_core.py``). Rounds alternate between the two
implementations so that drift in machine speed hits both alike; medians over rounds are reported.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
import warnings

import torch
from _results import write_section  # benchmarks/ is sys.path[0] when run as a script
from torch.optim import lr_scheduler as torch_sched

import steplr

ROUNDS = 15
CALLS = 4000
STARTUP_RUNS = 9
STEP_SIZE = 1000  # the usual case: most steps do not decay; each round still crosses boundaries


def build(kind: str, groups: int, tensor_lr: bool):
    params = [
        {"params": [torch.zeros(4, requires_grad=True)], "lr": torch.tensor(0.1) if tensor_lr else 0.1}
        for _ in range(groups)
    ]
    optimizer = torch.optim.SGD(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "steplr":
            scheduler = steplr.StepLR(optimizer, step_size=STEP_SIZE, gamma=0.5)
        else:
            scheduler = torch_sched.StepLR(optimizer, step_size=STEP_SIZE, gamma=0.5)
    return optimizer, scheduler


def time_steps(optimizer, scheduler, calls: int) -> float:
    """Mean nanoseconds per scheduler.step(), timing only that call."""
    clock = time.perf_counter_ns
    total = 0
    for _ in range(calls):
        optimizer.step()
        start = clock()
        scheduler.step()
        total += clock() - start
    return total / calls


def timer_overhead(calls: int) -> float:
    clock = time.perf_counter_ns
    total = 0
    for _ in range(calls):
        start = clock()
        total += clock() - start
    return total / calls


def bench_step() -> list[tuple[str, float, float, float]]:
    rows = []
    overhead = statistics.median(timer_overhead(CALLS) for _ in range(5))
    for groups, tensor_lr in [(1, False), (10, False), (1, True), (10, True)]:
        pairs = {kind: build(kind, groups, tensor_lr) for kind in ("steplr", "torch")}
        samples: dict[str, list[float]] = {"steplr": [], "torch": []}
        ratios = []
        for _ in range(ROUNDS):
            ours = time_steps(*pairs["steplr"], CALLS) - overhead
            theirs = time_steps(*pairs["torch"], CALLS) - overhead
            samples["steplr"].append(ours)
            samples["torch"].append(theirs)
            ratios.append(ours / theirs)
        label = f"{groups} group{'s' if groups > 1 else ''}, {'tensor' if tensor_lr else 'float'} lr"
        rows.append(
            (
                label,
                statistics.median(samples["steplr"]),
                statistics.median(samples["torch"]),
                statistics.median(ratios),
            )
        )
    return rows


# Every drop-in beside torch's class: (label, steplr's, torch's), each built as cls(optimizer, *args).
DROP_INS = [
    ("StepLR(10, 0.5)", lambda o: steplr.StepLR(o, 10, 0.5), lambda o: torch_sched.StepLR(o, 10, 0.5)),
    ("StepLR(1, 0.9999)", lambda o: steplr.StepLR(o, 1, 0.9999), lambda o: torch_sched.StepLR(o, 1, 0.9999)),
    (
        "MultiStepLR(every 100 steps, 0.9)",
        lambda o: steplr.MultiStepLR(o, range(100, 10**6, 100), 0.9),
        lambda o: torch_sched.MultiStepLR(o, range(100, 10**6, 100), 0.9),
    ),
    (
        "ExponentialLR(0.9999)",
        lambda o: steplr.ExponentialLR(o, 0.9999),
        lambda o: torch_sched.ExponentialLR(o, 0.9999),
    ),
    (
        "CosineAnnealingLR(T_max=10000)",
        lambda o: steplr.CosineAnnealingLR(o, 10000),
        lambda o: torch_sched.CosineAnnealingLR(o, 10000),
    ),
    # the family's lengths span the 4000 timed calls, so every call is inside the ramp or cycle
    (
        "ConstantLR(0.5, total_iters=2000)",
        lambda o: steplr.ConstantLR(o, 0.5, 2000),
        lambda o: torch_sched.ConstantLR(o, 0.5, 2000),
    ),
    (
        "LinearLR(0.1, 1.0, total_iters=10000)",
        lambda o: steplr.LinearLR(o, 0.1, 1.0, 10000),
        lambda o: torch_sched.LinearLR(o, 0.1, 1.0, 10000),
    ),
    (
        "PolynomialLR(total_iters=10000, power=2.0)",
        lambda o: steplr.PolynomialLR(o, 10000, 2.0),
        lambda o: torch_sched.PolynomialLR(o, 10000, 2.0),
    ),
    (
        "CosineAnnealingWarmRestarts(T_0=1000, T_mult=2)",
        lambda o: steplr.CosineAnnealingWarmRestarts(o, 1000, 2),
        lambda o: torch_sched.CosineAnnealingWarmRestarts(o, 1000, 2),
    ),
    (  # momentum cycled too (SGD's momentum), as by default in both
        "OneCycleLR(max_lr=1.0, total_steps=10000)",
        lambda o: steplr.OneCycleLR(o, 1.0, 10000),
        lambda o: torch_sched.OneCycleLR(o, 1.0, 10000),
    ),
    (
        "CyclicLR(0.01, 0.1, step_size_up=500)",
        lambda o: steplr.CyclicLR(o, 0.01, 0.1, 500),
        lambda o: torch_sched.CyclicLR(o, 0.01, 0.1, 500),
    ),
]
GROUPINGS = [
    ("1 group", [0.1]),
    ("10 groups, one lr", [0.1] * 10),
    ("10 groups, distinct lrs", [0.1 / (i + 1) for i in range(10)]),
]


def bench_drop_ins() -> list[tuple[str, str, float, float, float]]:
    """Per-call cost of step() for every drop-in and torch's class: alternating rounds, medians of the times and of
    the rounds' ratios."""
    rows = []
    overhead = statistics.median(timer_overhead(CALLS) for _ in range(5))
    for label, ours_cls, torch_cls in DROP_INS:
        for grouping, lrs in GROUPINGS:
            samples: dict[str, list[float]] = {"steplr": [], "torch": []}
            ratios = []
            for _ in range(ROUNDS):
                for kind, make in (("steplr", ours_cls), ("torch", torch_cls)):  # each round steps 0 to CALLS - 1
                    params = [{"params": [torch.zeros(4, requires_grad=True)], "lr": lr} for lr in lrs]
                    optimizer = torch.optim.SGD(params)
                    scheduler = make(optimizer)
                    optimizer.step()
                    scheduler.step()  # the first call's call-order check (both libraries) is not what is timed
                    samples[kind].append(time_steps(optimizer, scheduler, CALLS) - overhead)
                ratios.append(samples["steplr"][-1] / samples["torch"][-1])  # one round's pair: drift cancels
            ours, theirs = statistics.median(samples["steplr"]), statistics.median(samples["torch"])
            rows.append((label, grouping, ours, theirs, statistics.median(ratios)))
    return rows


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_startup() -> list[tuple[str, float, float]]:
    commands = {
        "steplr explain --lr 0.1 --step-size 10 --gamma 0.5 --epochs 40": [
            sys.executable,
            "-m",
            "steplr",
            "explain",
            "--lr",
            "0.1",
            "--step-size",
            "10",
            "--gamma",
            "0.5",
            "--epochs",
            "40",
        ],
        'python -c "import steplr.schedules.kinds"': [sys.executable, "-c", "import steplr.schedules.kinds"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        'python -c "pass"': [sys.executable, "-c", "pass"],
    }
    for argv in commands.values():
        wall(argv)  # warm the file cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(STARTUP_RUNS):
        for name, argv in commands.items():
            times[name].append(wall(argv))
    return [(name, statistics.median(ts), min(ts)) for name, ts in times.items()]


def main() -> None:
    step_rows = bench_step()
    drop_in_rows = bench_drop_ins()
    startup_rows = bench_startup()
    lines = [
        "# Core benchmark results",
        "",
        f"Written by `benchmarks/bench_core.py` on {time.strftime('%Y-%m-%d')}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads.",
        "",
        f"## scheduler.step() after optimizer.step() (StepLR, step_size={STEP_SIZE}; median of {ROUNDS} "
        f"alternating rounds of {CALLS} calls)",
        "",
        "| case | steplr (us/call) | torch (us/call) | steplr / torch |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {label} | {ours / 1000:.2f} | {theirs / 1000:.2f} | {ratio:.3f} |"
            for label, ours, theirs, ratio in step_rows
        ],
        "",
        f"## Every drop-in against torch's class: scheduler.step() after optimizer.step() (float lr; median of "
        f"{ROUNDS} alternating rounds of {CALLS} calls each, a fresh pair each round; the ratio is the median of the "
        "rounds' ratios)",
        "",
        "Every value steplr writes is the closed form `schedule.lr(base_lr, t)` (correctly rounded for the power "
        "kinds); torch's is its running product, except CosineAnnealingWarmRestarts, whose closed form torch "
        "evaluates each step.",
        "",
        "| scheduler | groups | steplr (us/call) | torch (us/call) | steplr / torch |",
        "| --- | --- | ---: | ---: | ---: |",
        *[
            f"| {label} | {grouping} | {ours / 1000:.2f} | {theirs / 1000:.2f} | {ratio:.2f} |"
            for label, grouping, ours, theirs, ratio in drop_in_rows
        ],
        "",
        f"## Start-up wall time (median and minimum of {STARTUP_RUNS} interleaved runs)",
        "",
        "| command | median (s) | min (s) |",
        "| --- | ---: | ---: |",
        *[f"| `{name}` | {median:.3f} | {low:.3f} |" for name, median, low in startup_rows],
        "",
    ]
    text = "\n".join(lines)
    write_section("core", text)  # only this script's section of RESULTS.md; other sections are kept
    print(text)


if __name__ == "__main__":
    main()
