"""A regression (no accuracy, finite losses) is judged on loss, lower being better: the metric chosen, the paired
statistics of test loss, the rule for diverged seeds, the choice on validation loss, and what the summary files,
report.html and figures say. Every comparison here is built from made-up Histories with NaN accuracies."""

from __future__ import annotations

import csv
import html
import json
import math
import re
import statistics

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from steplr.errors import SteplrValueError
from steplr.experiments import plots
from steplr.experiments.compare import schedule_config
from steplr.experiments.paired import holm
from steplr.experiments.plots import HeatmapPanel, run_figures
from steplr.experiments.report import (
    LOSS_STATISTICS,
    chosen_on_validation,
    compare_lines,
    loss_value,
    summary_table,
    verdicts,
    write_compare_outputs,
    write_grid_outputs,
)
from steplr.experiments.results import (
    COMPARE_COLUMNS,
    LOSS_COMPARE_COLUMNS,
    Comparison,
    GridResult,
    SeedRun,
    metric_of,
    pair_runs,
)
from steplr.schedules.spec import ScheduleSpec
from steplr.training.config import EpochRecord, History, TrainConfig

NAN = math.nan
EPOCHS = 4
PER_EPOCH = 5


def history(test: float, val: float | None = None, diverged_at: int | None = None, acc: float = NAN) -> History:
    """A run whose losses fall to ``test`` (and ``val``, default ``test``) at the last epoch, with accuracy ``acc``
    (NaN: a regression); from ``diverged_at`` on every metric is NaN, as the engines record a diverged model."""
    val = test if val is None else val
    records = []
    for epoch in range(1, EPOCHS + 1):
        factor = 1 + (EPOCHS - epoch) / EPOCHS  # larger losses before the end
        record = EpochRecord(epoch, 1.1 * test * factor, acc, test * factor, acc, 0.01, val * factor, acc)
        if diverged_at is not None and epoch >= diverged_at:
            record = EpochRecord(epoch, NAN, NAN, NAN, NAN, 0.01, NAN, NAN)
        records.append(record)
    return History(records, [0.01] * (EPOCHS * PER_EPOCH))


def loss_runs(*tests: float, diverged: dict[int, int] | None = None) -> list[SeedRun]:
    """Seeds ending at these test losses (validation = test); ``diverged`` maps a seed index to its epoch."""
    diverged = diverged or {}
    return [SeedRun.of(history(t, diverged_at=diverged.get(i))) for i, t in enumerate(tests)]


BASE = [1.0, 1.2, 0.9, 1.1, 1.05]


def shifted(shift: float, spread: float = 0.01) -> list[float]:
    return [b + shift + spread * ((-1) ** i) * (i % 3) for i, b in enumerate(BASE)]


# --------------------------------------------------------------------------------------------- the metric


def test_the_metric_is_loss_exactly_when_no_finished_run_measured_an_accuracy():
    assert metric_of(loss_runs(0.5, 0.6)) == "loss"
    assert metric_of(loss_runs(0.5, 0.6, diverged={0: 2})) == "loss"  # a diverged seed does not change it
    assert metric_of([SeedRun.of(history(0.5, acc=0.9)), *loss_runs(0.5)]) == "accuracy"
    assert metric_of(loss_runs(0.5, diverged={0: 1})) == "accuracy"  # every run diverged: nothing tells
    classification = Comparison("c", TrainConfig(), [0], runs={"none": [history(0.5, acc=0.8)]})
    assert classification.judged_on == "accuracy" and classification.columns == COMPARE_COLUMNS
    regression = Comparison("r", TrainConfig(), [0], runs={"none": [history(0.5)]})
    assert regression.judged_on == "loss" and regression.columns == LOSS_COMPARE_COLUMNS
    # The caller's choice wins over the runs.
    assert Comparison("r", TrainConfig(), [0], runs=regression.runs, metric="accuracy").judged_on == "accuracy"


