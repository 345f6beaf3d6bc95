"""Paired statistics against the constant LR: Holm, intervals, verdict words, the too-short check."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from steplr.errors import SteplrValueError
from steplr.experiments.paired import against_baseline, holm, still_falling, verdict_word

p_values = st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(p_values)
def test_holm_is_the_step_down_definition(ps):
    adjusted = holm(ps)
    tested = [(p, i) for i, p in enumerate(ps) if p is not None]
    m = len(tested)
    order = sorted(tested)
    for rank, (_, index) in enumerate(order):
        # Holm: the adjusted p of the k-th smallest is the running max of (m - j) * p_(j) over j <= k, capped at 1.
        expected = max(min(1.0, (m - j) * order[j][0]) for j in range(rank + 1))
        assert adjusted[index] == pytest.approx(expected)
        assert adjusted[index] >= ps[index]
    assert all(a is None for a, p in zip(adjusted, ps) if p is None)


def test_holm_controls_what_a_bonferroni_family_would():
    # With a single test, nothing changes; with two equal p-values both are doubled.
    assert holm([0.02]) == [0.02]
    assert holm([0.02, 0.02]) == [0.04, 0.04]


accuracies = st.lists(st.integers(0, 540), min_size=2, max_size=8).map(lambda xs: [x / 540 for x in xs])


@settings(max_examples=100, deadline=None)
@given(accuracies, st.data())
def test_one_pair_is_the_paired_t_test_with_its_interval(candidate, data):
    baseline = data.draw(st.lists(st.integers(0, 540), min_size=len(candidate), max_size=len(candidate)))
    baseline = [x / 540 for x in baseline]
    (result,) = against_baseline([(candidate, baseline)])
    diffs = [100 * (a - b) for a, b in zip(candidate, baseline)]
    assert result.diff_mean == pytest.approx(sum(diffs) / len(diffs), abs=1e-9)
    if len(set(diffs)) > 1:
        reference = stats.ttest_rel(candidate, baseline)
        interval = reference.confidence_interval(0.95)
        assert result.p == pytest.approx(reference.pvalue)
        assert (result.diff_ci_low, result.diff_ci_high) == pytest.approx((100 * interval.low, 100 * interval.high))
    else:  # zero spread: the exact sign-flip p-value
        assert result.p == (1.0 if diffs[0] == 0 else 2 / 2 ** len(diffs))
    assert result.p_adjusted == result.p  # one comparison: Holm changes nothing
    assert result.verdict == verdict_word(result.diff_mean, result.p_adjusted)


def test_verdict_words():
    assert verdict_word(+1.0, 0.01) == "better"
    assert verdict_word(-1.0, 0.01) == "worse"
    assert verdict_word(+5.0, 0.2) == "no detectable difference"
    assert verdict_word(0.0, 0.0) == "no detectable difference"
    assert verdict_word(3.0, None) == "1 seed: no test"


def test_a_tiny_margin_over_many_configs_is_not_a_win():
    # The sweep that was outlined as a win: +1 test example in 540 on each of 3 seeds, among 20 configs.
    baseline = [0.95, 0.96, 0.94]
    pairs = [([b + 1 / 540 for b in baseline], baseline)] + [(baseline, baseline)] * 19
    results = against_baseline(pairs)
    assert results[0].diff_mean == pytest.approx(100 / 540)
    assert results[0].verdict == "no detectable difference"  # 3 seeds cannot show it, let alone after Holm


def test_one_seed_has_no_test_and_diverged_counts_as_zero():
    (one,) = against_baseline([([0.9], [0.8])])
    assert (one.p, one.diff_ci_low, one.verdict) == (None, None, "1 seed: no test")
    (diverged,) = against_baseline([([math.nan, 0.5], [0.5, 0.5])])
    assert diverged.diff_mean == pytest.approx(-25.0)
    with pytest.raises(SteplrValueError, match="same seeds on both sides"):
        against_baseline([([0.5, 0.6], [0.5])])


@pytest.mark.parametrize(
    ("curve", "flagged"),
    [
        ([2.0, 1.5, 1.2, 1.0, 0.98], True),  # 2% fall in the last epoch
        ([2.0, 1.5, 1.2, 1.0, 0.995], False),  # 0.5%: converged enough
        ([1.0] * 20 + [0.98], True),  # the last 10% of 21 epochs reaches 3 epochs back: 2% over them
        ([1.2] * 17 + [1.0] * 3 + [0.98], True),  # ... and no further (the 1.2 at epoch 17 is outside)
    ],
)
def test_still_falling(curve, flagged):
    fall = still_falling([curve, curve])
    assert (fall is not None) == flagged
    if flagged:
        start = curve[-4 if len(curve) > 10 else -2]
        assert fall == pytest.approx((start - curve[-1]) / start)


def test_still_falling_skips_diverged_seeds():
    assert still_falling([[1.0, 0.5], [1.0, math.nan]]) == pytest.approx(0.5)
    assert still_falling([[math.nan, math.nan]]) is None


def test_one_example_more_on_every_seed_seen_through_float32_is_not_significant():
    # What a sweep measured: 173/180 vs 172/180 and 174/180 vs 173/180 twice, read back from float32 metrics.
    import numpy as np

    candidate = [float(np.float32(k / 180)) for k in (173, 174, 174)]
    baseline = [float(np.float32(k / 180)) for k in (172, 173, 173)]
    (result,) = against_baseline([(candidate, baseline)])
    assert result.p == 2 / 2**3 and result.verdict == "no detectable difference"
    assert result.diff_ci_low == result.diff_ci_high == pytest.approx(100 / 180, abs=1e-4)


def test_baseline_notes_tell_short_unstable_and_still_falling_apart():
    from steplr.experiments.paired import baseline_notes

    assert "ran a single epoch" in baseline_notes([[1.0], [1.1]])[0]
    exploding = [[2.0, 1e27, 1.0], [2.1, 1e26, 1.1]]  # blew up, then came back below the start
    assert still_falling(exploding) is None
    unstable = [[1.0, 5.0, 3.0], [1.0, 4.0, 2.0]]
    notes = baseline_notes(unstable)
    assert len(notes) == 1 and "unstable at this learning rate" in notes[0]
    falling = [[2.0, 1.5, 1.2, 1.0, 0.98]]
    assert "still fell by 2.0%" in baseline_notes(falling, "at lr 0.01 ")[0]
    assert "at lr 0.01" in baseline_notes(falling, "at lr 0.01 ")[0]
    assert baseline_notes([[2.0, 1.0, 0.999]]) == []


def test_reports_say_the_interval_is_unadjusted_while_the_verdict_is():
    from steplr.experiments.report import STATISTICS

    assert "unadjusted" in STATISTICS and "Holm" in STATISTICS
