"""Figures of learning-rate schedules and runs, written atomically to disk (PNG, SVG or PDF).

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through ``matplotlib.pyplot``:
no backend switch, no global registry of open figures (so drawing is safe from threads and from programs that use
pyplot themselves), nothing to close. pyplot's own import is a small part of the cost; most of what figures add
to a ``steplr train`` is matplotlib's import and the drawing, which is why the run figures use fixed margins
instead of a layout engine. ``benchmarks/bench_command.py`` measures both (numbers in ``benchmarks/RESULTS.md``).

Rules every figure follows, so that a reader can trust it at a glance:

* curves of different schedules differ in colour, line style, width and sparse hollow markers, the first drawn
  widest, so a curve lying exactly on top of another still shows the one beneath;
* a band (lowest to highest seed) is drawn only when there are several seeds, and light enough to read through;
* titles say what is drawn: "one seed", or "mean over N seeds; band: lowest to highest seed";
* epoch axes tick at whole epochs; an LR (or loss) axis turns logarithmic when its positive values span
  :data:`LOG_SPAN` or more, zeros ignored;
* NaN or infinite values (a diverged seed) are left out of means and bands, and the epochs where seeds diverged
  are marked on the x axis;
* runs judged on loss (a regression, which measures no accuracy) draw loss, never an empty accuracy figure:
  :func:`run_figures` leaves the accuracy figure out, an accuracy panel with no accuracy at all says so, and a
  sweep's heatmap (``metric="loss"``) maps validation loss on a reversed scale (bright = low = good).

May import numpy, matplotlib (not pyplot) and steplr's schedule, explain, paired and file modules; never torch.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps, patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator, ScalarFormatter

from steplr._files import atomic_write
from steplr.experiments.paired import VERDICTS
from steplr.schedules.explain import lr_profile
from steplr.schedules.kinds import Schedule

if TYPE_CHECKING:
    from steplr.training.config import History

__all__ = [
    "Curve",
    "HeatmapPanel",
    "LOG_SPAN",
    "plot_schedules",
    "save_figure",
    "plot_run_lrs",
    "plot_run_metric",
    "plot_heatmap",
    "run_figures",
]

LOG_SPAN = 100.0  # two decades: the digits recipe's 1e-3 -> 1e-5 is drawn on a log axis
_BUCKETS = 750  # a schedule curve keeps at most 4 change points per 1/750 of the run: ~1 per pixel column
_DPI = 110
# (line style, marker) per schedule, in drawing order; the first is plain so a single curve stays clean.
_STYLES: tuple[tuple[Any, str | None], ...] = (
    ("-", None),
    ("--", "o"),
    (":", "s"),
    ("-.", "^"),
    ((0, (6, 2, 1, 2, 1, 2)), "D"),
    ((0, (1, 1)), "v"),
)
_SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))


@dataclass(frozen=True)
class Curve:
    """One line of a schedule plot."""

    label: str
    schedule: Schedule
    base_lr: float


@dataclass(frozen=True)
class HeatmapPanel:
    """One base LR's grid of a sweep over two schedule parameters (StepLR's step_size x gamma by default).

    Args:
        lr: the base learning rate of every cell of the panel.
        values: mean final test accuracy as fractions in [0, 1] (for :func:`plot_heatmap`'s ``metric="loss"``:
            mean final losses), rows = the first parameter's values (one row when a single parameter is swept),
            columns = the second's; NaN for a cell without a result.
        verdicts: the same shape, each one of :data:`steplr.experiments.paired.VERDICTS` (the cell against the
            constant LR).
        baseline: the constant LR's mean final test accuracy at ``lr``, as a fraction (or its loss; NaN if
            unknown).
        diverged: optional, the same shape: how many seeds of each cell diverged. A cell with one is labelled with
            a ``*`` (for losses, whose means leave diverged seeds out: the colour alone would flatter it).

    Raises:
        ValueError: if ``values`` is not two-dimensional, ``verdicts`` or ``diverged`` has another shape, or a
            verdict is not one of the verdict words.
    """

    lr: float
    values: np.ndarray
    verdicts: np.ndarray
    baseline: float
    diverged: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=float)
        verdicts = np.asarray(self.verdicts, dtype=object)
        if values.ndim != 2:
            raise ValueError(f"values must be a 2-D array (rows x columns), got shape {values.shape}")
        if verdicts.shape != values.shape:
            raise ValueError(f"verdicts must have the shape of values {values.shape}, got {verdicts.shape}")
        unknown = sorted({str(v) for v in verdicts.flat} - set(VERDICTS))
        if unknown:
            raise ValueError(f"verdicts must be among {list(VERDICTS)}, got {unknown}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "verdicts", verdicts)
        if self.diverged is not None:
            diverged = np.asarray(self.diverged, dtype=int)
            if diverged.shape != values.shape:
                raise ValueError(f"diverged must have the shape of values {values.shape}, got {diverged.shape}")
            object.__setattr__(self, "diverged", diverged)


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Save a matplotlib figure atomically (PNG, SVG or PDF, from the file name)."""
    suffix = Path(path).suffix or ".png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=suffix.lstrip(".")), suffix)


