"""Tables and a self-contained HTML report of a comparison (figures embedded, no outside requests)."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from steplr.experiments.compare import Comparison, SummaryRow
from steplr._files import atomic_write_text

__all__ = [
    "summary_table",
    "verdicts",
    "verdict_sentence",
    "chosen_on_validation",
    "write_report",
    "text_table",
    "write_sweep_report",
    "percent",
    "difference",
    "p_value",
    "CHOSEN_ON",
    "STATISTICS",
]

_COLUMNS = ("schedule", "val acc", "test acc", "vs constant LR (95% CI)", "p (Holm)", "verdict", "diverged")

CHOSEN_ON = ("Choices (the best schedule or config) are made on the validation split held out of the training set; "
             "every test-set figure is reported for what was chosen, never used to choose.")
STATISTICS = ("vs constant LR: mean over seeds of the paired difference in final test accuracy (points), with its "
              "95% confidence interval (paired t); p (Holm): the paired t-test's p-value adjusted for the number "
              "of comparisons in this report (Holm); verdict: better or worse when the adjusted p is below 0.05, "
              "otherwise no detectable difference. The interval is that comparison's alone, unadjusted: an "
              "interval that excludes 0 can still be no detectable difference once the other comparisons are "
              "accounted for. A diverged seed counts as 0 accuracy.")


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


def p_value(p: float | None) -> str:
    return "-" if p is None else f"{p:.2g}"


def verdict_sentence(label: str, diff: float | None, low: float | None, high: float | None,
                     p_adjusted: float | None, verdict: str, compared: int) -> str:
    """One sentence on a candidate against the constant LR that claims no more than its verdict word."""
    if diff is None:
        return f"{label}: no comparison"
    if p_adjusted is None:
        return f"{label}: {verdict} ({diff:+.2f} points of test accuracy against a constant LR on one seed)"
    relation = {"better": "better than", "worse": "worse than"}.get(verdict, "no detectable difference from")
    return (f"{label}: {relation} a constant LR ({diff:+.2f} points of test accuracy, 95% CI [{low:+.2f}, "
            f"{high:+.2f}], p = {p_adjusted:.2g} after Holm's adjustment for {compared} comparison"
            f"{'s' if compared != 1 else ''})")


def _cells(row: SummaryRow) -> list[str]:
    return [
        row.schedule,
        percent(row.val_acc_mean),
        percent(row.test_acc_mean, row.test_acc_sd),
        difference(row.diff_mean, row.diff_ci_low, row.diff_ci_high),
        p_value(row.p_adjusted),
        row.verdict,
        str(row.diverged) if row.diverged else "",
    ]


def summary_table(rows: Sequence[SummaryRow]) -> str:
    """The summary as aligned plain text (what ``steplr compare`` prints)."""
    return text_table(_COLUMNS, [_cells(row) for row in rows])


def verdicts(rows: Sequence[SummaryRow]) -> list[str]:
    """One sentence per schedule against the constant LR, using only its verdict word."""
    compared = sum(row.diff_mean is not None for row in rows)
    return [
        verdict_sentence(row.schedule, row.diff_mean, row.diff_ci_low, row.diff_ci_high, row.p_adjusted,
                         row.verdict, compared)
        for row in rows
        if row.diff_mean is not None
    ]


def chosen_on_validation(rows: Sequence[SummaryRow]) -> str:
    """Which schedule the validation split picks, and its test accuracy."""
    if all(r.val_acc_mean != r.val_acc_mean for r in rows):
        return "No validation split: nothing is chosen."
    ranked = [r for r in rows if r.val_acc_mean == r.val_acc_mean and r.diverged < r.seeds]
    if not ranked:
        return "Every schedule diverged on every seed: nothing is chosen."
    best = max(ranked, key=lambda r: r.val_acc_mean)
    return (f"Chosen on validation: {best.schedule} (mean final validation accuracy {percent(best.val_acc_mean)}); "
            f"its test accuracy: {percent(best.test_acc_mean, best.test_acc_sd)}.")


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


def _image(path: str | os.PathLike[str], alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def write_report(
    path: str | os.PathLike[str],
    comparison: Comparison,
    figures: Mapping[str, str | os.PathLike[str]],
    plans: Mapping[str, Sequence[str]],
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.html``: summary table, verdicts, notes, figures, each schedule's plan and the configs."""
    rows = comparison.summary()
    seeds = len(comparison.seeds)
    header = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(row)) + "</tr>" for row in rows
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>steplr compare: {html.escape(comparison.recipe)}</title>",
        f"<style>{_STYLE}</style><script>{_SELF_CHECK}</script></head><body>",
        f"<h1>steplr compare: {html.escape(comparison.recipe)}</h1>",
        f"<p>{len(comparison.runs)} schedules x {seeds} seeds (seeds {html.escape(str(comparison.seeds))}); "
        "every schedule trains from the same initial weights and batch orders for a given seed, so the "
        f"differences are paired. {html.escape(CHOSEN_ON)}</p>",
        f"<p><b>{html.escape(chosen_on_validation(rows))}</b></p>",
        f'<table id="summary"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>',
        '<ul id="verdicts">' + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts(rows)) + "</ul>",
    ]
    if notes:
        parts.append('<h2>Before you trust these numbers</h2><ul id="notes">'
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append(f'<p class="note">{html.escape(STATISTICS)}</p>')
    for title, figure in figures.items():
        parts.append(f"<h2>{html.escape(title)}</h2>{_image(figure, title)}")
    parts.append("<h2>The plan of each schedule</h2>")
    for name, lines in plans.items():
        parts.append(f"<h3>{html.escape(name)}</h3><pre>{html.escape(chr(10).join(lines))}</pre>")
    configs = {name: config.as_dict() for name, config in comparison.configs.items()}
    parts.append(f"<h2>Configs</h2><pre>{html.escape(json.dumps(configs, indent=1))}</pre>")
    parts.append("</body></html>")
    target = Path(path)
    atomic_write_text(target, "\n".join(parts))
    return target


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows of strings as aligned plain text."""
    table = [list(header)] + [list(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_sweep_report(
    path: str | os.PathLike[str],
    title: str,
    intro: str | Sequence[str],
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    figures: Mapping[str, str | os.PathLike[str]],
    plan: Sequence[str],
    config: Mapping[str, object],
    sentences: Sequence[str] = (),
    notes: Sequence[str] = (),
    explanations: Sequence[str] = (),
) -> Path:
    """Write a sweep's ``report.html``: the configs, verdict sentences, notes (what to know before trusting the
    numbers), how to read them (choices made on validation, the statistics, any ``explanations``), the figures,
    the plan of the config chosen on validation and the settings.

    ``intro``: one paragraph or several. An empty ``header`` leaves out the table and the verdicts (a search that
    could choose nothing); an empty ``plan`` leaves out the plan.
    """
    paragraphs = [intro] if isinstance(intro, str) else list(intro)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style><script>{_SELF_CHECK}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs),
    ]
    if header:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        parts.append(f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        parts.append('<ul id="verdicts">' + "".join(f"<li>{html.escape(v)}</li>" for v in sentences) + "</ul>")
    if notes:
        parts.append('<h2>Before you trust these numbers</h2><ul id="notes">'
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    explained = [CHOSEN_ON, *explanations, STATISTICS if header else ""]
    parts.append(f'<p class="note">{html.escape(" ".join(e for e in explained if e))}</p>')
    for name, figure in figures.items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_image(figure, name)}")
    if plan:
        parts.append(f"<h2>The plan of the config chosen on validation</h2><pre>{html.escape(chr(10).join(plan))}</pre>")
    parts.append(f"<h2>Settings</h2><pre>{html.escape(json.dumps(config, indent=1, default=str))}</pre>")
    parts.append("</body></html>")
    target = Path(path)
    atomic_write_text(target, "\n".join(parts))
    return target
