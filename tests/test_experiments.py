"""Recipes and paired comparisons."""

from __future__ import annotations

import statistics

import pytest
from scipy import stats

from steplr.data import load_qwerty
from steplr.experiments import compare, recipe_config, schedule_config


@pytest.fixture(scope="module")
def comparison():
    return compare("qwerty", load_qwerty(), ["none", "step", "cosine"], [0, 1, 2], {"epochs": 7})


def test_recipes_carry_the_notes_settings():
    qwerty = recipe_config("qwerty")
    assert (qwerty.optimizer, qwerty.lr, qwerty.batch_size, qwerty.epochs) == ("sgd", 0.01, 32, 20)
    assert (qwerty.schedule, qwerty.step_size, qwerty.gamma, qwerty.interval) == ("step", "5ep", 0.5, "iteration")
    mnist = recipe_config("mnist")
    assert (mnist.model, mnist.optimizer, mnist.lr, mnist.batch_size, mnist.epochs) == ("linear", "adam", 1e-3, 64, 5)
    assert (mnist.step_size, mnist.gamma, mnist.interval) == ("2ep", 0.1, "epoch")
    assert recipe_config("qwerty", gamma=0.9, lr=None).gamma == 0.9
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
    for name in ("step", "cosine"):
        acc = [h.epochs[-1].test_acc for h in comparison.runs[name]]
        row = rows[name]
        assert row.test_acc_mean == statistics.fmean(acc)
        assert row.test_acc_sd == statistics.stdev(acc)
        assert row.wins == sum(a > b for a, b in zip(acc, base))
        assert row.ties == sum(a == b for a, b in zip(acc, base))
        if len({a - b for a, b in zip(acc, base)}) > 1:
            assert row.p_value == pytest.approx(stats.ttest_rel(acc, base).pvalue)
    assert rows["none"].wins is None and rows["none"].p_value is None


def test_every_schedule_gets_a_fair_default():
    base = recipe_config("digits")
    assert schedule_config(base, "multistep").milestones == ("2ep", "3ep")
    assert schedule_config(base, "cosine").t_max == "5ep"
    assert schedule_config(base, "exponential").gamma == pytest.approx(0.01 ** (1 / 5))
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        schedule_config(base, "linear")


def test_verdicts_say_which_way_and_how_sure(comparison):
    from steplr.report import verdicts

    rows = comparison.summary()
    lines = verdicts(rows, 3)
    assert len(lines) == 2
    step = next(r for r in rows if r.schedule == "step")
    side = "above" if step.mean_diff > 0 else "below"
    assert lines[0].startswith(f"step ends {side} a constant LR by {abs(step.mean_diff) * 100:.2f} points")
    assert f"better in {step.wins}," in lines[0]
