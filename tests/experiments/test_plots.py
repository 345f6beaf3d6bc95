"""Figures: every PNG is read back (size, not blank, nothing on stderr), and what a reader relies on is checked on
the Figure the public function saves (scales, ticks, titles, styles, panels, outlines, text inside the canvas)."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.text import Text

from steplr.experiments import plots
from steplr.experiments.plots import Curve, HeatmapPanel, plot_heatmap, plot_run_lrs, plot_run_metric, plot_schedules
from steplr.schedules.explain import MAX_STEPS
from steplr.schedules.kinds import Constant, Cosine, StepDecay
from steplr.training.config import EpochRecord, History

PER_EPOCH = 23  # iterations per epoch, as in the qwerty recipe


def history(
    epochs: int = 20,
    seed: int = 0,
    lr: float = 0.01,
    gamma: float = 1.0,
    step_epochs: int = 5,
    val: bool = False,
    diverge_at: int | None = None,
) -> History:
    """A made-up but plausible run: losses fall, accuracies rise, the LR steps by gamma every step_epochs."""
    rng = np.random.default_rng(seed)
    records = []
    for epoch in range(1, epochs + 1):
        loss = 1.2 * math.exp(-epoch / 8) + 0.05 * rng.random()
        acc = 1 - 0.7 * math.exp(-epoch / 4) - 0.02 * rng.random()
        lr_now = lr * gamma ** ((epoch - 1) // step_epochs)
        record = EpochRecord(
            epoch, loss, acc, loss * 1.1, acc - 0.01, lr_now, *((loss * 1.05, acc - 0.02) if val else ())
        )
        if diverge_at is not None and epoch >= diverge_at:
            bad = math.inf if epoch == diverge_at else math.nan
            record = EpochRecord(epoch, bad, 0.3, bad, 0.3, lr_now, *((bad, 0.3) if val else ()))
        records.append(record)
    lrs = [lr * gamma ** (i // (PER_EPOCH * step_epochs)) for i in range(epochs * PER_EPOCH)]
    return History(records, lrs)


def compare_runs(seeds: int = 3, **kwargs: object) -> dict[str, list[History]]:
    """compare-like runs; ``plateau`` never fires, so it is exactly ``none``."""
    return {
        "none": [history(seed=s, **kwargs) for s in range(seeds)],  # type: ignore[arg-type]
        "step": [history(seed=s, gamma=0.5, **kwargs) for s in range(seeds)],  # type: ignore[arg-type]
        "plateau": [history(seed=s, **kwargs) for s in range(seeds)],  # type: ignore[arg-type]
        "exponential": [
            history(seed=s, gamma=0.8, step_epochs=1, **kwargs)  # type: ignore[arg-type]
            for s in range(seeds)
        ],
    }


def check_png(path, capfd, min_width: int = 300, min_height: int = 200) -> np.ndarray:
    image = matplotlib.image.imread(path)
    assert image.shape[1] >= min_width and image.shape[0] >= min_height, image.shape
    assert image[..., :3].std() > 0.05, "blank or nearly blank image"
    assert capfd.readouterr().err == ""
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    return image


def texts_outside(fig) -> list[str]:
    """Drawn, non-empty texts whose box leaves the canvas (a reader would see them cut off). Tick labels of ticks
    outside an axis' view are not drawn, so they do not count."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    undrawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = (high - low) * 1e-9
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - slack <= tick.get_loc() <= high + slack:
                    undrawn.update({id(tick.label1), id(tick.label2)})
    canvas = fig.bbox
    cut = []
    for text in fig.findobj(Text):
        if id(text) in undrawn or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < canvas.x0 - 1 or box.y0 < canvas.y0 - 1 or box.x1 > canvas.x1 + 1 or box.y1 > canvas.y1 + 1:
            cut.append(text.get_text())
    return cut


def visible_ticks(axis, low: float, high: float) -> list[float]:
    return [t for t in axis.get_ticklocs() if low - 1e-9 <= t <= high + 1e-9]


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


# --- plot_schedules -------------------------------------------------------------------------------------------


def test_schedules_figure_is_written_and_readable(tmp_path, capfd):
    curves = [Curve("constant", Constant(), 0.1), Curve("step", StepDecay(10, 0.5), 0.1)]
    target = plot_schedules(curves, 40, tmp_path / "lr.png", steps_per_epoch=3)
    assert target == tmp_path / "lr.png"
    check_png(target, capfd)


