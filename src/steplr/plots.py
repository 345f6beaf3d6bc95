"""Figures of learning-rate schedules (matplotlib, Agg backend, written atomically to disk)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._files import atomic_write
from .explain import explain
from .schedules import Schedule

if TYPE_CHECKING:
    from .train import History

__all__ = ["Curve", "plot_schedules", "save_figure", "plot_run_lrs", "plot_run_metric", "plot_heatmap"]


@dataclass(frozen=True)
class Curve:
    """One line of a schedule plot."""

    label: str
    schedule: Schedule
    base_lr: float


def plot_schedules(
    curves: Sequence[Curve],
    epochs: int,
    path: str | os.PathLike[str],
    steps_per_epoch: int = 1,
    log_scale: bool = False,
    title: str | None = None,
) -> Path:
    """Draw every curve's learning rate over the run on one figure and save it to ``path`` (PNG, SVG, PDF).

    The x axis is in epochs; with several steps per epoch each step is drawn. Returns the written path.
    """
    plt = _pyplot()
    total = epochs * steps_per_epoch
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    try:
        for curve in curves:
            # One point per constant interval (the plan's), plus the end of the run: exact and small.
            plan = explain(curve.schedule, curve.base_lr, epochs, steps_per_epoch)
            starts = [i.first_step for i in plan.intervals] + [total]
            lrs = [i.lr for i in plan.intervals] + [plan.final_lr]
            ax.plot(np.asarray(starts) / steps_per_epoch, lrs, drawstyle="steps-post", label=curve.label,
                    linewidth=1.8)
        if log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.set_xlim(0, epochs)
        ax.grid(True, alpha=0.3)
        ax.set_title(title or "Learning-rate schedule")
        if len(curves) > 1 or curves[0].label:
            ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def save_figure(fig: object, path: str | os.PathLike[str]) -> Path:
    """Save a matplotlib figure atomically (PNG, SVG or PDF, from the file name)."""
    suffix = Path(path).suffix or ".png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=suffix.lstrip(".")), suffix)  # type: ignore[attr-defined]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run_lrs(runs: Mapping[str, Sequence[History]], path: str | os.PathLike[str], log_scale: bool = False) -> Path:
    """The LR applied at every iteration, one line per schedule (the mean over seeds, which differ only for
    schedules that react to the loss)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    try:
        for name, histories in runs.items():
            lrs = np.mean([h.iteration_lrs for h in histories], axis=0)
            ax.plot(np.arange(len(lrs)), lrs, label=name, linewidth=1.6)
        if log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("iteration (batches)")
        ax.set_ylabel("learning rate")
        ax.set_title("Learning rate across iterations")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_run_metric(runs: Mapping[str, Sequence[History]], metric: str, path: str | os.PathLike[str]) -> Path:
    """Train (solid) and test (dashed) ``metric`` ("loss" or "acc") per epoch: one colour per schedule, the mean
    over seeds with a band from the lowest to the highest seed."""
    if metric not in ("loss", "acc"):
        raise ValueError(f"metric must be 'loss' or 'acc', got {metric!r}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    try:
        for index, (name, histories) in enumerate(runs.items()):
            colour = f"C{index % 10}"
            for split, style in (("train", "-"), ("test", "--")):
                values = np.array([h.column(f"{split}_{metric}") for h in histories])
                epochs = np.arange(1, values.shape[1] + 1)
                ax.plot(epochs, values.mean(axis=0), style, color=colour, label=f"{split} ({name})", linewidth=1.6)
                if len(histories) > 1:
                    ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=colour, alpha=0.12)
        title = "Loss" if metric == "loss" else "Accuracy"
        ax.set_xlabel("epoch")
        ax.set_ylabel(title.lower())
        ax.set_title(f"{title} curves (mean over seeds; band: min to max)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    baseline: float,
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """Mean final test accuracy per (step_size row, gamma column); cells that beat the constant-LR baseline are
    outlined, and the baseline is marked on the colour bar."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(column_labels) + 3, 0.6 * len(row_labels) + 2.2), dpi=110)
    try:
        image = ax.imshow(values * 100, cmap="viridis", aspect="auto")
        bar = fig.colorbar(image, ax=ax, label="mean final test accuracy (%)")
        bar.ax.axhline(baseline * 100, color="red", linewidth=2)
        bar.ax.text(1.05, baseline * 100, " constant LR", color="red", va="center", fontsize=7,
                    transform=bar.ax.get_yaxis_transform())
        for (r, c), value in np.ndenumerate(values):
            better = value > baseline
            ax.text(c, r, f"{value * 100:.1f}", ha="center", va="center", fontsize=8,
                    color="black" if value * 100 > np.nanmean(values) * 100 else "white",
                    fontweight="bold" if better else "normal")
            if better:
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xticks(range(len(column_labels)), column_labels)
        ax.set_yticks(range(len(row_labels)), row_labels)
        ax.set_xlabel("gamma")
        ax.set_ylabel("step_size")
        ax.set_title(f"{title}\nconstant LR: {baseline * 100:.1f}% (red outline: beats it)", fontsize=9)
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)
