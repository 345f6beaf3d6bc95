"""Tables and a self-contained HTML report of a comparison (figures embedded, no outside requests)."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .experiments import Comparison, SummaryRow
from ._files import atomic_write_text

__all__ = ["summary_table", "verdicts", "write_report", "text_table", "write_sweep_report"]

_COLUMNS = ("schedule", "final test acc", "final test loss", "wins vs none", "mean diff", "paired p")


def _cells(row: SummaryRow, seeds: int) -> list[str]:
    wins = "-" if row.wins is None else f"{row.wins}/{seeds}" + (f" ({row.ties} tied)" if row.ties else "")
    diff = "-" if row.mean_diff is None else f"{row.mean_diff * 100:+.2f} pts"
    p_value = "-" if row.p_value is None else f"{row.p_value:.3g}"
    return [
        row.schedule,
        f"{row.test_acc_mean * 100:.2f}% ± {row.test_acc_sd * 100:.2f}",
        f"{row.test_loss_mean:.4f} ± {row.test_loss_sd:.4f}",
        wins,
        diff,
        p_value,
    ]


def summary_table(rows: Sequence[SummaryRow], seeds: int) -> str:
    """The summary as aligned plain text (what ``steplr compare`` prints)."""
    return text_table(_COLUMNS, [_cells(row, seeds) for row in rows])


def verdicts(rows: Sequence[SummaryRow], seeds: int) -> list[str]:
    """One plain sentence per schedule on how it did against a constant LR ("none"), paired over seeds."""
    found = []
    for row in rows:
        if row.wins is None or row.mean_diff is None:
            continue
        losses = seeds - row.wins - (row.ties or 0)
        if row.mean_diff == 0 and losses == 0 and row.wins == 0:
            found.append(f"{row.schedule} ends exactly where a constant LR does in every seed.")
            continue
        side = "above" if row.mean_diff > 0 else "below"
        evidence = "" if row.p_value is None else (
            f"; paired p = {row.p_value:.2g}" + ("" if row.p_value < 0.05 else ", not a reliable difference")
        )
        found.append(
            f"{row.schedule} ends {side} a constant LR by {abs(row.mean_diff) * 100:.2f} points of test accuracy "
            f"on average: better in {row.wins}, worse in {losses} of {seeds} seeds{evidence}."
        )
    return found


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
) -> Path:
    """Write ``report.html``: summary table, figures, each schedule's explain plan and the configs."""
    rows = comparison.summary()
    seeds = len(comparison.seeds)
    header = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(row, seeds)) + "</tr>" for row in rows
    )
    best = max(rows, key=lambda r: r.test_acc_mean)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>steplr compare: {html.escape(comparison.recipe)}</title>",
        f"<style>{_STYLE}</style><script>{_SELF_CHECK}</script></head><body>",
        f"<h1>steplr compare: {html.escape(comparison.recipe)}</h1>",
        f"<p>{len(comparison.runs)} schedules x {seeds} seeds (seeds {html.escape(str(comparison.seeds))}); "
        "every schedule trains from the same initial weights and batch orders for a given seed, so the "
        "differences are paired. Best mean final test accuracy: "
        f"<b>{html.escape(best.schedule)}</b> ({best.test_acc_mean * 100:.2f}%).</p>",
        f'<table id="summary"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>',
        "<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts(rows, seeds)) + "</ul>",
        '<p class="note">wins: seeds where the schedule ends with a higher test accuracy than "none" (constant '
        "LR); paired p: two-sided paired t-test of the final test accuracies against none.</p>",
    ]
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
    intro: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    figures: Mapping[str, str | os.PathLike[str]],
    plan: Sequence[str],
    config: Mapping[str, object],
) -> Path:
    """Write a sweep's ``report.html``: the best configs, the figures, the winner's plan and the settings."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style><script>{_SELF_CHECK}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(intro)}</p>",
        f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
    ]
    for name, figure in figures.items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_image(figure, name)}")
    parts.append(f"<h2>The winner's plan</h2><pre>{html.escape(chr(10).join(plan))}</pre>")
    parts.append(f"<h2>Settings</h2><pre>{html.escape(json.dumps(config, indent=1, default=str))}</pre>")
    parts.append("</body></html>")
    target = Path(path)
    atomic_write_text(target, "\n".join(parts))
    return target