def test_schedules_use_a_log_axis_from_two_decades_on_and_respect_an_explicit_choice():
    digits = [Curve("step", StepDecay(2, 0.1), 1e-3)]  # 1e-3 -> 1e-5 over 5 epochs
    assert plots._schedules_figure(digits, 5, 1, None, None).axes[0].get_yscale() == "log"
    assert plots._schedules_figure(digits, 5, 1, False, None).axes[0].get_yscale() == "linear"
    mild = [Curve("step", StepDecay(5, 0.5), 0.1)]  # 0.1 -> 0.0125: 8x
    assert plots._schedules_figure(mild, 20, 1, None, None).axes[0].get_yscale() == "linear"
    assert plots._schedules_figure(mild, 20, 1, True, None).axes[0].get_yscale() == "log"


def test_schedule_epoch_ticks_are_whole_numbers():
    fig = plots._schedules_figure([Curve("step", StepDecay(5, 0.5), 0.1)], 20, 1, None, None)
    fig.canvas.draw()
    ticks = visible_ticks(fig.axes[0].xaxis, 0, 20)
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


# --- plot_run_lrs ---------------------------------------------------------------------------------------------


def test_run_lrs_figure_is_written_for_many_seeds_and_for_one(tmp_path, capfd):
    check_png(plot_run_lrs(compare_runs(), tmp_path / "lr.png"), capfd)
    check_png(plot_run_lrs({"step": [history(gamma=0.5)]}, tmp_path / "one.png"), capfd)


def test_run_lrs_are_drawn_against_whole_epochs():
    fig = plots._lrs_figure({"step": [history(gamma=0.5)]}, None)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_xlim() == (0, 20)
    assert ax.get_xlabel().startswith("epoch")
    ticks = visible_ticks(ax.xaxis, 0, 20)
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


@pytest.mark.parametrize(
    ("gamma", "scale"),
    [(0.5, "linear"), (0.1, "log")],  # 0.01 -> 0.00125 (8x) and 0.01 -> 1e-5 (1000x) over 20 epochs
)
def test_run_lrs_choose_a_log_axis_when_the_lr_spans_more_than_100x(gamma, scale):
    assert plots._lrs_figure({"step": [history(gamma=gamma)]}, None).axes[0].get_yscale() == scale


def test_zero_learning_rates_do_not_decide_the_scale():
    run = history()
    run.iteration_lrs[-PER_EPOCH:] = [0.0] * PER_EPOCH  # ends at 0: the ratio of the positive LRs is 1
    fig = plots._lrs_figure({"warm": [run]}, None)
    assert fig.axes[0].get_yscale() == "linear"
    run.iteration_lrs[:PER_EPOCH] = [1e-6] * PER_EPOCH  # 1e-6 -> 0.01: log, and the zeros do not break it
    fig = plots._lrs_figure({"warm": [run]}, None)
    assert fig.axes[0].get_yscale() == "log"
    assert fig.axes[0].get_ylim()[0] > 0


def test_run_lrs_title_says_when_seeds_agree_and_when_they_differ():
    assert "one seed" in plots._lrs_figure({"step": [history()]}, None).axes[0].get_title()
    agree = plots._lrs_figure(compare_runs(), None).axes[0]
    assert "the same on all 3 seeds" in agree.get_title() and not bands(agree)
    reacting = [history(seed=s) for s in range(3)]
    reacting[1].iteration_lrs[200:] = [0.001] * (len(reacting[1].iteration_lrs) - 200)  # one seed's plateau fired
    differ = plots._lrs_figure({"plateau": reacting}, None).axes[0]
    assert "mean over 3 seeds; band: lowest to highest seed" in differ.get_title()
    assert len(bands(differ)) == 1


def test_identical_curves_differ_in_style_and_the_one_beneath_is_wider():
    fig = plots._lrs_figure(compare_runs(), None)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    none, plateau = lines["none"], lines["plateau"]
    np.testing.assert_array_equal(none.get_ydata(), plateau.get_ydata())  # the case to get right
    assert (none.get_linestyle(), none.get_marker()) != (plateau.get_linestyle(), plateau.get_marker())
    assert none.get_linewidth() > plateau.get_linewidth()
    assert plateau.get_markerfacecolor() == "none"  # hollow markers: the line beneath shows through
    styles = {(line.get_linestyle(), line.get_marker(), line.get_color()) for line in lines.values()}
    assert len(styles) == len(lines)


