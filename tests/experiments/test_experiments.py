"""Recipes and paired comparisons."""

from __future__ import annotations

import statistics

import pytest
from scipy import stats

from steplr.experiments.compare import compare, recipe_config, schedule_config
from steplr.training.data import load_qwerty


@pytest.fixture(scope="module")
def comparison():
    return compare("qwerty", load_qwerty(), ["none", "step", "cosine"], [0, 1, 2], {"epochs": 7})


def test_recipes_carry_the_notes_settings():
    qwerty = recipe_config("qwerty")
    assert (qwerty.optimizer, qwerty.lr, qwerty.batch_size, qwerty.epochs) == ("sgd", 0.01, 32, 20)
    assert (qwerty.schedule.kind, dict(qwerty.schedule.params), qwerty.interval) == (
        "step",
        {"step_size": "5ep", "gamma": 0.5},
        "iteration",
    )
    mnist = recipe_config("mnist")
    assert (mnist.model, mnist.optimizer, mnist.lr, mnist.batch_size, mnist.epochs) == ("linear", "adam", 1e-3, 64, 5)
    assert (dict(mnist.schedule.params), mnist.interval) == ({"step_size": "2ep", "gamma": 0.1}, "epoch")
    assert recipe_config("qwerty", gamma=0.9, lr=None).schedule.params["gamma"] == 0.9
    with pytest.raises(ValueError, match="unknown setting 'decay'"):
        recipe_config("qwerty", decay=3)


def test_runs_are_paired_over_seeds(comparison):
    # StepLR decays after 5 epochs of batches: before that, "step" and "none" must train identically per seed.
    for none, step in zip(comparison.runs["none"], comparison.runs["step"]):
        assert none.epochs[:5] == step.epochs[:5]
        assert none.epochs[5:] != step.epochs[5:]
    assert comparison.runs["none"][0].epochs != comparison.runs["none"][1].epochs


def test_summary_follows_its_definitions(comparison):
    rows = {row.schedule: row for row in comparison.summary()}
    base = [h.epochs[-1].test_acc for h in comparison.runs["none"]]
    raw_p = []
    for name in ("step", "cosine"):
        acc = [h.epochs[-1].test_acc for h in comparison.runs[name]]
        row = rows[name]
        assert row.test_acc_mean == statistics.fmean(acc)
        assert row.test_acc_sd == statistics.stdev(acc)
        assert row.val_acc_mean == statistics.fmean(h.epochs[-1].val_acc for h in comparison.runs[name])
        assert row.wins == sum(a > b for a, b in zip(acc, base))
        assert row.ties == sum(a == b for a, b in zip(acc, base))
        assert row.diff_mean == pytest.approx(100 * statistics.fmean(a - b for a, b in zip(acc, base)))
        if len({a - b for a, b in zip(acc, base)}) > 1:
            result = stats.ttest_rel(acc, base)
            assert row.p == pytest.approx(result.pvalue)
            interval = result.confidence_interval(0.95)
            assert (row.diff_ci_low, row.diff_ci_high) == pytest.approx((100 * interval.low, 100 * interval.high))
        raw_p.append(row.p)
    # Holm over the two schedules compared: the smaller p doubled, the larger kept (but never below the first).
    low, high = sorted(raw_p)
    adjusted = sorted([rows["step"].p_adjusted, rows["cosine"].p_adjusted])
    assert adjusted == pytest.approx([min(1, 2 * low), max(min(1, 2 * low), high)])
    for name in ("step", "cosine"):
        row = rows[name]
        expected = ("better" if row.diff_mean > 0 else "worse") if row.p_adjusted < 0.05 else "no detectable difference"
        assert row.verdict == expected
    assert rows["none"].verdict == "baseline" and rows["none"].p is None


def test_a_validation_split_is_held_out_and_the_test_set_untouched(comparison):
    assert comparison.base.validation == pytest.approx(1 / 6)
    history = comparison.runs["none"][0]
    assert all(0 <= e.val_acc <= 1 and 0 <= e.test_acc <= 1 for e in history.epochs)
    # 720 qwerty training examples: 120 held out, 600 trained on in batches of 32 (19 per epoch).
    assert len(history.iteration_lrs) == 7 * 19


def test_the_baseline_is_always_trained():
    result = compare("qwerty", load_qwerty(), ["step"], [0], {"epochs": 2})
    assert list(result.runs) == ["none", "step"]
    rows = result.summary()
    assert rows[1].verdict == "1 seed: no test" and rows[1].p is None
    assert any("1 seed: no test" in note for note in result.notes())


def test_diverged_seeds_are_counted_not_a_crash():
    result = compare("qwerty", load_qwerty(), ["none", "step"], [0, 1, 2], {"epochs": 3, "lr": 1e6, "gamma": 0.5})
    rows = {row.schedule: row for row in result.summary()}
    assert rows["none"].diverged >= 1  # lr 1e6 blows up the 2-8-3 net
    assert all(1 <= epoch <= 3 for epoch in rows["none"].diverged_at)
    assert rows["step"].verdict in ("better", "worse", "no detectable difference")
    assert any("none diverged in" in note and "at epoch" in note for note in result.notes())


def test_notes_flag_a_short_run_and_a_plateau_that_never_fired():
    result = compare("qwerty", load_qwerty(), ["plateau"], [0, 1], {"epochs": 3})
    notes = " ".join(result.notes())
    assert "may be too short for decay to pay off" in notes  # qwerty's loss still falls steeply after 3 epochs
    assert "plateau never reduced the LR" in notes


def test_every_schedule_gets_a_fair_default():
    base = recipe_config("digits")
    assert schedule_config(base, "multistep").schedule.params["milestones"] == ("2ep", "3ep")
    cosine = schedule_config(base, "cosine")
    assert cosine.schedule.params["t_max"] is None and cosine.build_schedule(1).params()["t_max"] == 5  # whole run
    assert schedule_config(base, "exponential").schedule.params["gamma"] == pytest.approx(0.01 ** (1 / 5))
    with pytest.raises(ValueError, match="unknown schedule 'lineal'"):
        schedule_config(base, "lineal")


def test_the_users_settings_win_over_fair_defaults():
    base = recipe_config("digits")
    given = {"milestones": ("1ep", "4ep"), "gamma": 0.3, "plateau_patience": 0}
    assert schedule_config(base, "multistep", given).schedule.params["milestones"] == ("1ep", "4ep")
    assert schedule_config(base, "exponential", given).schedule.params["gamma"] == 0.3
    plateau = schedule_config(base, "plateau", given)
    assert plateau.plateau() == (0.3, 0)
    # a setting named without a value keeps base's: the recipe's gamma, not exponential's fair one
    assert schedule_config(recipe_config("digits", gamma=0.3), "exponential", {"gamma"}).schedule.params["gamma"] == 0.3


def test_verdict_sentences_use_only_the_verdict_word(comparison):
    from steplr.experiments.report import verdicts

    rows = comparison.summary()
    lines = verdicts(rows)
    assert len(lines) == 2
    for row, line in zip(rows[1:], lines):
        relation = {"better": "better than", "worse": "worse than"}.get(row.verdict, "no detectable difference from")
        assert line.startswith(f"{row.schedule}: {relation} a constant LR ({row.diff_mean:+.2f} points")
        assert "after Holm's adjustment for 2 comparisons" in line
        assert "beat" not in line
