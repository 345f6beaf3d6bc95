"""The torch.func engine against the sequential engine on models the stack engine cannot run.

Measures, side by side in one run (alternating rounds, medians), the time per config of
``steplr.training.functional.train_functional`` against ``steplr.training.train.train`` run once per config, on
the same configs and the same model:

* an MLP that is not a plain Linear/ReLU stack (2 -> 8, LayerNorm, Tanh -> 3) on the Qwerty data, 20 epochs, at
  K = 64 and K = 256 (the sequential time per config is the mean over a few of the configs);
* a small CNN (conv 1->8 3x3, BatchNorm, ReLU, max-pool, conv 8->16 3x3, ReLU, max-pool, linear) on the 8x8 digits
  (1,437 training images), 3 epochs, at K = 8;

and the peak memory per model: the max RSS of child processes training K1 and K2 models, (RSS2 - RSS1) /
(K2 - K1), beside the engine's own estimate (``functional.probe``). One thread, as the CLI runs
(``torch.set_num_threads(1)``). Writes the section "generic" of benchmarks/RESULTS.md.

Run: ``.venv/bin/python benchmarks/bench_generic.py`` (a few minutes). ``--memory mlp|cnn K`` runs one child.
``--sweep N BYTES`` trains N configs of the CNN for one epoch through ``train_many`` with ``max_memory=BYTES`` and
writes the section "generic-sweep" (wall time, chunk size, peak RSS growth).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import date

import torch
import torch.nn.functional as F
from _results import write_section  # benchmarks/ is sys.path[0] when run as a script
from torch import nn

from steplr.schedules.spec import ScheduleSpec
from steplr.training.config import TrainConfig
from steplr.training.data import load_digits, load_qwerty
from steplr.training.engines import choose_engine, chunk_size, train_many
from steplr.training.functional import probe, train_functional
from steplr.training.task import Task
from steplr.training.train import train

ROUNDS = 3
SEQUENTIAL_RUNS = {"mlp": 6, "mlp-gelu": 6, "cnn": 4}  # sequential runs per round (per-config time: their mean)
SIZES = {"mlp": (64, 256), "mlp-gelu": (64, 256), "cnn": (8,)}
MEMORY_SIZES = {"mlp": (256, 2048), "cnn": (64, 256)}
TARGETS = {("mlp", 64): 10.0, ("mlp", 256): 25.0, ("mlp-gelu", 64): 10.0, ("mlp-gelu", 256): 25.0, ("cnn", 8): 1.3}


def layer_norm_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3))


def gelu_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.GELU(), nn.Linear(8, 3))


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv1(x.view(-1, 1, 8, 8)))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def setup(name: str):
    """(data, task, base config) of a case."""
    if name == "mlp":
        return load_qwerty(), Task(layer_norm_mlp, name="layernorm-mlp"), TrainConfig(epochs=20, lr=0.05)
    if name == "mlp-gelu":
        return load_qwerty(), Task(gelu_mlp, name="gelu-mlp"), TrainConfig(epochs=20, lr=0.05)
    return load_digits(), Task(SmallCNN, name="cnn"), TrainConfig(epochs=3, lr=0.05, momentum=0.9)


def configs(base: TrainConfig, k: int, offset: int = 0) -> list[TrainConfig]:
    """K configs of one shape: their own seeds, LRs and step-decay schedules."""
    return [
        TrainConfig(
            **{
                **{f: getattr(base, f) for f in ("epochs", "momentum", "optimizer", "batch_size")},
                "lr": base.lr * (0.5 + (i % 7) / 6),
                "seed": i,
                "schedule": ScheduleSpec("step", {"step_size": 5 + i % 20, "gamma": 0.1 + 0.8 * (i % 9) / 8}),
            }
        )
        for i in range(offset, offset + k)
    ]


def time_sequential(name: str, runs: int, offset: int) -> float:
    data, task, base = setup(name)
    start = time.perf_counter()
    for config in configs(base, runs, offset):
        train(config, data, task=task)
    return (time.perf_counter() - start) / runs


def time_functional(name: str, k: int) -> float:
    data, task, base = setup(name)
    chosen = configs(base, k)
    start = time.perf_counter()
    train_functional(chosen, data, task=task)
    return (time.perf_counter() - start) / k


def child_memory(name: str, k: int) -> int:
    """Peak RSS growth (bytes) of a fresh process while it trains K models of the case (after a warm-up)."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory", name, str(k)], capture_output=True, text=True, check=True
    )
    return int(json.loads(out.stdout)["growth"])


def rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class PeakRSS:
    """The largest RSS seen while the block runs (sampled every millisecond by a thread)."""

    def __enter__(self) -> PeakRSS:
        self.peak, self.done = rss(), threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.001):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, rss())


def memory_main(name: str, k: int) -> None:
    torch.set_num_threads(1)
    data, task, base = setup(name)
    one_epoch = dataclasses.replace(base, epochs=1)
    train_functional(configs(one_epoch, 2), data, task=task)  # warm-up: the code paths, torch's own caches
    gc.collect()
    start = rss()
    with PeakRSS() as peak:
        train_functional(configs(one_epoch, k), data, task=task)
    print(json.dumps({"growth": peak.peak - start}))