@pytest.mark.parametrize("metric", ["mse", "Loss", ""])
def test_an_unknown_metric_is_named(metric):
    with pytest.raises(SteplrValueError, match=f"metric must be one of 'accuracy', 'loss', got {metric!r}"):
        Comparison("r", TrainConfig(), [0], metric=metric)
    with pytest.raises(SteplrValueError, match=f"got {metric!r}"):
        GridResult("r", TrainConfig(), "step", {}, [0.01], [0], [], metric=metric)
    with pytest.raises(SteplrValueError, match=f"got {metric!r}"):
        pair_runs([({"schedule": "step"}, loss_runs(0.5), loss_runs(0.5))], metric)


# --------------------------------------------------------------------------------------------- statistics


def test_paired_loss_statistics_follow_their_definitions_and_lower_is_better():
    candidate, baseline = shifted(-0.1), BASE
    base_row, row = pair_runs(
        [
            ({"schedule": "none"}, loss_runs(*baseline), None),
            ({"schedule": "step"}, loss_runs(*candidate), loss_runs(*baseline)),
        ],
        "loss",
    )
    assert row.metric == base_row.metric == "loss"
    assert row.test_loss_mean == pytest.approx(statistics.fmean(candidate))
    assert row.test_loss_sd == pytest.approx(statistics.stdev(candidate))
    assert row.val_loss_mean == pytest.approx(statistics.fmean(candidate))
    assert row.baseline_test_loss_mean == pytest.approx(statistics.fmean(baseline))
    assert math.isnan(row.test_acc_mean) and math.isnan(row.val_acc_mean)  # no accuracy: not 0
    assert row.diff_mean == pytest.approx(statistics.fmean(a - b for a, b in zip(candidate, baseline)))
    result = stats.ttest_rel(candidate, baseline)
    interval = result.confidence_interval(0.95)
    assert row.p == pytest.approx(result.pvalue) and row.p_adjusted == row.p
    assert (row.diff_ci_low, row.diff_ci_high) == pytest.approx((interval.low, interval.high))
    assert row.diff_mean < 0 and row.verdict == "better" and (row.wins, row.ties) == (5, 0)
    assert base_row.verdict == "baseline" and base_row.diff_mean is None and base_row.val_loss_mean == 1.05
    (worse,) = pair_runs([({"schedule": "step"}, loss_runs(*shifted(0.1)), loss_runs(*baseline))], "loss")
    assert worse.diff_mean > 0 and worse.verdict == "worse" and worse.wins == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.01, 10.0), min_size=2, max_size=6).flatmap(
        lambda base: st.tuples(st.just(base), st.lists(st.floats(0.01, 10.0), min_size=len(base), max_size=len(base)))
    )
)
def test_swapping_the_sides_negates_the_difference_and_swaps_better_and_worse(sides):
    a, b = sides
    (ab,) = pair_runs([({"schedule": "x"}, loss_runs(*a), loss_runs(*b))], "loss")
    (ba,) = pair_runs([({"schedule": "x"}, loss_runs(*b), loss_runs(*a))], "loss")
    assert ab.diff_mean == pytest.approx(statistics.fmean(x - y for x, y in zip(a, b)), abs=1e-12)
    assert ba.diff_mean == pytest.approx(-ab.diff_mean, abs=1e-12) and ba.p == pytest.approx(ab.p)
    swap = {"better": "worse", "worse": "better", "no detectable difference": "no detectable difference"}
    assert ba.verdict == swap[ab.verdict]
    if ab.verdict == "better":
        assert ab.diff_mean < 0 and ab.p_adjusted < 0.05
    assert ab.diff_ci_low <= ab.diff_mean <= ab.diff_ci_high


def test_holm_runs_over_every_schedule_judged_on_loss():
    baseline = loss_runs(*BASE)
    rows = pair_runs(
        [({"schedule": name}, loss_runs(*shifted(shift)), baseline) for name, shift in (("a", -0.02), ("b", -0.3))],
        "loss",
    )
    assert [r.p_adjusted for r in rows] == pytest.approx(holm([r.p for r in rows]))
    assert rows[1].p < rows[0].p and rows[1].p_adjusted == pytest.approx(2 * rows[1].p)  # two comparisons