def plot_schedules(
    curves: Sequence[Curve],
    epochs: int,
    path: str | os.PathLike[str],
    steps_per_epoch: int = 1,
    log_scale: bool | None = None,
    title: str | None = None,
) -> Path:
    """Draw every curve's learning rate over the run on one figure and save it to ``path`` (PNG, SVG, PDF).

    The x axis is in epochs; each curve is drawn through exact change points of the schedule, every one of them
    while they are a few per 1/750 of the run, else the first, last, lowest and highest of each such stretch
    (:func:`steplr.schedules.explain.lr_profile`), so a curve has at most 3,000 points however long the run.
    ``log_scale``: True or False forces the LR axis; None chooses a log axis when the LR spans :data:`LOG_SPAN` or
    more.
    ``title`` is drawn as plain text (no mathtext: ``$`` is a dollar sign). Returns the path.
    """
    return save_figure(_schedules_figure(curves, epochs, steps_per_epoch, log_scale, title), path)


def plot_run_lrs(
    runs: Mapping[str, Sequence[History]], path: str | os.PathLike[str], log_scale: bool | None = None
) -> Path:
    """The LR applied at every iteration against epochs, one line per schedule (several seeds differ only for
    schedules that react to the loss: then the mean and a band). ``log_scale`` as in :func:`plot_schedules`."""
    return save_figure(_lrs_figure(runs, log_scale), path)


def plot_run_metric(runs: Mapping[str, Sequence[History]], metric: str, path: str | os.PathLike[str]) -> Path:
    """``metric`` ("loss" or "acc") per epoch in one panel per split (train, validation when held out, test):
    one line per schedule, the mean over seeds with a band from the lowest to the highest seed.

    Raises:
        ValueError: for another ``metric``.
    """
    return save_figure(_metric_figure(runs, metric), path)


def plot_heatmap(
    panels: Sequence[HeatmapPanel],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    path: str | os.PathLike[str],
    title: str,
    axis_names: tuple[str, str] = ("step_size", "gamma"),
    metric: str = "accuracy",
) -> Path:
    """Mean final test accuracy per (row, column) of two swept parameters, named by ``axis_names`` (rows first;
    an empty name leaves its axis unlabelled, as for the one row of a single swept parameter), one panel per base
    LR on one colour scale.

    A cell is outlined exactly when its verdict is ``better``; each panel's constant-LR baseline is in its title
    and marked on the colour bar, whose range always includes it. With ``metric="loss"`` the panels hold mean final
    validation losses (what a sweep judged on loss chooses on), drawn as they are (4 significant digits, not
    percents) on a reversed colour scale, so that bright is low and good as it is for accuracy.

    Raises:
        ValueError: if there is no panel, the labels do not match the panels' shape, or ``metric`` is neither
            "accuracy" nor "loss".
    """
    return save_figure(_heatmap_figure(panels, row_labels, column_labels, title, axis_names, metric), path)