# --- plot_run_metric ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["loss", "acc"])
def test_metric_figure_is_written_for_many_seeds_and_for_one(tmp_path, capfd, metric):
    check_png(plot_run_metric(compare_runs(), metric, tmp_path / "many.png"), capfd)
    check_png(plot_run_metric({"step": [history()]}, metric, tmp_path / "one.png"), capfd)


def test_metric_panels_are_train_and_test_plus_validation_when_held_out():
    without = plots._metric_figure(compare_runs(), "loss")
    assert [ax.get_title() for ax in without.axes] == ["train", "test"]
    held_out = plots._metric_figure(compare_runs(val=True), "acc")
    assert [ax.get_title() for ax in held_out.axes] == ["train", "validation", "test"]
    assert held_out.axes[0].get_ylabel() == "accuracy (%)"
    assert max(held_out.axes[0].get_lines()[0].get_ydata()) > 50  # drawn in percent


def test_metric_titles_say_exactly_what_is_drawn():
    one = plots._metric_figure({"step": [history()]}, "loss")
    assert one.get_suptitle() == "Loss per epoch (one seed)"
    assert not any(bands(ax) for ax in one.axes)
    many = plots._metric_figure(compare_runs(seeds=5), "acc")
    assert many.get_suptitle() == "Accuracy per epoch (mean over 5 seeds; band: lowest to highest seed)"
    assert all(len(bands(ax)) == 4 for ax in many.axes)


def test_metric_bands_stay_light_when_several_overlap():
    ax = plots._metric_figure(compare_runs(), "loss").axes[0]
    alphas = [band.get_alpha() for band in bands(ax)]
    assert len(alphas) == 4
    # Where all four overlap, what lies beneath still shows through most of the stack.
    assert 1 - math.prod(1 - a for a in alphas) < 0.3


def test_metric_epoch_ticks_are_whole_numbers():
    fig = plots._metric_figure(compare_runs(), "loss")
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = visible_ticks(ax.xaxis, *ax.get_xlim())
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_a_diverged_seed_is_marked_and_neither_warns_nor_crashes(tmp_path, capfd):
    runs = compare_runs(val=True)
    runs["step"][1] = history(seed=1, gamma=0.5, val=True, diverge_at=7)
    for metric in ("loss", "acc"):
        check_png(plot_run_metric(runs, metric, tmp_path / f"{metric}.png"), capfd)
    check_png(plot_run_lrs(runs, tmp_path / "lr.png"), capfd)
    fig = plots._metric_figure(runs, "loss")
    marks = [line for line in fig.axes[0].get_lines() if line.get_gid() == "diverged"]
    assert [list(line.get_xdata()) for line in marks] == [[7]]
    assert "a seed diverged" in fig.get_suptitle()
    step = next(line for line in fig.axes[0].get_lines() if line.get_label() == "step")
    assert np.isfinite(step.get_ydata()).all()  # later epochs: the mean of the two seeds left


def test_a_run_diverged_in_its_first_epoch_still_draws(tmp_path, capfd):
    runs = {"step": [history(epochs=3, diverge_at=1)]}
    check_png(plot_run_metric(runs, "loss", tmp_path / "loss.png"), capfd)
    check_png(plot_run_lrs(runs, tmp_path / "lr.png"), capfd)


def test_metric_loss_axis_turns_log_when_a_seed_blows_up():
    runs = {"step": [history(seed=s) for s in range(2)]}
    assert plots._metric_figure(runs, "loss").axes[0].get_yscale() == "linear"
    runs["step"][1].epochs[4].train_loss = 1e9
    assert plots._metric_figure(runs, "loss").axes[0].get_yscale() == "log"


@pytest.mark.parametrize("runs", [{}, {"step": [history()], "none": []}])
def test_run_figures_need_a_run_for_every_schedule(tmp_path, runs):
    for draw in (
        lambda: plot_run_lrs(runs, tmp_path / "lr.png"),
        lambda: plot_run_metric(runs, "loss", tmp_path / "loss.png"),
    ):
        with pytest.raises(ValueError, match="runs must map each schedule to at least one History"):
            draw()
    assert list(tmp_path.iterdir()) == []