def test_one_seed_and_identical_losses_have_no_spread_to_test():
    (one,) = pair_runs([({"schedule": "x"}, loss_runs(0.4), loss_runs(0.5))], "loss")
    assert one.verdict == "1 seed: no test" and one.p is None and one.diff_mean == pytest.approx(-0.1)
    (same,) = pair_runs([({"schedule": "x"}, loss_runs(0.5, 0.6), loss_runs(0.5, 0.6))], "loss")
    assert (same.diff_mean, same.p, same.verdict, same.ties) == (0.0, 1.0, "no detectable difference", 2)


def test_a_schedule_with_a_diverged_seed_is_never_called_better():
    # Far lower on the four seeds it finished; the fifth diverged: left out of the test, so not "better".
    candidate = loss_runs(*shifted(-0.5), diverged={2: 3})
    (row,) = pair_runs([({"schedule": "x"}, candidate, loss_runs(*BASE))], "loss")
    finished = [(a, b) for i, (a, b) in enumerate(zip(shifted(-0.5), BASE)) if i != 2]
    assert row.diff_mean == pytest.approx(statistics.fmean(a - b for a, b in finished))
    assert row.p == pytest.approx(stats.ttest_rel(*zip(*finished)).pvalue) and row.p_adjusted < 0.05
    assert row.verdict == "no detectable difference"
    assert (row.diverged, row.diverged_at, row.wins) == (1, [3], 4)  # the diverged seed is never a win
    assert row.test_loss_mean == pytest.approx(statistics.fmean(a for a, _ in finished))
    # Without the diverged seed the same numbers are "better"; with one, "worse" is still said.
    (clean,) = pair_runs([({"schedule": "x"}, loss_runs(*shifted(-0.5)), loss_runs(*BASE))], "loss")
    assert clean.verdict == "better"
    (worse,) = pair_runs([({"schedule": "x"}, loss_runs(*shifted(0.5), diverged={0: 2}), loss_runs(*BASE))], "loss")
    assert worse.verdict == "worse"


def test_a_seed_only_the_constant_lr_diverged_on_is_left_out_of_the_test_and_is_a_win():
    (row,) = pair_runs([({"schedule": "x"}, loss_runs(*shifted(-0.2)), loss_runs(*BASE, diverged={4: 2}))], "loss")
    finished = list(zip(shifted(-0.2), BASE))[:4]
    assert row.diff_mean == pytest.approx(statistics.fmean(a - b for a, b in finished))
    assert (row.diverged, row.baseline_diverged, row.wins, row.verdict) == (0, 1, 5, "better")
    # Nothing to pair when one side diverged on every seed.
    (none,) = pair_runs([({"schedule": "x"}, loss_runs(0.5, 0.6, diverged={0: 1, 1: 2}), loss_runs(0.5, 0.6))], "loss")
    assert (none.diff_mean, none.p, none.verdict) == (None, None, "no detectable difference")
    assert math.isnan(none.test_loss_mean) and none.diverged == 2


# --------------------------------------------------------------------------------------------- compare


def comparison(tmp_seeds: int = 5) -> Comparison:
    """none; "step" lower on test and validation; "exponential" lowest on validation but one seed diverged;
    "cosine" higher on both."""
    base = TrainConfig(epochs=EPOCHS, validation=0.2)
    seeds = list(range(tmp_seeds))
    finals = {
        "none": (BASE, BASE, {}),
        "step": (shifted(-0.2), shifted(-0.15), {}),
        "exponential": (shifted(-0.4), shifted(-0.4), {1: 3}),
        "cosine": (shifted(0.3), shifted(0.3), {}),
    }
    result = Comparison("my model", base, seeds)
    for name, (test, val, diverged) in finals.items():
        result.configs[name] = schedule_config(base, name, batches=PER_EPOCH)
        result.runs[name] = [history(t, v, diverged.get(i)) for i, (t, v) in enumerate(zip(test, val))]
    return result


