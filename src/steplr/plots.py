"""Figures of learning-rate schedules (matplotlib, Agg backend, written atomically to disk)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .explain import explain
from .schedules import Schedule

__all__ = ["Curve", "plot_schedules", "save_figure"]


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    """Save a matplotlib figure atomically: a temporary file in the same folder, then a rename."""
    target = Path(path)
    suffix = target.suffix or ".png"
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent or ".")
    os.close(handle)
    try:
        fig.savefig(tmp, format=suffix.lstrip("."))  # type: ignore[attr-defined]
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
