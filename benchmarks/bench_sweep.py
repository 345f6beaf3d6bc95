"""Batched training against sequential runs of the fast trainer, on the Qwerty recipe.

Measures, in one run, the time per config of ``steplr.training.batched.train_batched`` with K = 1, 16, 64, 256
models against ``steplr.training.train.train`` run once per config (alternating the two, medians of the rounds),
and the peak memory of batched runs at several K (each in its own child process, max RSS read by the child at
exit), from which the largest K that fits in 4 GiB is extrapolated linearly. Writes the section "sweep" of
benchmarks/RESULTS.md.

Run: ``.venv/bin/python benchmarks/bench_sweep.py`` (about two minutes). ``--memory K`` runs one child by hand.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from _results import write_section  # benchmarks/ is sys.path[0] when run as a script

from steplr.experiments.compare import recipe_config
from steplr.training.batched import train_batched
from steplr.training.data import load_qwerty
from steplr.training.train import train

SIZES = (1, 16, 64, 256)
ROUNDS = 3
SEQUENTIAL_RUNS = 8  # sequential runs per round (per-config time is their mean)
MEMORY_SIZES = (256, 4096, 16384)  # the last two, well above the fixed cost of torch, give the slope
LIMIT_MIB = 4096
CORES = os.cpu_count() or 1


def configs(k: int) -> list:
    base = recipe_config("qwerty")
    return [base.with_settings(seed=i, gamma=0.1 + 0.8 * (i % 9) / 8, step_size=f"{1 + i % 10}ep") for i in range(k)]


def time_sequential(data, runs: int, offset: int) -> float:
    chosen = configs(offset + runs)[offset:]
    start = time.perf_counter()
    for config in chosen:
        train(config, data)
    return (time.perf_counter() - start) / runs


def time_batched(data, k: int, threads: int = 1) -> float:
    chosen = configs(k)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    train_batched(chosen, data)
    elapsed = time.perf_counter() - start
    torch.set_num_threads(1)
    return elapsed / k


def child_memory(k: int) -> None:
    torch.set_num_threads(1)
    train_batched(configs(k), load_qwerty())
    print(json.dumps({"k": k, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    torch.set_num_threads(1)
    data = load_qwerty()
    train(configs(1)[0], data)
    train_batched(configs(2), data)  # warm both paths
    rows = []
    for k in SIZES:
        sequential, batched, ratios, ratios_all_cores = [], [], [], []
        for r in range(ROUNDS):
            s = time_sequential(data, SEQUENTIAL_RUNS, r * SEQUENTIAL_RUNS)
            b = time_batched(data, k)
            b_all = time_batched(data, k, CORES)
            sequential.append(s)
            batched.append(b)
            ratios.append(s / b)
            ratios_all_cores.append(s / b_all)
        rows.append(
            (
                k,
                statistics.median(sequential),
                statistics.median(batched),
                statistics.median(ratios),
                statistics.median(ratios_all_cores),
            )
        )
        print(
            f"K={k}: sequential {rows[-1][1] * 1000:.1f} ms/config, batched {rows[-1][2] * 1000:.2f} ms/config, "
            f"{rows[-1][3]:.1f}x ({rows[-1][4]:.1f}x on {CORES} threads)",
            flush=True,
        )
    memory = []
    for k in MEMORY_SIZES:
        out = subprocess.run(
            [sys.executable, __file__, "--memory", str(k)], capture_output=True, text=True, check=True
        ).stdout
        memory.append(json.loads(out.strip().splitlines()[-1]))
        print(f"memory K={k}: {memory[-1]['max_rss_mib']:.0f} MiB", flush=True)
    (k0, m0), (k1, m1) = (memory[-2]["k"], memory[-2]["max_rss_mib"]), (memory[-1]["k"], memory[-1]["max_rss_mib"])
    per_model = (m1 - m0) / (k1 - k0)
    largest = int(k1 + (LIMIT_MIB - m1) / per_model) if per_model > 0 else None
    targets = {16: 15, 64: 30, 256: 45}
    lines = [
        "# Batched training (sweep) results",
        "",
        f"Written by `benchmarks/bench_sweep.py` on {time.strftime('%Y-%m-%d')}; torch {torch.__version__}, "
        "`torch.set_num_threads(1)`; Qwerty recipe (20 epochs, 460 iterations, SGD, StepLR per iteration), each "
        "config with its own seed, step_size and gamma.",
        "",
        f"## Time per config (median of {ROUNDS} alternating rounds; sequential = `train()` once per config, "
        f"{SEQUENTIAL_RUNS} runs a round)",
        "",
        f"| K | sequential (ms/config) | batched (ms/config) | speed-up | target | speed-up, batched on {CORES} "
        "threads |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {k} | {s * 1000:.1f} | {b * 1000:.2f} | {r:.1f}x | {targets.get(k, '-')}"
            f"{'x' if k in targets else ''} | {r_all:.1f}x |"
            for k, s, b, r, r_all in rows
        ],
        "",
        "## Peak memory of a batched run (max RSS of a child process training K models, 20 epochs)",
        "",
        "| K | peak RSS (MiB) |",
        "| ---: | ---: |",
        *[f"| {m['k']} | {m['max_rss_mib']:.0f} |" for m in memory],
        "",
        f"Per extra model: {per_model * 1024:.1f} KiB; the largest K that fits in {LIMIT_MIB} MiB, extrapolated "
        f"linearly from K={k0} and K={k1}: about {largest:,} models."
        if largest
        else "",
        "",
    ]
    text = "\n".join(lines)
    write_section("sweep", text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        child_memory(int(sys.argv[2]))
    else:
        main()
