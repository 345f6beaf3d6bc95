"""steplr.compare and steplr.sweep on a model and data of your own (the "Your own model" page).

Run it with ``python docs/examples/your_own_model.py``; it writes ``runs/mine`` in the current folder. The same
file serves the command line: ``steplr compare --model your_own_model.py:build_net --data your_own_model.py:load``.
"""

from __future__ import annotations

import torch
from torch import nn

import steplr


def build_net() -> nn.Module:
    """A fresh model: steplr calls this under each run's seed, so every schedule starts from the same weights."""
    return nn.Sequential(nn.Linear(20, 64), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, 3))


def load() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The data: training inputs and labels, then test inputs and labels (integer labels: classes)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 20, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] + x[:, 2] > 0.5).long()
    return x[:1000], y[:1000], x[1000:], y[1000:]


if __name__ == "__main__":
    result = steplr.compare(
        model=build_net,
        data=load(),
        # schedule objects are taken as given; registry names get their fair default for the run
        schedules={"step": steplr.StepDecay("3ep", 0.5), "cosine": "cosine"},
        seeds=3,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        batch_size=64,
        epochs=8,
        out="runs/mine",  # optional: report.html, summary.json and the figures, as `steplr compare --out` writes
    )
    print("engine:", result.engine, "-", result.engine_reason)
    for row in result.rows:  # the fields of summary.json; none (the constant LR) is always the baseline
        print(row["schedule"], round(row["test_acc_mean"], 3), row["verdict"])
    history = result.histories[("step", 2)]  # one run's History: per-epoch metrics, per-iteration LRs
    print(
        "step, seed 2: final test accuracy",
        round(history.epochs[-1].test_acc, 3),
        "over",
        len(history.iteration_lrs),
        "iterations",
    )
    best = steplr.sweep(
        model=build_net,
        data=load(),
        step_size=["2ep", "4ep"],
        gamma=[0.1, 0.5],
        lr=[0.05, 0.1],
        seeds=2,
        momentum=0.9,
        epochs=8,
    )
    print("chosen on validation:", best.best_config.schedule.describe(), "lr", best.best["lr"])