def table_cells(page: str) -> list[list[str]]:
    body = re.search(r'<table id="summary">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body is not None
    return [
        [html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1))
    ]


def test_compare_judged_on_loss_writes_loss_files_table_and_figures(tmp_path):
    result = comparison()
    rows = result.summary()
    by_name = {row.schedule: row for row in rows}
    assert by_name["step"].verdict == "better" and by_name["cosine"].verdict == "worse"
    assert by_name["exponential"].verdict == "no detectable difference" and by_name["exponential"].diverged == 1
    notes = result.notes()
    assert any("exponential diverged in 1 of 5 seeds" in n and "cannot be called better" in n for n in notes)
    figures = run_figures(tmp_path, result.runs, result.judged_on)
    assert sorted(p.name for p in figures.values()) == ["loss.png", "lr.png"]  # no empty accuracy figure
    for path in figures.values():
        assert matplotlib.image.imread(path)[..., :3].std() > 0.05
    assert write_compare_outputs(tmp_path, result, figures, {"none": ["plan"]}, notes) == rows

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metric"] == "loss" and summary["notes"] == notes
    assert [list(r) for r in summary["rows"]] == [list(LOSS_COMPARE_COLUMNS)] * 4
    good = summary["rows"][1]
    assert good["schedule"] == "step" and good["test_loss_mean"] == pytest.approx(statistics.fmean(shifted(-0.2)))
    assert good["val_loss_mean"] == pytest.approx(statistics.fmean(shifted(-0.15)))
    assert good["diff_mean"] == pytest.approx(-0.2, abs=0.01) and good["verdict"] == "better"
    assert summary["rows"][0]["diff_mean"] is None and summary["rows"][0]["verdict"] == "baseline"
    with (tmp_path / "summary.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert list(csv_rows[0]) == list(LOSS_COMPARE_COLUMNS)
    assert csv_rows[2]["diverged"] == "1" and csv_rows[2]["diverged_at"] == "3"

    page = (tmp_path / "report.html").read_text()
    cells = table_cells(page)
    assert [c[0] for c in cells] == ["none", "step", "exponential", "cosine"]
    for row, shown in zip(rows, cells):
        assert shown[1] == loss_value(row.val_loss_mean) and shown[2] == loss_value(
            row.test_loss_mean, row.test_loss_sd
        )
        assert shown[5] == row.verdict and "%" not in "".join(shown) and "pts" not in "".join(shown)
    assert cells[1][3] == f"{rows[1].diff_mean:+.4g} [{rows[1].diff_ci_low:+.4g}, {rows[1].diff_ci_high:+.4g}]"
    assert cells[2][6] == "1" and cells[0][3] == "-"
    assert "<th>val loss</th><th>test loss</th>" in page and "val acc" not in page
    assert html.escape(LOSS_STATISTICS) in page
    assert page.count("data:image/png;base64,") == 2
    # The choice: "exponential" has the lowest validation loss but a diverged seed; "step" is chosen.
    choice = f"Chosen on validation: step (lowest mean final validation loss {loss_value(rows[1].val_loss_mean)})"
    assert f"<p><b>{html.escape(choice)}" in page


def test_the_loss_table_sentences_and_choice_read_as_loss():
    rows = comparison().summary()
    table = summary_table(rows)
    assert table.splitlines()[0].split() == ["schedule", "val", "loss", "test", "loss", "vs", "constant", "LR",
                                             "(95%", "CI)", "p", "(Holm)", "verdict", "diverged"]  # fmt: skip
    good = rows[1]
    sentences = verdicts(rows)
    assert sentences[0] == (
        f"step: better than a constant LR ({good.diff_mean:+.4g} test loss, 95% CI [{good.diff_ci_low:+.4g}, "
        f"{good.diff_ci_high:+.4g}], p = {good.p_adjusted:.2g} after Holm's adjustment for 3 comparisons)"
    )
    assert all("points" not in s and "accuracy" not in s for s in sentences)
    # The diverged schedule's test alone says lower: the sentence says why its verdict does not.
    assert sentences[1].startswith("exponential: no detectable difference from a constant LR (-0.")
    assert sentences[1].endswith(
        "lower on the seeds both finished, but it diverged on 1 of 5 seeds, so it is not called better)"
    )
    assert chosen_on_validation(rows).endswith(f"its test loss: {loss_value(good.test_loss_mean, good.test_loss_sd)}.")
    lines = compare_lines(rows, ["a note"])
    assert lines[0] == table and lines[-1] == "note: a note"


def test_the_choice_when_every_schedule_diverged_somewhere_or_there_is_no_validation():
    unstable = [r for r in comparison().summary() if r.schedule == "exponential"]
    assert "Chosen on validation: exponential" in chosen_on_validation(unstable)
    assert "every schedule diverged on some seed" in chosen_on_validation(unstable)
    no_split = pair_runs([({"schedule": "none"}, [SeedRun(NAN, NAN, 0.5, None)] * 2, None)], "loss")
    assert chosen_on_validation(no_split) == "No validation split: nothing is chosen."


def test_the_accuracy_panel_of_a_regression_says_no_accuracy_was_measured():
    runs = comparison().runs
    fig = plots._metric_figure(runs, "acc")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no accuracy measured:\na regression is judged on loss" in texts
    with pytest.raises(ValueError, match="metric must be 'accuracy' or 'loss', got 'acc'"):
        run_figures(".", runs, "acc")


# --------------------------------------------------------------------------------------------- grid sweep


def grid_result() -> GridResult:
    """StepLR step_size x gamma at one lr over three seeds; step_size 2ep lowers the loss, 1ep raises it."""
    base = TrainConfig(epochs=EPOCHS, validation=0.2, schedule=ScheduleSpec("step", {"step_size": "2ep", "gamma": 0.5}))
    grid = {"step_size": ["1ep", "2ep"], "gamma": [0.5, 0.9]}
    result = GridResult("my model", base, "step", grid, [0.01], [0, 1, 2], [])
    shift = {("none", "", ""): 0.0, ("step", "1ep", 0.5): 0.2, ("step", "1ep", 0.9): 0.1}
    shift |= {("step", "2ep", 0.5): -0.3, ("step", "2ep", 0.9): -0.1}
    for (kind, size, gamma), delta in shift.items():
        for seed in range(3):
            loss = BASE[seed] + delta + 0.01 * seed * (delta != 0)
            diverged = 2 if (size, gamma, seed) == ("2ep", 0.5, 1) else None
            run = history(loss, loss - 0.05, diverged)
            row = {"schedule": kind, "step_size": size, "gamma": gamma, "lr": 0.01, "seed": seed}
            result.rows.append(row)
            result.finals.append(SeedRun.of(run))
            if kind == "none":
                result.baseline_val_losses.setdefault(0.01, []).append(run.column("val_loss"))
    return result


def test_a_grid_judged_on_loss_chooses_the_lowest_validation_loss_without_divergence(tmp_path):
    result = grid_result()
    assert result.judged_on == "loss"
    summaries = result.summaries()
    # 2ep/0.5 has the lowest validation loss but diverged on a seed: it ranks after every steady config.
    assert [(s.params["step_size"], s.params["gamma"]) for s in summaries] == [
        ("2ep", 0.9),
        ("1ep", 0.9),
        ("1ep", 0.5),
        ("2ep", 0.5),
    ]
    assert summaries[-1].diverged == 1 and summaries[-1].verdict != "better"
    assert summaries[0].verdict == "better" and summaries[2].verdict == "worse"
    assert any("cannot be called better" in note for note in result.notes())
    lines = write_grid_outputs(tmp_path, tmp_path, result, PER_EPOCH, [])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metric"] == "loss" and summary["chosen_on"].startswith("validation loss")
    assert list(summary["rows"][0]) == [
        "step_size",
        "gamma",
        "lr",
        "val_loss_mean",
        "test_loss_mean",
        "test_loss_sd",
        "baseline_val_loss_mean",
        "baseline_test_loss_mean",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "p",
        "p_adjusted",
        "verdict",
        "diverged",
    ]
    assert summary["rows"][0]["baseline_val_loss_mean"] == pytest.approx(statistics.fmean(BASE[:3]) - 0.05)
    page = (tmp_path / "report.html").read_text()
    cells = table_cells(page)
    assert cells[0][:4] == ["2ep", "0.9", "0.01", loss_value(summaries[0].val_loss_mean)]
    assert "Mean final validation loss" in page and html.escape(LOSS_STATISTICS) in page
    assert any(line.startswith("- chosen on validation (step 2ep, gamma 0.9, lr 0.01): better than") for line in lines)
    assert matplotlib.image.imread(tmp_path / "heatmap.png")[..., :3].std() > 0.05
    # The heatmap maps validation loss, and marks the config whose mean left a diverged seed out.
    fig = plots._heatmap_figure(*_heatmap_inputs(result, summaries), metric="loss")
    (ax,) = [a for a in fig.axes if a.get_gid() == "heatmap-panel"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        f"{s.val_loss_mean:.3g}" + ("*" if s.diverged else "") for s in summaries
    )
    assert "*: a seed diverged" in fig.get_suptitle().replace("\n", " ")


def _heatmap_inputs(result: GridResult, summaries) -> tuple:
    """What write_grid_outputs gives the heatmap, rebuilt from the summaries (rows step_size, columns gamma)."""
    values, words, diverged = np.full((2, 2), np.nan), np.full((2, 2), "", dtype=object), np.zeros((2, 2), int)
    for s in summaries:
        cell = (result.grid["step_size"].index(s.params["step_size"]), result.grid["gamma"].index(s.params["gamma"]))
        values[cell], words[cell], diverged[cell] = s.val_loss_mean, s.verdict, s.diverged
    panel = HeatmapPanel(0.01, values, words, summaries[0].baseline_val_loss_mean, diverged)
    return [panel], ["1ep", "2ep"], ["0.5", "0.9"], "t"


def test_the_loss_heatmap_labels_losses_not_percents_on_a_reversed_scale():
    values = np.array([[0.1234, 0.25]])
    verdicts_ = np.array([["better", "no detectable difference"]], dtype=object)
    fig = plots._heatmap_figure(
        [HeatmapPanel(0.1, values, verdicts_, 0.2)], ["2ep"], ["0.5", "0.9"], "t", metric="loss"
    )
    (ax,) = [a for a in fig.axes if a.get_gid() == "heatmap-panel"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.123", "0.25"]
    assert ax.get_title() == "lr 0.1\nconstant LR: 0.2"
    assert ax.images[0].get_cmap().name == "viridis_r"
    assert "on test loss" in fig.get_suptitle().replace("\n", " ")
    bar = next(a for a in fig.axes if a.get_gid() != "heatmap-panel")
    assert bar.get_ylabel() == "mean final validation loss"
    low, high = bar.get_ylim()
    assert low < 0.1234 and high > 0.25 and high - low < 0.2  # in loss units, not percent
    with pytest.raises(ValueError, match="got 'acc'"):
        plots._heatmap_figure([HeatmapPanel(0.1, values, verdicts_, 0.2)], ["2ep"], ["0.5", "0.9"], "t", metric="acc")
    with pytest.raises(ValueError, match=r"diverged must have the shape of values \(1, 2\), got \(2,\)"):
        HeatmapPanel(0.1, values, verdicts_, 0.2, np.zeros(2))


def test_run_figures_of_a_classification_keep_the_accuracy_figure(tmp_path):
    runs = {"none": [history(0.5, acc=0.8)], "step": [history(0.4, acc=0.85)]}
    figures = run_figures(tmp_path, runs)
    assert list(figures) == ["Learning rate per iteration", "Loss", "Accuracy"]
    assert [p.name for p in figures.values()] == ["lr.png", "loss.png", "accuracy.png"]