def run_figures(
    folder: str | os.PathLike[str], runs: Mapping[str, Sequence[History]], metric: str = "accuracy"
) -> dict[str, Path]:
    """The figures of a comparison's runs in ``folder``, by title: the LR applied (lr.png), the loss (loss.png)
    and, unless the runs are judged on ``metric="loss"`` (a regression measures no accuracy), the accuracy
    (accuracy.png).

    Raises:
        ValueError: for another ``metric``, or as :func:`plot_run_metric`.
    """
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be 'accuracy' or 'loss', got {metric!r}")
    out = Path(folder)
    found = {
        "Learning rate per iteration": plot_run_lrs(runs, out / "lr.png"),
        "Loss": plot_run_metric(runs, "loss", out / "loss.png"),
    }
    if metric == "accuracy":
        found["Accuracy"] = plot_run_metric(runs, "acc", out / "accuracy.png")
    return found


# Builders: each returns the Figure, so tests can inspect axes, scales and outlines before anything is saved.


def _canvas(
    width: float,
    height: float,
    panels: int = 1,
    margins: tuple[float, float, float, float] | None = None,
    gap: float = 0.0,
) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas and its ``panels`` axes side by side, sharing the y axis: every figure starts here.

    ``margins`` (left, right, bottom, top, in inches) and ``gap`` (between panels) fix where the axes go; without
    them matplotlib's constrained layout measures every text first, which doubles the cost of a save (fine for a
    sweep's one heatmap, not for the three figures of every ``steplr train``)."""
    fig = Figure(figsize=(width, height), dpi=_DPI, layout=None if margins else "constrained")
    FigureCanvasAgg(fig)
    if margins is not None:
        left, right, bottom, top = margins
        axes_width = (width - left - right - gap * (panels - 1)) / panels
        fig.subplots_adjust(
            left=left / width,
            right=1 - right / width,
            bottom=bottom / height,
            top=1 - top / height,
            wspace=gap / axes_width,
        )
    return fig, list(fig.subplots(1, panels, sharey=True, squeeze=False)[0])


def _legend(fig: Figure, axes: Sequence[Axes], below: bool = False) -> None:
    """The curves' legend: inside the first panel, or (``below``) under the panels in rows of up to six."""
    if not below:
        axes[0].legend(fontsize=8)
        return
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=min(len(labels), 6),
        fontsize=8,
        frameon=False,
    )


def _title_lines(text: str, width: float, points: float) -> str:
    """``text`` wrapped to fit ``width`` inches at ``points`` size (DejaVu Sans averages ~0.55 em a character)."""
    per_line = max(20, int((width - 0.3) * 72 / (0.58 * points)))
    return "\n".join(textwrap.fill(line, per_line) for line in text.splitlines())


