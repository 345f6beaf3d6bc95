"""The grid sweep over any closed-form schedule kind: rows and paired statistics against the sequential trainer, the
default StepLR grid's files unchanged from before the grid became generic, and bad grids named before training."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from steplr.errors import SteplrValueError
from steplr.experiments import report
from steplr.experiments.compare import DEFAULT_VALIDATION, recipe_config
from steplr.experiments.grid import check_grid, grid_from_flags, grid_params, grid_plans, grid_sweep
from steplr.experiments.paired import against_baseline
from steplr.experiments.report import write_grid_outputs
from steplr.schedules.explain import explain, format_plan
from steplr.schedules.kinds import PolynomialDecay, StepDecay
from steplr.training.data import load_qwerty
from steplr.training.train import train

REPO = Path(__file__).resolve().parents[2]
BEFORE = "5bfabe4"  # the last commit whose grid swept StepLR's step_size x gamma only
QWERTY_SPE = 19  # batches (scheduler steps) per epoch of qwerty's training part once 1/6 is held out


@pytest.fixture(scope="module")
def polynomial_sweep():
    return grid_sweep(
        "qwerty",
        load_qwerty(),
        grid={"power": [1.0, 3.0], "total": ["2ep", "4ep"]},
        seeds=[0, 1],
        overrides={"epochs": 4},
        schedule="polynomial",
    )


def test_a_polynomial_grid_rows_follow_the_registry_order(polynomial_sweep):
    result = polynomial_sweep
    assert result.schedule == "polynomial" and list(result.grid) == ["total", "power"]  # the registry's order
    assert result.columns[:3] == ("total", "power", "lr") and "step_size" not in result.columns
    assert len(result.rows) == 2 * 2 * 2 + 2
    swept = [(r["total"], r["power"], r["seed"]) for r in result.rows if r["schedule"] == "polynomial"]
    assert swept == [(t, p, s) for t in ("2ep", "4ep") for p in (1.0, 3.0) for s in (0, 1)]
    assert [(r["total"], r["power"], r["seed"]) for r in result.rows if r["schedule"] == "none"] == [
        ("", "", 0),
        ("", "", 1),
    ]
    summaries = result.summaries()
    assert [s.val_acc_mean for s in summaries] == sorted((s.val_acc_mean for s in summaries), reverse=True)
    assert {(s.params["total"], s.params["power"]) for s in summaries} == {
        (t, p) for t in ("2ep", "4ep") for p in (1.0, 3.0)
    }
    assert all(s.schedule == "polynomial" and s.step_size is None and s.gamma is None for s in summaries)


def test_a_polynomial_grid_equals_sequential_runs_and_their_paired_statistics(polynomial_sweep, tmp_path):
    result = polynomial_sweep
    data = load_qwerty()
    base = recipe_config("qwerty", epochs=4, validation=DEFAULT_VALIDATION)
    sequential = {}
    for seed in (0, 1):
        sequential["none", seed] = train(base.with_settings(schedule="none", seed=seed), data)
        for total in ("2ep", "4ep"):
            for power in (1.0, 3.0):
                config = base.with_settings(schedule="polynomial", total=total, power=power, seed=seed)
                history = train(config, data)
                steps = [
                    PolynomialDecay(int(total[0]) * QWERTY_SPE, power).lr(base.lr, t) for t in range(4 * QWERTY_SPE)
                ]
                assert history.iteration_lrs == pytest.approx(steps, rel=1e-12, abs=1e-15)
                sequential[(total, power), seed] = history
    for row in result.rows:
        key = "none" if row["schedule"] == "none" else (row["total"], row["power"])
        last = sequential[key, row["seed"]].epochs[-1]
        for name in ("val_acc", "test_acc", "test_loss", "train_loss"):
            assert row[name] == pytest.approx(getattr(last, name), abs=1e-6), (key, name)
    summaries = result.summaries()
    expected = against_baseline(
        [
            (
                [sequential[(s.params["total"], s.params["power"]), seed].epochs[-1].test_acc for seed in (0, 1)],
                [sequential["none", seed].epochs[-1].test_acc for seed in (0, 1)],
            )
            for s in summaries
        ]
    )
    for s, paired in zip(summaries, expected):
        cand = [sequential[(s.params["total"], s.params["power"]), seed].epochs[-1].test_acc for seed in (0, 1)]
        base_acc = [sequential["none", seed].epochs[-1].test_acc for seed in (0, 1)]
        assert s.test_acc_mean == pytest.approx(statistics.fmean(cand), abs=1e-6)
        assert s.baseline_test_acc_mean == pytest.approx(statistics.fmean(base_acc), abs=1e-6)
        assert s.diff_mean == pytest.approx(statistics.fmean((a - b) * 100 for a, b in zip(cand, base_acc)), abs=1e-4)
        assert s.wins == sum(a - b > 1e-9 for a, b in zip(cand, base_acc)) and s.seeds == 2
        assert s.p == pytest.approx(paired.p, rel=1e-3) and s.p_adjusted == pytest.approx(paired.p_adjusted, rel=1e-3)
        assert s.verdict == paired.verdict


def test_a_polynomial_grid_writes_its_own_columns_and_heatmap(polynomial_sweep, tmp_path):
    lines = write_grid_outputs(tmp_path, tmp_path, polynomial_sweep, QWERTY_SPE, [])
    assert {p.name for p in tmp_path.iterdir()} == {
        "results.csv",
        "summary.json",
        "heatmap.png",
        "best_lr.png",
        "report.html",
        "config.json",
    }
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert all(list(row)[:3] == ["total", "power", "lr"] for row in rows) and len(rows) == 4
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["schedule"] == "polynomial" and config["totals"] == ["2ep", "4ep"] and config["powers"] == [1, 3]
    assert lines[0] == "qwerty: 4 configs x 2 seeds (best five on validation)"
    assert lines[1].split()[:3] == ["total", "power", "lr"]
    assert "- 4 polynomial configs against a constant LR" in "\n".join(lines)
    best = polynomial_sweep.summaries()[0]
    label = f"total {best.params['total']}, power {best.params['power']:g}, lr 0.01"
    schedule = PolynomialDecay(int(best.params["total"][0]) * QWERTY_SPE, best.params["power"])
    assert (
        format_plan(f"chosen on validation: {label}", explain(schedule, 0.01, 4, QWERTY_SPE))
        == lines[-2 - len(format_plan("", explain(schedule, 0.01, 4, QWERTY_SPE))) : -2]
    )


@pytest.mark.parametrize(
    ("grid", "axes"),
    [
        ({"step_size": ["1ep", "2ep"], "gamma": [0.5]}, (["step_size", "gamma"], {})),
        ({"gamma": [0.5, 0.9]}, (["gamma"], {})),
        ({"total": ["2ep", "4ep"], "power": [1.0, 2.0], "end_lr": [0.0]}, (["total", "power"], {"end_lr": 0.0})),
        ({"total": ["2ep"], "power": [1.0, 2.0], "end_lr": [0.0]}, (["power"], {"total": "2ep", "end_lr": 0.0})),
        ({"total": ["2ep", "4ep"], "power": [1.0, 2.0], "end_lr": [0.0, 1e-4]}, None),
    ],
)
def test_heatmap_axes_are_the_parameters_that_vary(grid, axes):
    assert report._heatmap_axes(grid) == axes


def test_one_swept_parameter_draws_one_row_and_three_varying_draw_no_heatmap(tmp_path):
    data = load_qwerty()
    one = grid_sweep(
        "qwerty", data, grid={"gamma": [0.9, 0.99]}, seeds=[0], overrides={"epochs": 2}, schedule="exponential"
    )
    (tmp_path / "one").mkdir()
    write_grid_outputs(tmp_path / "one", tmp_path / "one", one, QWERTY_SPE, [])
    assert (tmp_path / "one" / "heatmap.png").exists()
    assert list(json.loads((tmp_path / "one" / "summary.json").read_text())["rows"][0])[:2] == ["gamma", "lr"]
    three = grid_sweep(
        "qwerty",
        data,
        grid={"total": ["1ep", "2ep"], "power": [1.0, 2.0], "end_lr": [0.0, 1e-4]},
        seeds=[0],
        overrides={"epochs": 2},
        schedule="polynomial",
    )
    (tmp_path / "three").mkdir()
    lines = write_grid_outputs(tmp_path / "three", tmp_path / "three", three, QWERTY_SPE, [])
    assert not (tmp_path / "three" / "heatmap.png").exists() and len(three.summaries()) == 8
    assert (
        "3 parameters vary (total, power, end_lr), so there is no heatmap"
        in (tmp_path / "three" / "report.html").read_text()
    )
    assert lines[1].split()[:4] == ["total", "power", "end_lr", "lr"]


def test_a_grid_lists_its_parameters_in_the_registry_order():
    data = load_qwerty()
    new = grid_sweep(
        "qwerty", data, grid={"gamma": [0.5], "step_size": ["2ep", "3ep"]}, seeds=[0], overrides={"epochs": 3}
    )
    assert list(new.grid) == ["step_size", "gamma"] and new.schedule == "step"
    assert [r["step_size"] for r in new.rows] == ["2ep", "3ep", ""]


def test_grid_plans_label_and_explain_every_config():
    base = recipe_config("qwerty", epochs=6)
    plans = grid_plans(base, "step", {"step_size": ["1ep", "5ep"], "gamma": [0.5]}, [0.01, 0.1], QWERTY_SPE)
    assert [label for label, _ in plans] == [
        "step 1ep, gamma 0.5, lr 0.01",
        "step 1ep, gamma 0.5, lr 0.1",
        "step 5ep, gamma 0.5, lr 0.01",
        "step 5ep, gamma 0.5, lr 0.1",
    ]
    assert plans[2][1] == explain(StepDecay("5ep", 0.5), 0.01, 6, QWERTY_SPE)
    ((label, plan),) = grid_plans(base, "polynomial", {"power": [2.0]}, [0.01], QWERTY_SPE)
    assert label == "power 2, lr 0.01" and plan == explain(PolynomialDecay(6 * QWERTY_SPE, 2.0), 0.01, 6, QWERTY_SPE)


@pytest.mark.parametrize(
    ("schedule", "grid", "message"),
    [
        (
            "polynomial",
            {"powr": [1.0]},
            "schedule 'polynomial' has no parameter 'powr' to sweep (it reads total, power, end_lr)",
        ),
        ("polynomial", {"power": [1.0, -1.0]}, "power must be a finite number > 0, got -1.0"),
        ("polynomial", {"total": ["2ep", "0ep"]}, "total must be positive, got '0ep'"),
        ("polynomial", {"power": []}, "powers must list at least one value"),
        ("polynomial", {"power": [2.0, 2.0]}, "powers lists a value twice: [2.0, 2.0]"),
        (
            "polynomial",
            {},
            "the grid of schedule 'polynomial' names no parameter to sweep (it reads total, power, end_lr)",
        ),
        ("cosine", {"eta_min": [-1.0]}, "eta_min"),
        ("step", {"gamma": [0.5]}, None),  # the recipe's step_size: valid
        ("multistep", {"gamma": [0.5]}, "schedule 'multistep' needs milestones"),
        ("plateau", {"gamma": [0.5]}, "schedule 'plateau' reacts to the loss and has no closed form"),
        (
            "none",
            {},
            "schedule 'none' has no parameter to sweep; expected one of step, multistep, exponential, "
            "cosine, polynomial",
        ),
        ("stepp", {"gamma": [0.5]}, "unknown schedule 'stepp'"),
    ],
)
def test_bad_grids_are_named_before_any_training(schedule, grid, message):
    if message is None:
        assert check_grid(schedule, grid) == grid
        return
    with pytest.raises(SteplrValueError) as error:
        grid_sweep("qwerty", None, grid=grid, seeds=[0], schedule=schedule)  # no data: it must not get that far
    assert message in str(error.value)


def test_seeds_and_lrs_are_checked_too():
    with pytest.raises(SteplrValueError, match="seeds must list at least one value"):
        grid_sweep("qwerty", None, grid={"power": [1.0]}, seeds=[], schedule="polynomial")
    with pytest.raises(SteplrValueError, match="learning rates lists a value twice"):
        grid_sweep("qwerty", None, grid={"power": [1.0]}, seeds=[0], lrs=[0.1, 0.1], schedule="polynomial")
    with pytest.raises(SteplrValueError, match=r"lr must be a finite number > 0, got -0\.1"):
        grid_sweep("qwerty", None, grid={"power": [1.0]}, seeds=[0], lrs=[-0.1], schedule="polynomial")


def test_grid_from_flags_names_flags_and_reads_a_list_of_times_as_one_value():
    assert grid_from_flags("polynomial", {"power": [1.0, 2.0], "total": None, "end_lr": None}) == {"power": [1.0, 2.0]}
    assert grid_from_flags("multistep", {"milestones": ["2ep", "3ep"], "gamma": [0.1, 0.5]}) == {
        "milestones": [("2ep", "3ep")],
        "gamma": [0.1, 0.5],
    }
    with pytest.raises(SteplrValueError, match=r"--gamma lists a value twice: 0\.5,0\.5"):
        grid_from_flags("step", {"step_size": ["1ep"], "gamma": [0.5, 0.5]})
    with pytest.raises(
        SteplrValueError,
        match=r"--power does not apply to schedule 'step' \(it reads --step-size, "
        r"--gamma\)",
    ):
        grid_from_flags("step", {"power": [1.0]})
    with pytest.raises(
        SteplrValueError,
        match=r"names no parameter to sweep \(give one or more of --total, --power, "
        r"--end-lr\)",
    ):
        grid_from_flags("polynomial", {"power": None})
    assert [p.name for p in grid_params("cosine")] == ["t_max", "eta_min"]


def _step_grid_script(out: Path) -> str:
    return textwrap.dedent(f"""
        from pathlib import Path
        from steplr.experiments.grid import grid_sweep
        from steplr.experiments.report import write_grid_outputs
        from steplr.training.data import load_qwerty
        out = Path({str(out)!r})
        settings = {{"epochs": 6, "validation": 1 / 6}}
        for name, (sizes, gammas, seeds), lrs in (("a", (["1ep", "5ep"], [0.5, 0.9], [0, 1]), None),
                                                  ("b", (["2ep", "5ep"], [0.5], [0]), [0.01, 0.05])):
            grid = {{"step_size": sizes, "gamma": gammas}}
            try:
                result = grid_sweep("qwerty", load_qwerty(), grid=grid, seeds=seeds, lrs=lrs, overrides=settings)
            except TypeError:  # the package before the generic grid took the lists by position
                result = grid_sweep("qwerty", load_qwerty(), sizes, gammas, seeds, lrs, settings)
            (out / name).mkdir(parents=True)
            lines = write_grid_outputs(out / name, Path("OUT"), result, {QWERTY_SPE}, ["a plan warning"])
            (out / name / "lines.txt").write_text("\\n".join(lines))
    """)


def test_the_step_grid_writes_what_it_wrote_before_it_became_generic(tmp_path):
    """The same sweep through the package as of BEFORE (from git) and as now: every file byte for byte."""
    if (
        shutil.which("git") is None
        or subprocess.run(
            ["git", "-C", str(REPO), "cat-file", "-e", f"{BEFORE}^{{commit}}"], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip(f"git history with {BEFORE} is not available")
    old_src = tmp_path / "old"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE, "src/steplr"], capture_output=True, check=True
    ).stdout
    old_src.mkdir()
    subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
    for name, path in (("before", old_src / "src"), ("now", REPO / "src")):
        env = {**os.environ, "PYTHONPATH": str(path), "MPLBACKEND": "Agg"}
        subprocess.run([sys.executable, "-c", _step_grid_script(tmp_path / name)], env=env, check=True, cwd=tmp_path)
    for case in ("a", "b"):
        before, now = tmp_path / "before" / case, tmp_path / "now" / case
        names = sorted(p.name for p in before.iterdir())
        assert names == sorted(p.name for p in now.iterdir())
        assert names == [
            "best_lr.png",
            "config.json",
            "heatmap.png",
            "lines.txt",
            "report.html",
            "results.csv",
            "summary.json",
        ]
        for file in names:
            if file == "config.json":  # later fields, at their defaults, are the one difference allowed
                now_config = _without(json.loads((now / file).read_text()), _LATER_FIELDS)
                assert now_config == json.loads((before / file).read_text()), case
                continue
            if file == "report.html":  # the same fields in the settings the report prints
                later = "|".join(_LATER_FIELDS)
                default = r"(?:0\.0|false|&quot;cross_entropy&quot;)"
                text = re.sub(rf",\n\s*&quot;(?:{later})&quot;: {default}", "", (now / file).read_text())
                assert text == (before / file).read_text(), case
                continue
            assert (now / file).read_bytes() == (before / file).read_bytes(), (case, file)


# TrainConfig fields added after BEFORE, with the defaults that leave a run as it was.
_LATER_FIELDS = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "loss": "cross_entropy"}


def _without(value, defaults):
    """``value`` (parsed JSON) without the keys of ``defaults`` that hold their default value, at any depth."""
    if isinstance(value, dict):
        return {k: _without(v, defaults) for k, v in value.items() if not (k in defaults and v == defaults[k])}
    if isinstance(value, list):
        return [_without(v, defaults) for v in value]
    return value
