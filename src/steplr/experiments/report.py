"""What steplr shows of paired results: text tables, verdict sentences, summary files and one self-contained HTML
report (figures embedded, no outside requests) for ``compare``, the grid sweep and the Optuna search.

Every report.html is one :class:`Page` written by :func:`write_page`: the producers differ in the data they put on
it (paragraphs, table, verdicts, notes, figures, plans, settings), not in how it is laid out. The functions
``write_*_outputs`` take a result object (:mod:`steplr.experiments.results`) and write a command's files; the CLI
only calls them and prints the lines they return.

A comparison judged on loss (a regression: :attr:`steplr.experiments.results.PairedResult.metric` is ``"loss"``)
is shown in its own words: the tables show validation and test loss (4 significant digits, not percents) and the
paired difference of test loss (negative = lower = better), the sentences and the choice on validation speak of
loss (the lowest validation loss is chosen), summary.json says ``"metric": "loss"``, and the explanation under the
table states the rule for diverged seeds. Everything a classification writes is as it was.

Imports no torch; matplotlib (through :mod:`steplr.experiments.plots`) only when a figure is drawn.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steplr._files import atomic_write_text
from steplr.errors import SteplrValueError
from steplr.experiments.paired import ALPHA, NO_TEST
from steplr.experiments.results import (
    OPTUNA_COLUMNS,
    Comparison,
    Confirmation,
    GridResult,
    PairedResult,
    as_row,
    jsonable,
    point_label,
)

if TYPE_CHECKING:
    from steplr.experiments.tune import TrialCounts
    from steplr.schedules.kinds import Schedule, StepDecay

__all__ = [
    "summary_table",
    "verdicts",
    "verdict_sentence",
    "chosen_on_validation",
    "text_table",
    "percent",
    "loss_value",
    "difference",
    "p_value",
    "seeds_phrase",
    "Page",
    "Section",
    "write_page",
    "write_compare_outputs",
    "compare_lines",
    "write_grid_outputs",
    "StudyInfo",
    "optuna_header",
    "optuna_plan",
    "write_optuna_outputs",
    "write_optuna_nothing",
    "CHOSEN_ON",
    "STATISTICS",
    "LOSS_STATISTICS",
    "TRIAL_TEST_INFO",
]

_COLUMNS = ("schedule", "val acc", "test acc", "vs constant LR (95% CI)", "p (Holm)", "verdict", "diverged")
_GRID_HEADER = (  # after the swept parameters' names
    "lr",
    "val acc",
    "test acc",
    "vs constant LR (95% CI)",
    "p (Holm)",
    "verdict",
    "diverged",
)
# Judged on loss: the same places, holding losses.
_LOSS_COLUMNS = ("schedule", "val loss", "test loss", "vs constant LR (95% CI)", "p (Holm)", "verdict", "diverged")
_LOSS_GRID_HEADER = ("lr", *_LOSS_COLUMNS[1:])

CHOSEN_ON = (
    "Choices (the best schedule or config) are made on the validation split held out of the training set; "
    "every test-set figure is reported for what was chosen, never used to choose."
)
STATISTICS = (
    "vs constant LR: mean over seeds of the paired difference in final test accuracy (points), with its "
    "95% confidence interval (paired t); p (Holm): the paired t-test's p-value adjusted for the number "
    "of comparisons in this report (Holm); verdict: better or worse when the adjusted p is below 0.05, "
    "otherwise no detectable difference. The interval is that comparison's alone, unadjusted: an "
    "interval that excludes 0 can still be no detectable difference once the other comparisons are "
    "accounted for. A diverged seed counts as 0 accuracy."
)
LOSS_STATISTICS = (
    "Judged on loss (lower is better; the runs measure no accuracy). vs constant LR: mean over seeds of the "
    "paired difference in final test loss, schedule minus constant LR (negative: lower than the constant LR), "
    "with its 95% confidence interval (paired t); p (Holm): the paired t-test's p-value adjusted for the number "
    "of comparisons in this report (Holm); verdict: better when the adjusted p is below 0.05 and the difference "
    "is negative, worse when it is positive, otherwise no detectable difference. The interval is that "
    "comparison's alone, unadjusted. A diverged seed (loss NaN or infinite) has no loss: it is left out of the "
    "means, and a seed on which either side diverged is left out of the paired test; since leaving out a seed "
    "the schedule diverged on flatters it, a schedule with a diverged seed is never called better (and is "
    "chosen on validation only when every one has one)."
)
TRIAL_TEST_INFO = (
    "The test accuracy of each trial (trials.csv, column test_acc_info) is shown for information; "
    "nothing was chosen or pruned on it."
)


# --------------------------------------------------------------------------------------------- words and tables


def percent(value: float | None, sd: float | None = None) -> str:
    """An accuracy fraction as ``"95.33%"`` (``"95.33% ± 1.20"`` with an sd); ``-`` for a missing value."""
    if value is None or value != value:
        return "-"
    return f"{value * 100:.2f}%" + ("" if sd is None or sd != sd else f" ± {sd * 100:.2f}")


def difference(diff: float | None, low: float | None, high: float | None) -> str:
    """A paired difference in points with its interval: ``"+1.20 pts [-0.40, +2.80]"``."""
    if diff is None:
        return "-"
    if low is None or high is None:
        return f"{diff:+.2f} pts"
    return f"{diff:+.2f} pts [{low:+.2f}, {high:+.2f}]"


def loss_value(value: float | None, sd: float | None = None) -> str:
    """A loss to 4 significant digits, ``"0.1235"`` (``"0.1235 ± 0.01200"`` with an sd); ``-`` for a missing value.

    >>> loss_value(0.123456, 0.012)
    '0.1235 ± 0.012'
    """
    if value is None or value != value:
        return "-"
    return f"{value:.4g}" + ("" if sd is None or sd != sd else f" ± {sd:.4g}")


def _loss_difference(diff: float | None, low: float | None, high: float | None) -> str:
    """A paired difference of losses with its interval: ``"-0.01234 [-0.02, -0.004567]"``."""
    if diff is None:
        return "-"
    if low is None or high is None:
        return f"{diff:+.4g}"
    return f"{diff:+.4g} [{low:+.4g}, {high:+.4g}]"


def p_value(p: float | None) -> str:
    return "-" if p is None else f"{p:.2g}"


def seeds_phrase(count: int) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{count} seed{'s' if count != 1 else ''}"


def verdict_sentence(
    label: str,
    diff: float | None,
    low: float | None,
    high: float | None,
    p_adjusted: float | None,
    verdict: str,
    compared: int,
    metric: str = "accuracy",
) -> str:
    """One sentence on a candidate against the constant LR that claims no more than its verdict word; ``metric``
    ``"loss"`` words it for a difference of test loss."""
    if diff is None:
        return f"{label}: no comparison" + (" (no seed on which both finished)" if metric == "loss" else "")
    loss = metric == "loss"
    amount = f"{diff:+.4g} test loss" if loss else f"{diff:+.2f} points of test accuracy"
    if p_adjusted is None or low is None or high is None:
        return f"{label}: {verdict} ({amount} against a constant LR on one seed)"
    relation = {"better": "better than", "worse": "worse than"}.get(verdict, "no detectable difference from")
    interval = f"[{low:+.4g}, {high:+.4g}]" if loss else f"[{low:+.2f}, {high:+.2f}]"
    return (
        f"{label}: {relation} a constant LR ({amount}, 95% CI {interval}, p = {p_adjusted:.2g} after Holm's "
        f"adjustment for {compared} comparison{'s' if compared != 1 else ''})"
    )


def _sentence(label: str, row: PairedResult, compared: int) -> str:
    sentence = verdict_sentence(
        label, row.diff_mean, row.diff_ci_low, row.diff_ci_high, row.p_adjusted, row.verdict, compared, row.metric
    )
    lower = row.diff_mean is not None and row.diff_mean < 0 and row.p_adjusted is not None and row.p_adjusted < ALPHA
    if row.metric == "loss" and row.diverged and lower and row.verdict != "better":
        # The test alone would say better: say why the verdict does not.
        sentence = (
            f"{sentence[:-1]}; lower on the seeds both finished, but it diverged on {row.diverged} of {row.seeds} "
            "seeds, so it is not called better)"
        )
    return sentence


def _is_loss(rows: Sequence[PairedResult]) -> bool:
    """Whether these rows (one comparison's) are judged on loss."""
    return bool(rows) and rows[0].metric == "loss"


def _cells(row: PairedResult) -> list[str]:
    if row.metric == "loss":
        return [
            row.schedule,
            loss_value(row.val_loss_mean),
            loss_value(row.test_loss_mean, row.test_loss_sd),
            _loss_difference(row.diff_mean, row.diff_ci_low, row.diff_ci_high),
            p_value(row.p_adjusted),
            row.verdict,
            str(row.diverged) if row.diverged else "",
        ]
    return [
        row.schedule,
        percent(row.val_acc_mean),
        percent(row.test_acc_mean, row.test_acc_sd),
        difference(row.diff_mean, row.diff_ci_low, row.diff_ci_high),
        p_value(row.p_adjusted),
        row.verdict,
        str(row.diverged) if row.diverged else "",
    ]


def summary_table(rows: Sequence[PairedResult]) -> str:
    """The summary as aligned plain text (what ``steplr compare`` prints)."""
    return text_table(_LOSS_COLUMNS if _is_loss(rows) else _COLUMNS, [_cells(row) for row in rows])


def verdicts(rows: Sequence[PairedResult]) -> list[str]:
    """One sentence per schedule against the constant LR, using only its verdict word."""
    compared = sum(row.diff_mean is not None for row in rows)
    return [_sentence(row.schedule, row, compared) for row in rows if row.diff_mean is not None]


def chosen_on_validation(rows: Sequence[PairedResult]) -> str:
    """Which schedule the validation split picks, and its test accuracy (or, judged on loss, the lowest validation
    loss and its test loss; a schedule with a diverged seed only when every one has one)."""
    if _is_loss(rows):
        return _chosen_on_validation_loss(rows)
    if all(r.val_acc_mean != r.val_acc_mean for r in rows):
        return "No validation split: nothing is chosen."
    ranked = [r for r in rows if r.val_acc_mean == r.val_acc_mean and r.diverged < r.seeds]
    if not ranked:
        return "Every schedule diverged on every seed: nothing is chosen."
    best = max(ranked, key=lambda r: r.val_acc_mean)
    return (
        f"Chosen on validation: {best.schedule} (mean final validation accuracy {percent(best.val_acc_mean)}); "
        f"its test accuracy: {percent(best.test_acc_mean, best.test_acc_sd)}."
    )


def _chosen_on_validation_loss(rows: Sequence[PairedResult]) -> str:
    measured = [r for r in rows if r.val_loss_mean == r.val_loss_mean]
    if not measured:
        if all(r.diverged == r.seeds for r in rows):
            return "Every schedule diverged on every seed: nothing is chosen."
        return "No validation split: nothing is chosen."
    steady = [r for r in measured if not r.diverged]
    best = min(steady or measured, key=lambda r: r.val_loss_mean)
    caveat = "" if steady else f" (every schedule diverged on some seed, this one on {best.diverged} of {best.seeds})"
    return (
        f"Chosen on validation: {best.schedule} (lowest mean final validation loss {loss_value(best.val_loss_mean)})"
        f"{caveat}; its test loss: {loss_value(best.test_loss_mean, best.test_loss_sd)}."
    )


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows of strings as aligned plain text."""
    table = [list(header)] + [list(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the page


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.note { color: #555; }
"""

# Records each figure's decoded size on the <img> element, so a headless browser's DOM dump shows it.
_SELF_CHECK = """
window.addEventListener('load', function () {
  document.querySelectorAll('img').forEach(function (img) {
    img.setAttribute('data-natural-size', img.naturalWidth + 'x' + img.naturalHeight);
  });
  document.body.setAttribute('data-loaded', 'yes');
});
"""


@dataclass(frozen=True)
class Section:
    """A heading (``level`` 2, or 3 under the section before) and the preformatted ``text`` under it, if any."""

    heading: str
    text: str | None = None
    level: int = 2


@dataclass(frozen=True)
class Page:
    """What one report.html shows, in this order: the ``paragraphs`` and a bold ``headline``; the table (``header``
    and ``rows``) with the verdict ``sentences`` (both left out when ``header`` is empty); the ``notes`` a reader
    must know before trusting the numbers; the ``explanation`` of the columns; the ``figures`` (title -> image
    file); the ``sections`` (plans, settings)."""

    title: str
    paragraphs: Sequence[str]
    headline: str | None = None
    header: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    sentences: Sequence[str] = ()
    notes: Sequence[str] = ()
    explanation: str = ""
    figures: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)
    sections: Sequence[Section] = ()