def test_metric_must_be_loss_or_acc(tmp_path):
    with pytest.raises(ValueError, match="metric must be 'loss' or 'acc', got 'f1'"):
        plot_run_metric({"step": [history()]}, "f1", tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_run_figures_keep_every_text_inside_the_canvas():
    tiny = {name: [history(lr=5e-5, gamma=0.5, seed=s) for s in range(2)] for name in ("step", "a much longer name")}
    many = {f"schedule {i}": [history(seed=i, val=True)] for i in range(8)}  # two legend rows
    diverged = {"step": [history(val=True), history(seed=1, val=True, diverge_at=3)]}
    long_title = "Learning rate of the best five configs of a sweep over step_size, gamma and the base LR " * 2
    figures = [
        plots._lrs_figure(tiny, None),
        plots._lrs_figure(compare_runs(), True),
        plots._metric_figure(tiny, "loss"),
        plots._metric_figure(many, "acc"),
        plots._metric_figure(diverged, "loss"),
        plots._schedules_figure([Curve("step", StepDecay(2, 0.5), 3e-5)], 10, 1, None, long_title),
    ]
    for fig in figures:
        assert texts_outside(fig) == []
    lr_axis = figures[0].axes[0]
    assert lr_axis.get_yscale() == "linear" and not lr_axis.yaxis.get_offset_text().get_text()


# --- plot_heatmap ---------------------------------------------------------------------------------------------

ROWS, COLUMNS = ["1ep", "2ep", "5ep"], ["0.1", "0.5", "0.9", "0.95"]


def panel(
    lr: float,
    shape: tuple[int, int],
    baseline: float,
    better: tuple[tuple[int, int], ...] = (),
    words: str = "no detectable difference",
    seed: int = 0,
) -> HeatmapPanel:
    values = 0.85 + 0.1 * np.random.default_rng(seed).random(shape)
    verdicts = np.full(shape, words, dtype=object)
    for cell in better:
        verdicts[cell] = "better"
    return HeatmapPanel(lr, values, verdicts, baseline)


def panels_of(fig) -> list:
    return [ax for ax in fig.axes if ax.get_gid() == "heatmap-panel"]


def outlines(ax) -> int:
    return sum(1 for patch in ax.patches if patch.get_gid() == "better")


@pytest.mark.parametrize("lrs", [(0.01,), (0.01, 0.1)])
def test_heatmap_has_one_panel_per_lr_and_outlines_exactly_the_better_cells(tmp_path, capfd, lrs):
    better = ((0, 1), (2, 3), (1, 0))
    given = [panel(lr, (3, 4), 0.9, better[: i + 2], seed=i) for i, lr in enumerate(lrs)]
    check_png(plot_heatmap(given, ROWS, COLUMNS, tmp_path / "heatmap.png", "qwerty: step_size x gamma"), capfd)
    fig = plots._heatmap_figure(given, ROWS, COLUMNS, "qwerty: step_size x gamma")
    axes = panels_of(fig)
    assert len(axes) == len(lrs)
    assert [outlines(ax) for ax in axes] == [i + 2 for i in range(len(lrs))]
    assert [ax.get_title().splitlines()[0] for ax in axes] == [f"lr {lr:g}" for lr in lrs]
    assert "outlined: better than the constant LR" in fig.get_suptitle()
    assert texts_outside(fig) == []


def test_heatmap_outlines_follow_the_verdict_not_the_value():
    # A cell above the baseline with "no detectable difference" is not outlined; a "better" one is.
    values = np.array([[0.95, 0.91]])
    verdicts = np.array([["no detectable difference", "better"]], dtype=object)
    fig = plots._heatmap_figure([HeatmapPanel(0.1, values, verdicts, 0.9)], ["5ep"], ["0.1", "0.5"], "t")
    (ax,) = panels_of(fig)
    (outline,) = [p for p in ax.patches if p.get_gid() == "better"]
    assert outline.get_x() + outline.get_width() / 2 == pytest.approx(1)  # the second column


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1)])
@pytest.mark.parametrize("count", [1, 2])
def test_small_heatmaps_lay_out_without_cutting_text(tmp_path, capfd, shape, count):
    rows, columns = ROWS[: shape[0]], COLUMNS[: shape[1]]
    given = [panel(0.1 / 10**i, shape, 0.9 - 0.05 * i, ((0, 0),), seed=i) for i in range(count)]
    title = "fashion-mnist: step_size x gamma x lr over 5 seeds, validation 1/6"
    check_png(plot_heatmap(given, rows, columns, tmp_path / "h.png", title), capfd, min_width=250)
    fig = plots._heatmap_figure(given, rows, columns, title)
    assert texts_outside(fig) == []
    assert all(ax.get_xlabel() == "gamma" for ax in panels_of(fig))


