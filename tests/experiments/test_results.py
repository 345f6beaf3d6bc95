"""The one paired-results type: the same statistics for compare, the grid sweep and Optuna, importable without torch."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import textwrap

import pytest
from scipy import stats

from steplr.experiments.report import Page, Section, write_page
from steplr.experiments.results import (
    COMPARE_COLUMNS,
    GRID_COLUMNS,
    OPTUNA_COLUMNS,
    PairedResult,
    SeedRun,
    as_row,
    jsonable,
    pair_runs,
)


def test_results_configs_and_histories_import_without_torch():
    code = textwrap.dedent("""
        import sys
        from steplr.experiments.results import Comparison, Confirmation, GridResult, PairedResult, pair_runs
        from steplr.experiments.paired import against_baseline
        from steplr.experiments.report import write_page, summary_table
        from steplr.training.config import EpochRecord, History, TrainConfig
        print(sorted(name for name in ("torch", "matplotlib", "optuna") if name in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def runs(*accs: float, diverged: int | None = None) -> list[SeedRun]:
    """Seeds with these accuracies (validation = test) and loss 0.5, plus one that diverged in epoch ``diverged``."""
    found = [SeedRun(acc, acc, 0.5, None) for acc in accs]
    return [*found, SeedRun(0.9, 0.9, math.nan, diverged)] if diverged else found


def test_statistics_follow_their_definitions():
    candidate, baseline = [0.80, 0.70, 0.90], [0.75, 0.70, 0.60]
    (base_row, row) = pair_runs(
        [({"schedule": "none"}, runs(*baseline), None), ({"schedule": "step"}, runs(*candidate), runs(*baseline))]
    )
    assert row.test_acc_mean == statistics.fmean(candidate) and row.test_acc_sd == statistics.stdev(candidate)
    assert row.baseline_test_acc_mean == statistics.fmean(baseline)
    assert (row.wins, row.ties, row.seeds, row.diverged) == (2, 1, 3, 0)
    result = stats.ttest_rel(candidate, baseline)
    assert row.p == pytest.approx(result.pvalue) and row.p_adjusted == row.p  # one comparison: Holm keeps it
    assert row.diff_mean == pytest.approx(100 * statistics.fmean(a - b for a, b in zip(candidate, baseline)))
    # The constant LR's own row is not compared with itself.
    assert base_row.verdict == "baseline"
    assert (base_row.diff_mean, base_row.p, base_row.wins, base_row.baseline_test_acc_mean) == (None, None, None, None)


def test_a_diverged_seed_counts_as_zero_accuracy_in_every_column():
    (row,) = pair_runs([({"schedule": "step"}, runs(0.5, diverged=3), runs(0.5, 0.5))])
    assert (row.diverged, row.diverged_at) == (1, [3])
    assert row.test_acc_mean == row.val_acc_mean == 0.25  # the diverged seed's 0.9 counts as 0
    assert row.test_loss_mean == 0.5 and math.isnan(row.test_loss_sd)  # only one finite loss
    assert (row.wins, row.ties, row.baseline_diverged) == (0, 1, 0)


def test_one_seed_has_no_spread_and_no_test():
    (row,) = pair_runs([({"schedule": "step"}, runs(0.7), runs(0.6))])
    assert math.isnan(row.test_acc_sd) and row.p is None and row.verdict == "1 seed: no test"
    assert row.diff_mean == pytest.approx(10.0)


def test_holm_runs_over_every_compared_candidate():
    baseline = runs(0.5, 0.6, 0.7, 0.55)
    rows = pair_runs(
        [
            ({"schedule": name}, runs(*(b.test_acc + shift + 0.01 * i for i, b in enumerate(baseline))), baseline)
            for name, shift in (("a", 0.01), ("b", 0.2))
        ]
    )
    raw = sorted(r.p for r in rows)
    assert sorted(r.p_adjusted for r in rows) == pytest.approx([min(1, 2 * raw[0]), max(min(1, 2 * raw[0]), raw[1])])


def test_no_validation_split_is_nan_not_zero():
    (row,) = pair_runs(
        [({"schedule": "step"}, [SeedRun(math.nan, 0.5, 0.4, None)] * 2, [SeedRun(math.nan, 0.4, 0.4, None)] * 2)]
    )
    assert math.isnan(row.val_acc_mean) and math.isnan(row.baseline_val_acc_mean)


def test_each_producer_reports_its_own_columns():
    (row,) = pair_runs(
        [
            (
                {"schedule": "step", "step_size": "2ep", "gamma": 0.5, "lr": 0.1, "trial": 4, "trial_val_acc": 0.8},
                runs(0.5, 0.6),
                runs(0.5, 0.5),
            )
        ]
    )
    assert list(as_row(row, COMPARE_COLUMNS)) == [
        "schedule",
        "val_acc_mean",
        "test_acc_mean",
        "test_acc_sd",
        "test_loss_mean",
        "test_loss_sd",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "p",
        "p_adjusted",
        "verdict",
        "wins",
        "ties",
        "seeds",
        "diverged",
        "diverged_at",
    ]
    assert list(as_row(row, GRID_COLUMNS)) == [
        "step_size",
        "gamma",
        "lr",
        "val_acc_mean",
        "test_acc_mean",
        "test_acc_sd",
        "test_loss_mean",
        "baseline_val_acc_mean",
        "baseline_test_acc_mean",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "p",
        "p_adjusted",
        "verdict",
        "diverged",
    ]
    assert list(as_row(row, OPTUNA_COLUMNS)) == [
        "trial",
        "step_size",
        "gamma",
        "lr",
        "trial_val_acc",
        "val_acc_mean",
        "test_acc_mean",
        "test_acc_sd",
        "baseline_test_acc_mean",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "p",
        "p_adjusted",
        "verdict",
        "diverged",
        "baseline_diverged",
        "seeds",
    ]
    assert jsonable({"sd": math.nan, "mean": 0.5, "word": "x"}) == {"sd": None, "mean": 0.5, "word": "x"}


def test_a_candidate_without_runs_is_refused():
    from steplr.errors import SteplrValueError

    with pytest.raises(SteplrValueError, match="'schedule': 'step'"):
        pair_runs([({"schedule": "step"}, [], runs(0.5))])


def test_one_page_skeleton_shows_only_what_it_is_given(tmp_path):
    page = Page(
        "t <1>",
        ["intro & more"],
        notes=["careful"],
        explanation="how to read",
        sections=[Section("Plans"), Section("a", "line 1\nline 2", 3)],
    )
    text = write_page(tmp_path / "report.html", page).read_text()
    assert "<h1>t &lt;1&gt;</h1>" in text and "<p>intro &amp; more</p>" in text
    assert 'id="summary"' not in text and 'id="verdicts"' not in text  # no header: no table, no verdicts
    assert '<ul id="notes"><li>careful</li></ul>' in text and '<p class="note">how to read</p>' in text
    assert "<h2>Plans</h2>\n<h3>a</h3><pre>line 1\nline 2</pre>" in text
    full = write_page(tmp_path / "full.html", Page("t", [], "chosen", ("a", "b"), [("1", "2")], ["s"])).read_text()
    assert "<p><b>chosen</b></p>" in full and "<td>1</td><td>2</td>" in full and "<li>s</li>" in full


def test_paired_result_is_frozen():
    (row,) = pair_runs([({"schedule": "step"}, runs(0.5), runs(0.5))])
    assert isinstance(row, PairedResult)
    with pytest.raises(AttributeError):
        row.verdict = "better"  # type: ignore[misc]