def _image(path: str | os.PathLike[str], alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _items(list_id: str, items: Sequence[str]) -> str:
    return f'<ul id="{list_id}">' + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def write_page(path: str | os.PathLike[str], page: Page) -> Path:
    """Write ``page`` as a self-contained HTML file (atomically); returns the path."""
    escape = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(page.title)}</title>",
        f"<style>{_STYLE}</style><script>{_SELF_CHECK}</script></head><body>",
        f"<h1>{escape(page.title)}</h1>",
        *(f"<p>{escape(paragraph)}</p>" for paragraph in page.paragraphs),
    ]
    if page.headline is not None:
        parts.append(f"<p><b>{escape(page.headline)}</b></p>")
    if page.header:
        head = "".join(f"<th>{escape(c)}</th>" for c in page.header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in page.rows)
        parts.append(f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        parts.append(_items("verdicts", page.sentences))
    if page.notes:
        parts.append("<h2>Before you trust these numbers</h2>" + _items("notes", page.notes))
    parts.append(f'<p class="note">{escape(page.explanation)}</p>')
    parts += [f"<h2>{escape(title)}</h2>{_image(figure, title)}" for title, figure in page.figures.items()]
    for section in page.sections:
        text = "" if section.text is None else f"<pre>{escape(section.text)}</pre>"
        parts.append(f"<h{section.level}>{escape(section.heading)}</h{section.level}>{text}")
    parts.append("</body></html>")
    target = Path(path)
    atomic_write_text(target, "\n".join(parts))
    return target


def _settings(heading: str, settings: Mapping[str, object]) -> Section:
    return Section(heading, json.dumps(settings, indent=1, default=str))


def _plan(heading: str, lines: Sequence[str], level: int = 2) -> Section:
    return Section(heading, "\n".join(lines), level)


def _sweep_explanation(*extra: str, statistics: bool = True, metric: str = "accuracy") -> str:
    words = (LOSS_STATISTICS if metric == "loss" else STATISTICS) if statistics else ""
    return " ".join(e for e in (CHOSEN_ON, *extra, words) if e)


# --------------------------------------------------------------------------------------------- compare


def _write_summary_files(
    folder: Path, rows: Sequence[dict[str, Any]], notes: Sequence[str], metric: str = "accuracy"
) -> None:
    """summary.csv (a list as its items joined by spaces) and summary.json (non-finite numbers as null; judged on
    loss, it starts with ``"metric": "loss"``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})
    atomic_write_text(folder / "summary.csv", buffer.getvalue())
    summary: dict[str, Any] = {"metric": "loss"} if metric == "loss" else {}
    summary.update(rows=[jsonable(r) for r in rows], notes=list(notes))
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1))


def write_compare_outputs(
    folder: Path,
    comparison: Comparison,
    figures: Mapping[str, str | os.PathLike[str]],
    plans: Mapping[str, Sequence[str]],
    notes: Sequence[str],
) -> list[PairedResult]:
    """Write ``compare``'s summary.csv, summary.json, config.json and report.html (summary table, verdicts,
    notes, ``figures``, each schedule's plan, the configs) into ``folder``; returns the summary rows."""
    rows = comparison.summary()
    metric = comparison.judged_on
    _write_summary_files(folder, [as_row(row, comparison.columns) for row in rows], notes, metric)
    configs = {name: config.as_dict() for name, config in comparison.configs.items()}
    atomic_write_text(
        folder / "config.json",
        json.dumps({"recipe": comparison.recipe, "seeds": comparison.seeds, "schedules": configs}, indent=1),
    )
    seeds = comparison.seeds
    intro = (
        f"{len(comparison.runs)} schedules x {len(seeds)} seeds (seeds {seeds}); every schedule trains from the "
        "same initial weights and batch orders for a given seed, so the differences are paired. " + CHOSEN_ON
    )
    write_page(
        folder / "report.html",
        Page(
            f"steplr compare: {comparison.recipe}",
            [intro],
            chosen_on_validation(rows),
            _LOSS_COLUMNS if metric == "loss" else _COLUMNS,
            [_cells(row) for row in rows],
            verdicts(rows),
            notes,
            LOSS_STATISTICS if metric == "loss" else STATISTICS,
            figures,
            [
                Section("The plan of each schedule"),
                *(_plan(name, lines, 3) for name, lines in plans.items()),
                _settings("Configs", configs),
            ],
        ),
    )
    return rows


def compare_lines(rows: Sequence[PairedResult], notes: Sequence[str]) -> list[str]:
    """What ``steplr compare`` prints after training: the table, the verdicts, the choice and ``notes``."""
    return [
        summary_table(rows),
        *(f"- {line}" for line in verdicts(rows)),
        chosen_on_validation(rows),
        *(f"note: {note}" for note in notes),
    ]


# --------------------------------------------------------------------------------------------- grid sweep


def _swept(row: PairedResult) -> tuple[StepDecay, float]:
    """The StepLR schedule and base LR of a grid or Optuna row.

    Raises:
        SteplrValueError: for a row without a step size, gamma or lr (a compare row).
    """
    from steplr.schedules.kinds import StepDecay

    if row.step_size is None or row.gamma is None or row.lr is None:
        raise SteplrValueError(f"{row.schedule!r} row has no step_size, gamma and lr to draw or explain")
    return StepDecay(row.step_size, row.gamma), row.lr


def _shown(value: Any) -> str:
    """A swept parameter's value as the tables and axes show it: numbers by ``:g``, lists joined by commas."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _kind_words(kind: str) -> str:
    return "StepLR" if kind == "step" else kind  # the default grid's kind by torch's name, as reports always said


def _heatmap_axes(grid: Mapping[str, Sequence[Any]]) -> tuple[list[str], dict[str, Any]] | None:
    """The parameters a heatmap maps (rows, then columns; one: a single row) and those it holds at one value; None
    when more than two vary: a map of two would show one cell per config of the others, with no way to tell them
    apart, so such a grid is reported as a table only."""
    names = list(grid)
    if len(names) <= 2:
        return names, {}
    varying = [name for name in names if len(grid[name]) > 1]
    if len(varying) > 2:
        return None
    axes = varying or names[:1]
    return axes, {name: grid[name][0] for name in names if name not in axes}


def _heatmap(folder: Path, result: GridResult, summaries: Sequence[PairedResult]) -> dict[str, Path]:
    """heatmap.png of mean final test accuracy (judged on loss: validation loss, what the choice is made on), one
    panel per base LR (see :func:`_heatmap_axes`), if drawn."""
    import numpy as np

    from steplr.experiments.plots import HeatmapPanel, plot_heatmap

    found = _heatmap_axes(result.grid)
    if found is None:
        return {}
    axes, fixed = found
    loss = result.judged_on == "loss"
    labels = [[_shown(v) for v in result.grid[name]] for name in axes]
    if len(axes) == 1:
        labels.insert(0, [""])
    panels = []
    for lr in result.lrs:
        values = np.full((len(labels[0]), len(labels[1])), np.nan)
        words = np.full(values.shape, "no detectable difference", dtype=object)
        diverged = np.zeros(values.shape, dtype=int)
        baseline: float | None = None
        for s in summaries:
            if s.lr == lr:
                cell = tuple(result.grid[name].index(s.params[name]) for name in axes)
                cell = (0, *cell) if len(cell) == 1 else cell
                if loss:
                    values[cell], words[cell], baseline = s.val_loss_mean, s.verdict, s.baseline_val_loss_mean
                    diverged[cell] = s.diverged
                else:
                    values[cell], words[cell], baseline = s.test_acc_mean, s.verdict, s.baseline_test_acc_mean
        marks = diverged if loss else None  # an accuracy's mean already counts a diverged seed as 0
        panels.append(HeatmapPanel(lr, values, words, np.nan if baseline is None else baseline, marks))
    at = "".join(f" at {name} {_shown(value)}" for name, value in fixed.items())
    names = ("", axes[0]) if len(axes) == 1 else (axes[0], axes[1])
    title = f"{result.recipe}: {' x '.join(axes)}{at}, {len(result.seeds)} seeds"
    return {
        ("Mean final validation loss" if loss else "Mean final test accuracy"): plot_heatmap(
            panels, labels[0], labels[1], folder / "heatmap.png", title, axis_names=names, metric=result.judged_on
        )
    }


def _grid_figures(
    folder: Path, result: GridResult, summaries: Sequence[PairedResult], steps_per_epoch: int
) -> dict[str, Path]:
    from steplr.experiments.plots import Curve, plot_schedules

    curves = [
        Curve(point_label(result.schedule, s.params, s.lr or 0.0), *_grid_schedule(result, s, steps_per_epoch))
        for s in summaries[:5]
    ]
    return {
        **_heatmap(folder, result, summaries),
        "Learning rate of the five best on validation": plot_schedules(
            curves,
            result.base.epochs,
            folder / "best_lr.png",
            steps_per_epoch,
            title="Learning rate of the five best configs (validation)",
        ),
    }


def _grid_schedule(result: GridResult, row: PairedResult, steps_per_epoch: int) -> tuple[Schedule, float]:
    """The schedule of a grid row, resolved for the sweep's runs, and its base LR."""
    config = result.config(row)
    return config.schedule.build(config.epochs, steps_per_epoch), config.lr


def _grid_sentences(result: GridResult, summaries: Sequence[PairedResult]) -> list[str]:
    best = summaries[0]  # the highest mean validation accuracy (judged on loss: the lowest validation loss)
    counts = {word: sum(s.verdict == word for s in summaries) for word in ("better", "worse")}
    tally = (
        f"{counts['better']} better, {counts['worse']} worse, the rest no detectable difference (Holm-adjusted "
        f"over all {len(summaries)})"
        if len(result.seeds) > 1
        else f"{NO_TEST} for any of them"
    )
    return [
        f"{len(summaries)} {_kind_words(result.schedule)} configs against a constant LR at the same base LR and "
        f"seeds: {tally}.",
        _sentence(
            f"chosen on validation ({point_label(result.schedule, best.params, best.lr or 0.0)})", best, len(summaries)
        ),
    ]


def _grid_settings(result: GridResult) -> dict[str, Any]:
    """config.json: the recipe, the swept kind when the recipe runs another, each swept parameter's values (its
    name plus s: ``step_sizes``, ``gammas``), the base LRs and seeds."""
    kind = {} if result.base.schedule.kind == result.schedule else {"schedule": result.schedule}
    return {
        "recipe": result.base.as_dict(),
        **kind,
        **{f"{name}s": values for name, values in result.grid.items()},
        "lrs": result.lrs,
        "seeds": result.seeds,
    }


def _grid_plan(result: GridResult, best: PairedResult, steps_per_epoch: int) -> list[str]:
    from steplr.schedules.explain import explain, format_plan

    return format_plan(
        f"chosen on validation: {point_label(result.schedule, best.params, best.lr or 0.0)}",
        explain(*_grid_schedule(result, best, steps_per_epoch), result.base.epochs, steps_per_epoch),
    )


def _write_grid_files(
    folder: Path, result: GridResult, summaries: Sequence[PairedResult], notes: Sequence[str]
) -> None:
    """results.csv (one row per run), summary.json (one per config) and config.json (the sweep's settings)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(result.rows[0]))
    writer.writeheader()
    writer.writerows(result.rows)
    atomic_write_text(folder / "results.csv", buffer.getvalue())
    rows = [jsonable(as_row(s, result.columns)) for s in summaries]
    if result.judged_on == "loss":
        summary: dict[str, Any] = {"metric": "loss", "rows": rows, "notes": list(notes)}
        summary["chosen_on"] = "validation loss (lowest; configs with a diverged seed last)"
    else:
        summary = {"rows": rows, "notes": list(notes), "chosen_on": "validation accuracy"}
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1))
    atomic_write_text(folder / "config.json", json.dumps(_grid_settings(result), indent=1))


def write_grid_outputs(
    folder: Path, out: Path, result: GridResult, steps_per_epoch: int, warnings: Sequence[str]
) -> list[str]:
    """Write the grid sweep's results.csv, summary.json, heatmap.png, best_lr.png, config.json and report.html
    into ``folder`` (which becomes ``out``); returns the lines to print (the plan ``warnings`` already were)."""
    summaries = result.summaries()
    notes = [*warnings, *result.notes()]
    _write_grid_files(folder, result, summaries, notes)
    figures = _grid_figures(folder, result, summaries, steps_per_epoch)
    metric = result.judged_on
    header = (*result.grid, *(_LOSS_GRID_HEADER if metric == "loss" else _GRID_HEADER))
    rows = [(*(_shown(s.params[name]) for name in result.grid), f"{s.lr:g}", *_cells(s)[1:]) for s in summaries]
    plan = _grid_plan(result, summaries[0], steps_per_epoch)
    sentences = _grid_sentences(result, summaries)
    intro = [
        f"{len(summaries)} {_kind_words(result.schedule)} configs x {len(result.seeds)} seeds, trained in batches "
        f"with a constant LR on the same seeds; validation split {result.base.validation:.3g} of the training set."
    ]
    if _heatmap_axes(result.grid) is None:
        intro.append(
            f"{len(result.grid)} parameters vary ({', '.join(result.grid)}), so there is no heatmap (one of "
            "two would hide the others): the table lists every config."
        )
    write_page(
        folder / "report.html",
        Page(
            f"steplr sweep: {result.recipe}",
            intro,
            None,
            header,
            rows,
            sentences,
            notes,
            _sweep_explanation(metric=metric),
            figures,
            [_plan("The plan of the config chosen on validation", plan), _settings("Settings", _grid_settings(result))],
        ),
    )
    return [
        f"{result.recipe}: {len(summaries)} configs x {len(result.seeds)} seeds (best five on validation)",
        text_table(header, rows[:5]),
        *(f"- {line}" for line in sentences),
        *(f"note: {note}" for note in notes[len(warnings) :]),
        *plan,
        f"results: {out / 'results.csv'}",
        f"report: {out / 'report.html'}",
    ]


# --------------------------------------------------------------------------------------------- Optuna


@dataclass(frozen=True)
class StudyInfo:
    """What the Optuna report tells of a study: its ``name``, where it is stored (``where``, secrets hidden), the
    settings it was created with (``attrs``), how its trials ended and one row per trial (trials.csv)."""

    recipe: str
    name: str
    where: str
    attrs: dict[str, Any]
    counts: TrialCounts
    trials: list[dict[str, Any]]

    def __str__(self) -> str:
        return f"study {self.name!r} on {self.where}: {self.counts}"


def optuna_header(seeds: int) -> tuple[str, ...]:
    """The table's columns: what the configs were ranked on first, then the means over the ``seeds`` retrained runs."""
    over = f"({seeds_phrase(seeds)})"
    return (
        "trial",
        "step_size",
        "gamma",
        "lr",
        "trial val acc",
        f"val acc {over}",
        f"test acc {over}",
        f"constant LR test acc {over}",
        "vs constant LR (95% CI)",
        "p",
        "p (Holm)",
        "verdict",
        "diverged",
    )


def _trial_label(row: PairedResult) -> str:
    return f"trial {row.trial} (step_size {row.step_size}, gamma {row.gamma:.4g}, lr {row.lr:.3g})"


def _trial_cells(row: PairedResult) -> tuple[str, ...]:
    return (
        str(row.trial),
        str(row.step_size),
        f"{row.gamma:.4g}",
        f"{row.lr:.3g}",
        percent(row.trial_val_acc),
        percent(row.val_acc_mean),
        percent(row.test_acc_mean, row.test_acc_sd),
        percent(row.baseline_test_acc_mean),
        difference(row.diff_mean, row.diff_ci_low, row.diff_ci_high),
        p_value(row.p),
        p_value(row.p_adjusted),
        row.verdict,
        f"{row.diverged}/{row.seeds}",
    )


def _trial_sentence(row: PairedResult, chosen: bool, compared: int) -> str:
    label = (
        f"{'chosen on validation: ' if chosen else ''}trial {row.trial} (step_size {row.step_size}, gamma "
        f"{row.gamma:.4g}, lr {row.lr:.3g}; trial val acc {percent(row.trial_val_acc)})"
    )
    return _sentence(label, row, compared)


def _optuna_notes(result: Confirmation) -> list[str]:
    """What to know before trusting the numbers: one seed, diverged seeds, a run too short for decay to pay off."""
    notes = []
    if len(result.seeds) < 2:
        notes.append(f"{NO_TEST}: differences from a single seed are not evidence; use --seeds 5 or more")
    notes += [
        f"{_trial_label(row)} diverged on {row.diverged} of {row.seeds} seeds (counted as 0 accuracy)"
        for row in result.rows
        if row.diverged
    ]
    baseline_diverged = {row.lr: row.baseline_diverged for row in result.rows if row.baseline_diverged}
    notes += [
        f"the constant LR at lr {lr:.3g} diverged on {count} of {len(result.seeds)} seeds (counted as 0 accuracy)"
        for lr, count in baseline_diverged.items()
    ]
    notes += [
        f"the constant LR at lr {lr:.3g} still lowered its validation loss by {fall * 100:.1f}% over the last "
        f"10% of epochs: the run may be too short for decay to pay off; try a larger --epochs"
        for lr, fall in result.still_falling.items()
    ]
    return notes


def optuna_plan(result: Confirmation) -> list[str]:
    """The explain plan of the config chosen on validation (the first row)."""
    from steplr.schedules.explain import explain, format_plan

    best = result.rows[0]
    plan = explain(*_swept(best), result.base.epochs, result.base.steps_per_epoch(result.batches))
    return format_plan(f"chosen on validation: trial {best.trial} (highest trial val acc)", plan)


def _write_study_files(
    out: Path, study: StudyInfo, result: Confirmation | None, note: str | None = None
) -> tuple[Path, Path]:
    """summary.json (the trial counts and one row per confirmed config; none, with a note, when nothing completed)
    and trials.csv (one row per trial)."""
    summary: dict[str, Any] = {
        "chosen_on": "search trial validation accuracy (trial_val_acc, one run per trial)",
        "reported_on": "test set",
        "study": study.name,
        "storage": study.where,
        "trials": {**dataclasses.asdict(study.counts), "finished": study.counts.finished},
        "seeds": [] if result is None else result.seeds,
        "validation": study.attrs.get("validation") if result is None else result.base.validation,
        "epochs": study.attrs.get("epochs") if result is None else result.base.epochs,
        "rows": [] if result is None else [jsonable(as_row(row, OPTUNA_COLUMNS)) for row in result.rows],
    }
    if note is not None:
        summary["note"] = note
    summary_path = atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, allow_nan=False) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(study.trials[0]))
    writer.writeheader()
    writer.writerows(study.trials)
    return summary_path, atomic_write_text(out / "trials.csv", buffer.getvalue())