def test_heatmap_axes_are_named_by_the_swept_parameters(tmp_path, capfd):
    # Two parameters of another kind name both axes; one parameter is a single unlabelled row.
    given = [panel(0.01, (2, 2), 0.9, ((1, 0),))]
    check_png(
        plot_heatmap(given, ["1ep", "2ep"], ["1", "2"], tmp_path / "h.png", "t", axis_names=("total", "power")), capfd
    )
    (ax,) = panels_of(plots._heatmap_figure(given, ["1ep", "2ep"], ["1", "2"], "t", ("total", "power")))
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("total", "power")
    row = [panel(0.01, (1, 3), 0.9, ((0, 2),))]
    fig = plots._heatmap_figure(row, [""], ["0.9", "0.95", "0.99"], "t", ("", "gamma"))
    (ax,) = panels_of(fig)
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("", "gamma") and outlines(ax) == 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.9", "0.95", "0.99"]
    assert texts_outside(fig) == []


def test_heatmap_colour_range_always_includes_the_baselines():
    far_below = panel(0.01, (2, 2), 0.40)  # values 85-95%, constant LR 40%
    far_above = panel(0.1, (2, 2), 0.999, seed=1)
    fig = plots._heatmap_figure([far_below, far_above], ROWS[:2], COLUMNS[:2], "t")
    bar = next(ax for ax in fig.axes if ax.get_gid() != "heatmap-panel")
    low, high = bar.get_ylim()
    assert low < 40 and high > 99.9
    marked = sorted(line.get_ydata()[0] for line in bar.get_lines())
    assert marked == pytest.approx([40, 99.9])


def test_close_baselines_share_one_label_on_the_colour_bar():
    close = [panel(0.01, (2, 2), 0.900), panel(0.1, (2, 2), 0.901, seed=1)]
    fig = plots._heatmap_figure(close, ROWS[:2], COLUMNS[:2], "t")
    bar = next(ax for ax in fig.axes if ax.get_gid() != "heatmap-panel")
    assert [t.get_text() for t in bar.texts] == ["constant LR, lr 0.01, 0.1"]


def test_single_seed_heatmap_says_there_is_no_test(tmp_path, capfd):
    given = [panel(0.1, (3, 4), 0.9, words="1 seed: no test")]
    check_png(plot_heatmap(given, ROWS, COLUMNS, tmp_path / "h.png", "one seed"), capfd)
    fig = plots._heatmap_figure(given, ROWS, COLUMNS, "one seed")
    assert "no test" in fig.get_suptitle()
    assert outlines(panels_of(fig)[0]) == 0


def test_heatmap_with_missing_cells_and_baseline_draws_without_warnings(tmp_path, capfd):
    missing = HeatmapPanel(0.1, np.full((2, 2), np.nan), np.full((2, 2), "1 seed: no test"), math.nan)
    check_png(plot_heatmap([missing], ROWS[:2], COLUMNS[:2], tmp_path / "h.png", "nothing ran"), capfd, min_width=250)


@pytest.mark.parametrize(
    ("values", "verdicts", "message"),
    [
        (np.zeros(3), np.full(3, "better"), "values must be a 2-D array"),
        (np.zeros((2, 2)), np.full((2, 3), "better"), r"verdicts must have the shape of values \(2, 2\)"),
        (np.zeros((1, 2)), np.array([["better", "best"]]), r"verdicts must be among .*got \['best'\]"),
    ],
)
def test_heatmap_panel_checks_its_arrays(values, verdicts, message):
    with pytest.raises(ValueError, match=message):
        HeatmapPanel(0.1, values, verdicts, 0.9)


def test_heatmap_checks_panels_against_labels(tmp_path):
    with pytest.raises(ValueError, match="at least one panel"):
        plot_heatmap([], ROWS, COLUMNS, tmp_path / "h.png", "t")
    with pytest.raises(ValueError, match=r"panel lr 0.1 has shape \(3, 4\), labels say \(2, 4\)"):
        plot_heatmap([panel(0.1, (3, 4), 0.9)], ROWS[:2], COLUMNS, tmp_path / "h.png", "t")
    assert list(tmp_path.iterdir()) == []


# --- no pyplot ------------------------------------------------------------------------------------------------