def sweep_main(n: int, max_memory: int) -> None:
    """Train ``n`` CNN configs for one epoch through ``train_many`` within ``max_memory``; section "generic-sweep"."""
    torch.set_num_threads(1)
    data, task, base = setup("cnn")
    chosen = configs(dataclasses.replace(base, epochs=1), n)
    engine, reason = choose_engine(chosen, data, task)
    size = chunk_size(chosen, data, task, max_memory=max_memory)
    start_rss, start = rss(), time.perf_counter()
    with PeakRSS() as peak:
        histories = train_many(chosen, data, task=task, max_memory=max_memory)
    elapsed = time.perf_counter() - start
    finite = sum(1 for h in histories if math.isfinite(h.epochs[-1].test_loss))
    text = "\n".join(
        [
            f"## A {n:,}-config sweep of the small CNN through `train_many` (one process, 1 epoch each)",
            "",
            f"Written by `benchmarks/bench_generic.py --sweep {n} {max_memory}` on {date.today()}, 1 thread.",
            "",
            "| configs | engine | max_memory | chunk | wall time (s) | peak RSS growth (MiB) | finite test losses |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
            f"| {n:,} | {engine} ({reason}) | {max_memory / 2**20:.0f} MiB | {size} | {elapsed:.0f} | "
            f"{(peak.peak - start_rss) / 2**20:.0f} | {finite:,} |",
        ]
    )
    write_section("generic-sweep", text)
    print(text)


def op_costs() -> list[str]:
    """Time of one call of the MLP's elementwise ops on the activations of K = 256 models, (256, 32, 8)."""
    a = torch.randn(256, 32, 8)
    ops = {
        "tanh": torch.tanh,
        "layer_norm (no affine)": lambda t: F.layer_norm(t, (8,)),
        "gelu": F.gelu,
        "relu": torch.relu,
    }
    rows = []
    for name, op in ops.items():
        op(a)
        start = time.perf_counter()
        for _ in range(200):
            op(a)
        rows.append(f"| {name} | {(time.perf_counter() - start) / 200 * 1e6:.0f} |")
    return rows


def main() -> None:
    torch.set_num_threads(1)
    for name in SIZES:  # warm-up: imports, first calls of torch.func
        time_functional(name, 2)
        time_sequential(name, 1, 0)
    times: dict[tuple[str, int | None], list[float]] = {}
    for round_ in range(ROUNDS):
        for name, sizes in SIZES.items():
            runs = SEQUENTIAL_RUNS[name]
            times.setdefault((name, None), []).append(time_sequential(name, runs, round_ * runs))
            for k in sizes:
                times.setdefault((name, k), []).append(time_functional(name, k))
        print(f"round {round_ + 1} of {ROUNDS} done", file=sys.stderr)
    rows = []
    for name, sizes in SIZES.items():
        sequential = statistics.median(times[(name, None)])
        for k in sizes:
            functional = statistics.median(times[(name, k)])
            ratio = sequential / functional
            target = TARGETS[(name, k)]
            rows.append(
                f"| {name} | {k} | {sequential * 1e3:.1f} | {functional * 1e3:.2f} | {ratio:.1f}x | "
                f"{target:g}x | {'met' if ratio >= target else 'NOT met'} |"
            )
    memory_rows = []
    for name, (k1, k2) in MEMORY_SIZES.items():
        growth1, growth2 = child_memory(name, k1), child_memory(name, k2)
        data, task, base = setup(name)
        estimate = probe([base], data, task, None).bytes_per_model
        per_model = (growth2 - growth1) / (k2 - k1)
        memory_rows.append(
            f"| {name} | {k1} / {k2} | {growth1 / 2**20:.1f} / {growth2 / 2**20:.1f} | {per_model / 1024:.1f} | "
            f"{estimate / 1024:.1f} |"
        )
    text = "\n".join(
        [
            "# Generic batched engine (torch.func) against the sequential engine",
            "",
            f"Written by `benchmarks/bench_generic.py` on {date.today()}; Python {platform.python_version()}, torch "
            f"{torch.__version__}, {platform.machine()}, 1 thread.",
            "",
            f"## Time per config (median of {ROUNDS} alternating rounds; sequential = `train()` once per config on "
            f"{SEQUENTIAL_RUNS['mlp']} (MLP) or {SEQUENTIAL_RUNS['cnn']} (CNN) of the configs a round)",
            "",
            "mlp: 2 -> 8, LayerNorm, Tanh -> 3 on Qwerty (720 training points, batch 32, 20 epochs, SGD); mlp-gelu "
            "(for comparison): 2 -> 8, GELU -> 3, the same otherwise. CNN: conv "
            "1->8 3x3 (no bias), BatchNorm, ReLU, max-pool, conv 8->16 3x3, ReLU, max-pool, linear 64->10 on the 8x8 "
            "digits (1,437 training images, batch 32, 3 epochs, SGD with momentum 0.9). Every config has its own "
            "seed, LR and step-decay schedule.",
            "",
            "| model | K | sequential (ms/config) | functional (ms/config) | speed-up | target | |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
            "",
            "## Peak memory per model (a child process trains K1, another K2 models for 1 epoch after a warm-up; peak "
            "RSS growth sampled every ms; per model = the slope between them)",
            "",
            "| model | K1 / K2 | peak RSS growth (MiB) | measured per model (KiB) | engine's estimate (KiB) |",
            "| --- | --- | --- | ---: | ---: |",
            *memory_rows,
            "",
            "## Why the LayerNorm/Tanh MLP scales less at K = 256: one call of its ops on (256, 32, 8) activations",
            "",
            "At K = 256 the functional engine's step is mostly arithmetic, and on this build tanh and a LayerNorm "
            "over 8 features cost several times what ReLU or GELU do per element; the sequential engine pays the "
            "same per element, but its step is mostly per-op overhead.",
            "",
            "| op | us per call |",
            "| --- | ---: |",
            *op_costs(),
        ]
    )
    write_section("generic", text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory":
        memory_main(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--sweep":
        sweep_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
