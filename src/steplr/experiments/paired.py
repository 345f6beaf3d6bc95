"""Paired results: runs over seeds against the constant-LR baseline, as statistics and one verdict word.

Every comparison steplr reports (a ``compare`` row, a grid-sweep config, Optuna's best configs) is made here, the
same way: the candidate and the constant LR are trained on the same seeds (same initial weights, same batch
orders), so the difference of their final test accuracies is paired per seed. For each candidate:

* ``diff_mean``: the mean of the per-seed differences, in points of test accuracy (``+1.0`` = one percentage
  point above the constant LR);
* ``diff_ci_low`` / ``diff_ci_high``: its 95% confidence interval (paired t);
* ``p``: the two-sided paired t-test of "no difference"; ``p_adjusted``: Holm's step-down adjustment over all the
  candidates compared in one report, so that a "best of 40" is not claimed on luck;
* ``verdict``: ``better`` or ``worse`` when ``p_adjusted < 0.05`` (by the sign of the mean), otherwise
  ``no detectable difference``; with a single seed there is no test at all (``1 seed: no test``).

When every seed shows the same difference (to within :data:`SAME_DIFFERENCE` points, i.e. up to rounding) the t
statistic is undefined (zero spread); then ``p`` is the exact sign-flip permutation p-value, ``2 / 2**n`` (1.0
when the difference is zero), and the interval is the single value. A diverged model (NaN accuracy) counts as 0
accuracy: it classifies nothing right.

SciPy is imported when a test is computed (``scipy.stats.ttest_rel``); Holm's adjustment is a few lines, written
here because SciPy offers only the Benjamini-Hochberg procedure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from steplr.errors import SteplrValueError

__all__ = [
    "Paired",
    "against_baseline",
    "holm",
    "verdict_word",
    "still_falling",
    "baseline_notes",
    "VERDICTS",
    "ALPHA",
    "NO_TEST",
]

ALPHA = 0.05
NO_TEST = "1 seed: no test"
VERDICTS = ("better", "worse", "no detectable difference", NO_TEST)
# Accuracies are counts over a test set (multiples of 100/n points apart); differences closer than this are one
# difference seen through rounding (float32 metrics differ in the 6th digit), not spread a t-test could use: a
# t-test on such noise reports p ~ 1e-11 for "one more test example right on every seed".
SAME_DIFFERENCE = 1e-3  # points
LATE_SHARE = 0.10  # "the last 10% of epochs"
STILL_FALLING = 0.01  # a baseline whose validation loss still falls by more than 1% there has not converged


@dataclass(frozen=True)
class Paired:
    """A candidate against the constant LR over ``seeds`` paired seeds (differences in accuracy points)."""

    seeds: int
    diff_mean: float
    diff_ci_low: float | None
    diff_ci_high: float | None
    p: float | None
    p_adjusted: float | None
    verdict: str


def _accuracy(value: float) -> float:
    return 0.0 if math.isnan(value) else float(value)


def _test(diffs: Sequence[float], candidate: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, float]:
    """(p, ci_low, ci_high) of the paired t-test, in points; the exact sign-flip p for zero spread."""
    mean = statistics.fmean(diffs)
    if max(diffs) - min(diffs) <= SAME_DIFFERENCE:
        return (1.0 if abs(mean) <= SAME_DIFFERENCE else 2.0 / 2 ** len(diffs)), mean, mean
    from scipy import stats

    result = stats.ttest_rel(candidate, baseline)
    interval = result.confidence_interval(1 - ALPHA)
    return float(result.pvalue), float(interval.low) * 100, float(interval.high) * 100


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of ``p_values`` (None entries are not tests and stay None).

    >>> holm([0.01, 0.04, None, 0.03])
    [0.03, 0.06, None, 0.06]
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def verdict_word(diff_mean: float, p_adjusted: float | None) -> str:
    """``better``/``worse`` (adjusted p below 0.05), ``no detectable difference``, or ``1 seed: no test``."""
    if p_adjusted is None:
        return NO_TEST
    if p_adjusted < ALPHA and diff_mean != 0:
        return "better" if diff_mean > 0 else "worse"
    return "no detectable difference"


def against_baseline(pairs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> list[Paired]:
    """Compare each ``(candidate, baseline)`` pair of per-seed final accuracies (fractions, same seed order).

    The p-values are Holm-adjusted over all the pairs given: pass every comparison one report makes.

    Raises:
        SteplrValueError: for an empty pair or pairs of different lengths.
    """
    raw: list[tuple[float, float | None, float | None, float | None]] = []
    for candidate, baseline in pairs:
        if not candidate or len(candidate) != len(baseline):
            raise SteplrValueError(
                f"a paired comparison needs the same seeds on both sides, got {len(candidate)} and {len(baseline)}"
            )
        a = [_accuracy(v) for v in candidate]
        b = [_accuracy(v) for v in baseline]
        diffs = [(x - y) * 100 for x, y in zip(a, b)]
        mean = statistics.fmean(diffs)
        if len(diffs) < 2:
            raw.append((mean, None, None, None))
            continue
        p, low, high = _test(diffs, a, b)
        raw.append((mean, low, high, p))
    adjusted = holm([p for *_, p in raw])
    return [
        Paired(len(candidate), mean, low, high, p, p_adj, verdict_word(mean, p_adj))
        for (candidate, _), (mean, low, high, p), p_adj in zip(pairs, raw, adjusted)
    ]


def _mean_at(curves: Sequence[Sequence[float]], index: int) -> float | None:
    values = [c[index] for c in curves if math.isfinite(c[index])]
    return statistics.fmean(values) if values else None


def still_falling(curves: Sequence[Sequence[float]]) -> float | None:
    """The relative fall of the mean curve over the last 10% of epochs when it exceeds 1%, else None.

    ``curves`` holds one per-epoch validation loss list per seed (NaN entries, from diverged seeds, are skipped).
    A constant-LR baseline still improving that fast at the end was stopped early: a decaying schedule may not
    have had the time to pay off. A curve that is not converging at all (the loss at the start of that window is
    above the first epoch's: it blew up and is coming back) is not "still falling": see :func:`baseline_notes`.
    """
    epochs = min((len(c) for c in curves), default=0)
    if epochs < 2:
        return None
    back = max(1, math.ceil(epochs * LATE_SHARE))
    first, start, end = _mean_at(curves, 0), _mean_at(curves, epochs - 1 - back), _mean_at(curves, epochs - 1)
    if first is None or start is None or end is None or start <= 0 or start > first:
        return None
    fall = (start - end) / start
    return fall if fall > STILL_FALLING else None


def baseline_notes(curves: Sequence[Sequence[float]], where: str = "") -> list[str]:
    """What a reader must know about the constant LR before trusting verdicts against it: still improving at the
    end, unstable, or a run too short to tell. ``where`` qualifies the baseline (e.g. "at lr 0.01 ")."""
    epochs = min((len(c) for c in curves), default=0)
    if epochs == 1:
        return [
            f"the constant LR {where}ran a single epoch: whether it had converged cannot be told, and a decaying "
            "schedule had no time to pay off (try a larger --epochs)"
        ]
    first, last = _mean_at(curves, 0), _mean_at(curves, epochs - 1) if epochs else None
    if first is not None and last is not None and last > first:
        return [
            f"the constant LR's validation loss {where}ended above its first epoch's ({last:.3g} > {first:.3g}): "
            "it is unstable at this learning rate, and verdicts against it say little"
        ]
    fall = still_falling(curves)
    if fall is not None:
        return [
            f"the constant LR's validation loss {where}still fell by {fall:.1%} over the last 10% of the {epochs} "
            "epochs: the run may be too short for decay to pay off (try a larger --epochs)"
        ]
    return []