def _style(index: int, count: int, points: int) -> dict[str, Any]:
    """Colour, dashes, width and sparse hollow markers of the index-th of count curves of `points` points."""
    linestyle, marker = _STYLES[index % len(_STYLES)]
    # Curves drawn later are thinner, so the one beneath shows around an identical one on top.
    width = 1.8 if count == 1 else max(1.0, 2.8 - 0.45 * index)
    style: dict[str, Any] = {"color": f"C{index % 10}", "linestyle": linestyle, "linewidth": width}
    if marker is not None:
        every = max(1, points // 8)
        # Each schedule's markers start at a different point, so identical curves show every marker set.
        style.update(
            marker=marker,
            markersize=5,
            fillstyle="none",
            markeredgewidth=1.2,
            markevery=(index * every // max(count, 1) % every, every),
        )
    return style


def _band_alpha(count: int) -> float:
    """Lighter bands when there are more of them, so where all overlap the stack stays see-through."""
    return min(0.16, max(0.05, 0.24 / max(count, 1)))


def _wants_log(values: Any) -> bool:
    positive = np.asarray(values, dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    # At least two decades, with room for rounding: 1e-3 -> 1e-5 built by multiplying floats must still count.
    return bool(positive.size) and float(positive.max()) >= LOG_SPAN * float(positive.min()) * (1 - 1e-9)


def _set_log(ax: Axes, values: Any) -> None:
    """Log y axis framed on the positive finite values; zeros are clipped to its lower edge."""
    positive = np.asarray(values, dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    ax.set_yscale("log", nonpositive="clip")
    if positive.size:
        ax.set_ylim(float(positive.min()) / 1.6, float(positive.max()) * 1.6)


def _lr_axis(ax: Axes, log: bool) -> None:
    ax.set_ylabel("learning rate (log scale)" if log else "learning rate")
    if not log:  # "0.0025", "1e-05": short labels and no offset text that could meet the title
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _epoch_axis(ax: Axes, label: str = "epoch") -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)


def _seed_count(runs: Mapping[str, Sequence[Any]]) -> str | None:
    """How many seeds each schedule has ("5", or "3-5" when they differ); None when every schedule has one.

    Raises:
        ValueError: if there is no schedule, or a schedule without a run.
    """
    empty = [name for name, histories in runs.items() if not histories]
    if not runs or empty:
        raise ValueError(f"runs must map each schedule to at least one History, got {list(runs)} (empty: {empty})")
    counts = sorted({len(histories) for histories in runs.values()})
    if not counts or counts == [1]:
        return None
    return f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def _over_seeds_phrase(seeds: str | None) -> str:
    return "one seed" if seeds is None else f"mean over {seeds} seeds; band: lowest to highest seed"


def _stack(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Seeds x points, ragged rows padded with NaN, infinities turned into NaN."""
    width = max((len(r) for r in rows), default=0)
    table = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    table[~np.isfinite(table)] = np.nan
    return table


def _over_seeds(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lowest and highest per column over the finite seeds (NaN where none is finite), warning-free."""
    finite = ~np.isnan(table)
    count = finite.sum(axis=0)
    mean = np.full(table.shape[1], np.nan)
    np.divide(np.where(finite, table, 0.0).sum(axis=0), count, out=mean, where=count > 0)
    low = np.where(finite, table, np.inf).min(axis=0, initial=np.inf)
    high = np.where(finite, table, -np.inf).max(axis=0, initial=-np.inf)
    low[count == 0] = np.nan
    high[count == 0] = np.nan
    return mean, low, high


def _schedules_figure(
    curves: Sequence[Curve], epochs: int, steps_per_epoch: int, log_scale: bool | None, title: str | None
) -> Figure:
    heading = _title_lines(title or "Learning-rate schedule", 7, 11)
    fig, (ax,) = _canvas(7, 4, margins=(0.95, 0.2, 0.6, 0.2 + 0.2 * (heading.count("\n") + 1)))
    total = epochs * steps_per_epoch
    drawn: list[float] = []
    for index, curve in enumerate(curves):
        # Exact change points, at most 4 * _BUCKETS of them however long the run (steplr.schedules.explain.lr_profile),
        # plus the end of the run.
        starts, rates = lr_profile(curve.schedule, curve.base_lr, epochs, steps_per_epoch, _BUCKETS)
        lrs = [*rates.tolist(), float(rates[-1])]
        drawn += lrs
        ax.plot(
            np.append(starts, total) / steps_per_epoch,
            lrs,
            drawstyle="steps-post",
            label=curve.label,
            **_style(index, len(curves), len(lrs)),
        )
    log = _wants_log(drawn) if log_scale is None else log_scale
    if log:
        _set_log(ax, drawn)
    _epoch_axis(ax)
    ax.set_xlim(0, epochs)
    _lr_axis(ax, log)
    ax.set_title(heading, fontsize=11, usetex=False, parse_math=False)  # as typed: "$" is a dollar sign
    if len(curves) > 1 or (curves and curves[0].label):
        _legend(fig, [ax])
    return fig


def _iterations_per_epoch(histories: Sequence[History]) -> int | None:
    """Iterations per epoch, from the runs that ended on an epoch boundary (a run stopped by divergence may
    not); None when no run tells."""
    found = [
        len(h.iteration_lrs) // len(h.epochs)
        for h in histories
        if h.epochs and h.iteration_lrs and len(h.iteration_lrs) % len(h.epochs) == 0
    ]
    return max(set(found), key=found.count) if found else None


def _lrs_figure(runs: Mapping[str, Sequence[History]], log_scale: bool | None) -> Figure:
    seeds = _seed_count(runs)
    fig, (ax,) = _canvas(7, 4, margins=(0.95, 0.2, 0.6, 0.4))
    differ = False
    drawn: list[np.ndarray] = []
    per_epoch = _iterations_per_epoch([h for histories in runs.values() for h in histories])
    for index, (name, histories) in enumerate(runs.items()):
        table = _stack([h.iteration_lrs for h in histories])
        mean, low, high = _over_seeds(table)
        # The LR of iteration i holds from i to i + 1: repeat the last one to close the final step.
        x = np.arange(table.shape[1] + 1) / (per_epoch or 1)
        ax.plot(
            x,
            np.append(mean, mean[-1:]),
            drawstyle="steps-post",
            label=name,
            **_style(index, len(runs), table.shape[1]),
        )
        if len(histories) > 1 and np.nanmax(high - low, initial=0.0) > 0:
            differ = True
            ax.fill_between(
                x,
                np.append(low, low[-1:]),
                np.append(high, high[-1:]),
                step="post",
                color=f"C{index % 10}",
                alpha=_band_alpha(len(runs)),
                linewidth=0,
            )
        drawn.append(table.ravel())
    values = np.concatenate(drawn) if drawn else np.array([])
    log = _wants_log(values) if log_scale is None else log_scale
    if log:
        _set_log(ax, values)
    _epoch_axis(ax, "epoch (every iteration drawn)" if per_epoch else "iteration")
    ax.set_xlim(0, max(1.0, *(len(h.iteration_lrs) / (per_epoch or 1) for hs in runs.values() for h in hs)))
    _lr_axis(ax, log)
    phrase = f"the same on all {seeds} seeds" if seeds is not None and not differ else _over_seeds_phrase(seeds)
    ax.set_title(f"Learning rate applied at each iteration ({phrase})", fontsize=10)
    _legend(fig, [ax])
    return fig


def _metric_panel(ax: Axes, runs: Mapping[str, Sequence[History]], column: str, scale: float, title: str) -> np.ndarray:
    """One split's panel of :func:`plot_run_metric`: per schedule the mean over seeds, the band from the lowest to
    the highest seed and an x on the epoch axis where a seed diverged; returns every value drawn."""
    drawn = []
    for index, (name, histories) in enumerate(runs.items()):
        table = _stack([h.column(column) for h in histories]) * scale
        mean, low, high = _over_seeds(table)
        epochs = np.arange(1, table.shape[1] + 1)
        ax.plot(epochs, mean, label=name, **_style(index, len(runs), table.shape[1]))
        if len(histories) > 1:
            ax.fill_between(epochs, low, high, color=f"C{index % 10}", alpha=_band_alpha(len(runs)), linewidth=0)
        diverged = sorted({h.diverged_at for h in histories if h.diverged_at is not None})
        if diverged:  # an empty unclipped line would claim the figure's corner in the layout
            # On the x axis, so a seed that diverged in its first epoch (no finite value at all) still shows.
            ax.plot(
                diverged,
                [0.03] * len(diverged),
                "x",
                color=f"C{index % 10}",
                markersize=8,
                markeredgewidth=2,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                gid="diverged",
            )
        drawn.append(table.ravel())
    values = np.concatenate(drawn)
    if not np.isfinite(values).any():
        # Accuracy is NaN on every epoch of a run that never diverged only when none was measured (a regression).
        unmeasured = column.endswith("_acc") and any(
            h.diverged_at is None for histories in runs.values() for h in histories
        )
        ax.text(
            0.5,
            0.5,
            "no accuracy measured:\na regression is judged on loss"
            if unmeasured
            else "no finite values:\nevery seed diverged",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color="0.4",
        )
        last = max(len(h.epochs) for hs in runs.values() for h in hs)
        ax.set_xlim(1, last) if last > 1 else ax.set_xlim(0.5, 1.5)  # the run's epochs, not matplotlib's guess
        ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    formatter = ax.yaxis.get_major_formatter()
    if isinstance(formatter, ScalarFormatter):  # linear until the log scale is chosen (loss only)
        formatter.set_useOffset(False)
    _epoch_axis(ax)
    return values


def _metric_figure(runs: Mapping[str, Sequence[History]], metric: str) -> Figure:
    if metric not in ("loss", "acc"):
        raise ValueError(f"metric must be 'loss' or 'acc', got {metric!r}")
    seeds = _seed_count(runs)
    scale = 1.0 if metric == "loss" else 100.0
    # A run holds out a validation split when any validation metric was measured (a diverged model's loss is NaN,
    # its accuracy still a number).
    held_out = any(
        not np.isnan(v) for hs in runs.values() for h in hs for v in h.column("val_loss") + h.column("val_acc")
    )
    splits = [(key, name) for key, name in _SPLITS if key != "val" or held_out]
    legend_rows = -(-len(runs) // 6)
    diverged_any = any(h.diverged_at is not None for hs in runs.values() for h in hs)
    width = 1.2 + 3.6 * len(splits)
    fig, axes = _canvas(
        width, 4.4, len(splits), margins=(0.95, 0.2, 0.52 + 0.22 * legend_rows, 0.55 + 0.2 * diverged_any), gap=0.2
    )
    drawn = [_metric_panel(ax, runs, f"{key}_{metric}", scale, title) for ax, (key, title) in zip(axes, splits)]
    values = np.concatenate(drawn)
    log = metric == "loss" and _wants_log(values)
    if log:
        _set_log(axes[0], values)  # the panels share y
    axes[0].set_ylabel(("loss" if metric == "loss" else "accuracy (%)") + (" (log scale)" if log else ""))
    _legend(fig, axes, below=True)
    what = "Loss" if metric == "loss" else "Accuracy"
    heading = f"{what} per epoch ({_over_seeds_phrase(seeds)})"
    if diverged_any:
        heading += (
            "\n\u00d7 on the epoch axis: a seed diverged (loss NaN or infinite); "
            "means leave out NaN and infinite values"
        )
    fig.suptitle(heading, fontsize=10, y=1 - 0.08 / 4.4, va="top")
    return fig


@dataclass(frozen=True)
class _Units:
    """How a heatmap shows its values: ``scale`` (100: fractions as percents), the colour map, the texts."""

    scale: float
    cmap: str
    bar: str
    better: str

    def cell(self, value: float) -> str:
        return f"{value * 100:.1f}" if self.scale == 100 else f"{value:.3g}"

    def baseline(self, value: float) -> str:
        return "n/a" if np.isnan(value) else f"{value * 100:.1f}%" if self.scale == 100 else f"{value:.4g}"


_HEATMAP_UNITS = {
    "accuracy": _Units(100.0, "viridis", "mean final test acc. (%)", "better than the constant LR at the same lr"),
    "loss": _Units(
        1.0,
        "viridis_r",
        "mean final validation loss",
        "better than the constant LR at the same lr on test loss",
    ),
}


def _heatmap_figure(
    panels: Sequence[HeatmapPanel],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    title: str,
    axis_names: tuple[str, str] = ("step_size", "gamma"),
    metric: str = "accuracy",
) -> Figure:
    if metric not in _HEATMAP_UNITS:
        raise ValueError(f"metric must be 'accuracy' or 'loss', got {metric!r}")
    units = _HEATMAP_UNITS[metric]
    if not panels:
        raise ValueError("plot_heatmap needs at least one panel")
    shape = (len(row_labels), len(column_labels))
    for panel in panels:
        if panel.values.shape != shape:
            raise ValueError(f"panel lr {panel.lr:g} has shape {panel.values.shape}, labels say {shape}")
    norm = _shared_norm(panels, units.scale)
    cmap = colormaps[units.cmap].with_extremes(bad="0.85")
    panel_width = max(2.1, 0.8 * shape[1] + 0.4)
    width = 1.0 + len(panels) * panel_width + 1.6
    tested = any(v != VERDICTS[3] for p in panels for v in p.verdicts.flat)
    legend = (
        f"outlined: {units.better} (paired over seeds, Holm-adjusted)"
        if tested
        else "one seed per config: no test, so no cell is outlined"
    )
    if any(p.diverged is not None and p.diverged.any() for p in panels):
        legend += "; *: a seed diverged (left out of the mean)"
    heading = "\n".join(textwrap.fill(line, max(20, int(width * 12))) for line in (title, legend))
    grid_height = max(1.9, 0.5 * shape[0] + 0.6)
    fig, axes = _canvas(width, grid_height + 0.25 * heading.count("\n") + 1.6, len(panels))
    for ax, panel in zip(axes, panels):
        ax.imshow(np.ma.masked_invalid(panel.values * units.scale), cmap=cmap, norm=norm, aspect="auto")
        _label_cells(ax, panel, cmap, norm, units)
        ax.set_gid("heatmap-panel")
        ax.set_xticks(range(shape[1]), list(column_labels))
        ax.set_yticks(range(shape[0]), list(row_labels))
        ax.set_xlabel(axis_names[1])
        ax.set_title(f"lr {panel.lr:g}\nconstant LR: {units.baseline(panel.baseline)}", fontsize=9)
    axes[0].set_ylabel(axis_names[0])
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), fraction=0.08, aspect=12)
    bar.ax.yaxis.set_ticks_position("left")
    bar.ax.yaxis.set_label_position("left")
    bar.set_label(units.bar, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    _mark_baselines(bar.ax, panels, grid_height, units.scale)
    fig.suptitle(heading, fontsize=9)
    return fig


def _shared_norm(panels: Sequence[HeatmapPanel], scale: float = 100.0) -> Normalize:
    """One colour scale for every panel, wide enough for every value and every baseline (in percent; losses, with
    ``scale`` 1, as they are)."""
    found = np.concatenate([p.values.ravel() for p in panels] + [np.array([p.baseline for p in panels])]) * scale
    found = found[np.isfinite(found)]
    low, high = (float(found.min()), float(found.max())) if found.size else (0.0, scale)
    # Keeps extremes, and a baseline at the edge, inside the bar; a loss has no natural unit to pad by.
    if scale == 100:
        pad = max(0.5, 0.02 * (high - low))
    else:
        pad = 0.02 * (high - low) if high > low else max(0.05 * abs(high), 1e-12)
    return Normalize(vmin=low - pad, vmax=high + pad)


def _mark_baselines(bar: Axes, panels: Sequence[HeatmapPanel], height: float, scale: float = 100.0) -> None:
    """A line on the colour bar at each panel's constant-LR accuracy, labelled on its right; baselines closer
    than a line of text share one label, so no two labels overlap."""
    marked = sorted((p.baseline * scale, p.lr) for p in panels if not np.isnan(p.baseline))
    low, high = bar.get_ylim()
    gap = 7 * 1.5 / 72 / height * (high - low)  # one 7 pt line of text, in the bar's units
    groups: list[list[tuple[float, float]]] = []
    for value, lr in marked:
        bar.axhline(
            value, color="black", linewidth=2.2, path_effects=[patheffects.withStroke(linewidth=4, foreground="white")]
        )
        if groups and value - groups[-1][0][0] < gap:
            groups[-1].append((value, lr))
        else:
            groups.append([(value, lr)])
    for group in groups:
        lrs = ", ".join(f"{lr:g}" for _, lr in group)
        text = "constant LR" if len(panels) == 1 else f"constant LR, lr {lrs}"
        bar.text(1.15, group[0][0], text, va="center", fontsize=7, transform=bar.get_yaxis_transform())


def _label_cells(ax: Axes, panel: HeatmapPanel, cmap: Any, norm: Normalize, units: _Units) -> None:
    for (r, c), value in np.ndenumerate(panel.values):
        if np.isnan(value):
            ax.text(c, r, "n/a", ha="center", va="center", fontsize=8, color="0.3")
            continue
        red, green, blue, _ = cmap(norm(value * units.scale))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        better = panel.verdicts[r, c] == "better"
        ax.text(
            c,
            r,
            units.cell(value) + ("*" if panel.diverged is not None and panel.diverged[r, c] else ""),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if dark else "black",
            fontweight="bold" if better else "normal",
        )
        if better:
            # Inset, so two outlined neighbours keep separate frames.
            ax.add_patch(
                Rectangle((c - 0.44, r - 0.44), 0.88, 0.88, fill=False, edgecolor="red", linewidth=2.2, gid="better")
            )