def test_figures_are_drawn_without_importing_pyplot(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from steplr.experiments.plots import HeatmapPanel, plot_heatmap\n"
        "p = HeatmapPanel(0.1, np.full((1, 1), 0.9), np.full((1, 1), 'better'), 0.8)\n"
        f"plot_heatmap([p], ['5ep'], ['0.5'], {str(tmp_path / 'h.png')!r}, 't')\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert (tmp_path / "h.png").stat().st_size > 0


def test_a_run_where_every_seed_diverged_says_so_on_the_run_s_epochs(tmp_path, capfd):
    nan = math.nan
    diverged = History([EpochRecord(e, nan, 0.0, nan, 0.0, 1e4, nan, 0.0) for e in (1, 2, 3)], [1e4] * 6)
    fig = plots._metric_figure({"none": [diverged, diverged]}, "loss")
    assert len(fig.axes) == 3  # train, validation (its accuracy was measured), test
    for ax in fig.axes:
        assert any("every seed diverged" in t.get_text() for t in ax.texts)
        assert ax.get_xlim() == (1.0, 3.0)
    path = plot_run_metric({"none": [diverged]}, "acc", tmp_path / "acc.png")
    assert matplotlib.image.imread(path).std() > 0.01
    assert capfd.readouterr().err == ""


# --- long runs and free-text titles (issue 9) -----------------------------------------------------------------


def drawn_points(fig) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(line.get_xdata(), line.get_ydata()) for line in fig.axes[0].get_lines()]


def test_a_schedule_curve_has_a_bounded_number_of_exact_change_points():
    step = StepDecay(1000, 0.999)  # 20,000 steps down over the longest run explain takes
    cosine = Cosine(10**6)  # a new rate at every one of 10**6 steps
    for schedule, epochs in ((step, MAX_STEPS), (cosine, 10**6)):
        fig = plots._schedules_figure([Curve("one", schedule, 0.1)], epochs, 1, None, None)
        ((x, y),) = drawn_points(fig)
        assert 100 < len(x) <= 3001 and x[0] == 0 and x[-1] == epochs
        steps = x[:-1].astype(np.int64)
        assert np.array_equal(steps, x[:-1])  # change points are whole steps
        assert y[:-1].tolist() == [schedule.lr(0.1, int(t)) for t in steps]  # with the exact rate from there on
        if schedule is step:
            assert not np.any(steps % 1000)  # steps still drawn as steps: every point is where a decay happens
            assert np.all(np.diff(y) <= 0) and y[-1] == step.lr(0.1, MAX_STEPS - 1)
        else:  # the whole range is drawn, down to the lowest rate
            assert y.max() == 0.1 and y.min() == min(cosine.lr(0.1, 10**6 - 1), 0.1)


def test_a_short_schedule_curve_draws_every_interval():
    fig = plots._schedules_figure([Curve("step", StepDecay(10, 0.5), 0.1)], 40, 1, None, None)
    ((x, y),) = drawn_points(fig)
    assert x.tolist() == [0, 10, 20, 30, 40] and y.tolist() == [0.1, 0.05, 0.025, 0.0125, 0.0125]


# The peak RSS of this process image: VmHWM starts afresh at exec, where getrusage's ru_maxrss would carry over
# the RSS of the pytest process that forked it (hundreds of MB once torch is imported).
PEAK_KB = textwrap.dedent("""
    def peak_kb():
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_plotting_at_the_cap_stays_small():
    """`steplr plot` for a cosine over the longest run, in a child process (its own peak RSS), with a 1 GB data
    limit so that drawing every step (20 million points) fails fast."""
    script = PEAK_KB + textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))
        from steplr.cli.main import main
        code = main(["plot", "--schedule", "cosine", "--epochs", "20000000", "-o", sys.argv[1]])
        print(code, peak_kb())
    """)
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "lr.png"
        done = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
        code, peak_kb = map(int, done.stdout.split()[-2:])
        assert code == 0 and target.stat().st_size > 0
        assert peak_kb < 250 * 1024  # matplotlib's import is ~60 MB of it


def test_a_title_is_plain_text_so_any_string_draws(tmp_path, capfd):
    title = r"$\frac{a$ lr 0.1 $x$"  # broken mathtext: matplotlib's parser would refuse it when drawing
    fig = plots._schedules_figure([Curve("step", StepDecay(5, 0.5), 0.1)], 20, 1, None, title)
    fig.canvas.draw()
    assert fig.axes[0].get_title() == title
    check_png(plot_schedules([Curve("step", StepDecay(5, 0.5), 0.1)], 20, tmp_path / "lr.png", title=title), capfd)