def _optuna_figure(out: Path, result: Confirmation) -> Path:
    from steplr.experiments.plots import Curve, plot_schedules

    return plot_schedules(
        [Curve(_trial_label(row), *_swept(row)) for row in result.rows],
        result.base.epochs,
        out / "best_lr.png",
        result.base.steps_per_epoch(result.batches),
        title="Learning rate of the best configs (ranked on trial val acc)",
    )


def write_optuna_outputs(
    out: Path, study: StudyInfo, result: Confirmation, plan: Sequence[str], warnings: Sequence[str], seeds_line: str
) -> list[str]:
    """Write the Optuna search's summary.json, trials.csv, best_lr.png and report.html into ``out`` for the
    confirmed best configs; returns the lines to print. ``plan``: :func:`optuna_plan`, whose ``warnings`` were
    already printed; ``seeds_line``: where the number of seeds came from (or "")."""
    seeds = len(result.seeds)
    chosen = (
        f"best {len(result.rows)} config{'s' if len(result.rows) != 1 else ''} chosen on validation: ranked by "
        f"each search trial's own final validation accuracy (trial val acc, one run), then retrained on "
        f"{seeds_phrase(seeds)} beside a constant LR at the same lr on the same seeds and reported on the test "
        "set"
    )
    table = [_trial_cells(row) for row in result.rows]
    sentences = [_trial_sentence(row, index == 0, len(result.rows)) for index, row in enumerate(result.rows)]
    notes = _optuna_notes(result)
    summary, trials = _write_study_files(out, study, result)
    columns = (
        f"trial val acc: the search trial's own final validation accuracy (one run), which ranks the configs "
        "(ties: the earlier trial first); "
        f"val acc and test acc ({seeds_phrase(seeds)}): means over the retrained runs; constant LR test acc: "
        "the constant LR's mean test accuracy on the same seeds."
    )
    settings = {"recipe": result.base.as_dict(), "study": study.name, "search": study.attrs, "seeds": result.seeds}
    intro = [f"{study}.", f"{chosen[0].upper()}{chosen[1:]}.", *([f"{seeds_line}."] if seeds_line else [])]
    report = write_page(
        out / "report.html",
        Page(
            f"steplr sweep (optuna): {study.recipe}",
            intro,
            None,
            optuna_header(seeds),
            table,
            sentences,
            [*notes, *warnings],
            _sweep_explanation(columns, TRIAL_TEST_INFO),
            {"Learning rate of the best configs": _optuna_figure(out, result)},
            [_plan("The plan of the config chosen on validation", plan), _settings("Settings", settings)],
        ),
    )
    return [
        chosen,
        text_table(optuna_header(seeds), table),
        *(f"- {s}" for s in sentences),
        *(f"note: {n}" for n in notes),
        *plan,
        f"trials: {trials} (test_acc_info: for information; nothing was chosen or pruned on it)",
        f"summary: {summary}",
        f"report: {report}",
    ]


def write_optuna_nothing(out: Path, study: StudyInfo) -> list[str]:
    """A study without a complete trial: nothing to choose. Say so in every file; returns the lines to print."""
    counts = study.counts
    nothing = (
        f"no trial completed ({counts.diverged} diverged, {counts.pruned} pruned, {counts.failed} failed): "
        "nothing can be chosen, and nothing was compared with a constant LR"
    )
    notes = [
        "a diverged trial's loss became NaN or infinite: a smaller --lr (or lr range) may help"
        if counts.diverged
        else "a longer search (--trials) or other ranges may complete a trial"
    ]
    summary, trials = _write_study_files(out, study, None, nothing)
    report = write_page(
        out / "report.html",
        Page(
            f"steplr sweep (optuna): {study.recipe}",
            [f"{study}.", f"{nothing[0].upper()}{nothing[1:]}."],
            notes=notes,
            explanation=_sweep_explanation(TRIAL_TEST_INFO, statistics=False),
            sections=[_settings("Settings", {"study": study.name, "search": study.attrs})],
        ),
    )
    return [nothing, *(f"note: {n}" for n in notes), f"trials: {trials}", f"summary: {summary}", f"report: {report}"]
