"""``steplr sweep RECIPE --engine optuna`` end to end through ``steplr.cli.main``: what you ask is what runs, trials
chosen on validation and reported on test, verdicts against a constant LR, one way of counting trials.

Small settings (Qwerty, a few trials of a few epochs) keep each command to a few seconds.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from steplr.cli import main
from steplr.paired import VERDICTS

ROW_FIELDS = {"trial", "step_size", "gamma", "lr", "val_acc_mean", "test_acc_mean", "test_acc_sd",
              "baseline_test_acc_mean", "diff_mean", "diff_ci_low", "diff_ci_high", "p", "p_adjusted", "verdict",
              "diverged"}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def optuna_sweep(out: Path, *flags: str) -> tuple[int, str, str]:
    return run("sweep", "qwerty", "--engine", "optuna", "--out", str(out), *flags)


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def trials(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def report_text(out: Path) -> str:
    """report.html as plain text: tags and embedded images dropped, entities decoded."""
    text = (out / "report.html").read_text()
    text = re.sub(r"<(style|script)>.*?</\1>", " ", text, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One small search with lists for step_size and gamma (a bare 1 and 2 are epochs on the command line)."""
    out = tmp_path_factory.mktemp("optuna") / "run"
    code, text, err = optuna_sweep(out, "--trials", "10", "--step-size", "1,2", "--gamma", "0.3,0.9", "--epochs",
                                   "4", "--seeds", "3")
    assert code == 0, err
    return out, text


# --------------------------------------------------------------------------------------------- what runs


def test_lists_are_categorical_choices(searched):
    out, _ = searched
    rows = trials(out)
    assert len(rows) == 10
    assert {row["step_size"] for row in rows} <= {"1ep", "2ep"}
    assert {float(row["gamma"]) for row in rows} <= {0.3, 0.9}
    assert {float(row["lr"]) for row in rows} == {0.01}  # no --lr: the recipe's
    for row in summary(out)["rows"]:
        assert row["step_size"] in ("1ep", "2ep") and row["gamma"] in (0.3, 0.9) and row["lr"] == 0.01


def test_a_resumed_study_with_another_space_is_refused(searched, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(searched[0], out)
    code, text, err = optuna_sweep(out, "--trials", "12", "--step-size", "1:5", "--gamma", "0.3,0.9", "--epochs",
                                   "4")
    assert code == 2 and text == ""
    assert err == ("steplr: error: study 'steplr-qwerty' was created with step size '1ep,2ep', not '1ep:5ep'; use "
                   "the same settings to continue it, or another study name\n")
    assert len(trials(out)) == 10


# --------------------------------------------------------------------------------------------- the verdict


def test_summary_has_a_row_per_config_chosen_on_validation(searched):
    out, _ = searched
    data = summary(out)
    assert (data["chosen_on"], data["reported_on"]) == ("validation accuracy", "test set")
    assert data["seeds"] == [0, 1, 2] and data["epochs"] == 4
    rows = data["rows"]
    complete = [t for t in trials(out) if t["state"] == "COMPLETE"]
    # The rows: the best validation accuracy of each distinct config, best first (never re-sorted on test), at most 5.
    expected, seen = [], set()
    for t in sorted(complete, key=lambda t: (-float(t["val_acc"]), int(t["number"]))):
        config = (t["step_size"], float(t["gamma"]), float(t["lr"]))
        if config not in seen:
            seen.add(config)
            expected.append(int(t["number"]))
    assert [r["trial"] for r in rows] == expected[:5] and len(rows) >= 2
    complete_by_number = {int(t["number"]): float(t["val_acc"]) for t in complete}
    for row in rows:
        assert row["trial_val_acc"] == complete_by_number[row["trial"]]
        assert ROW_FIELDS <= set(row)
        for name in ("val_acc_mean", "test_acc_mean", "baseline_test_acc_mean"):
            assert 0 <= row[name] <= 1
        assert row["diff_mean"] == pytest.approx((row["test_acc_mean"] - row["baseline_test_acc_mean"]) * 100)
        assert row["diff_ci_low"] <= row["diff_mean"] <= row["diff_ci_high"]
        assert 0 <= row["p"] <= row["p_adjusted"] <= 1
        assert row["verdict"] in VERDICTS[:3] and row["diverged"] == 0


def test_report_says_what_chose_and_what_reports_and_gives_the_verdict_words(searched):
    out, _ = searched
    text = report_text(out)
    assert "chosen on validation accuracy; reported on the test set" in text.lower()
    for row in summary(out)["rows"]:
        assert re.search(rf"\b{row['trial']}\s+{row['step_size']}\s.*?{re.escape(row['verdict'])}\s+0/3", text)
    assert "beat" not in text.lower()
    assert (out / "best_lr.png").stat().st_size > 10_000


def test_console_shows_the_columns_and_the_best_configs_verdict(searched):
    out, text = searched
    lines = text.splitlines()
    assert lines[1].startswith("best ") and "chosen on validation accuracy; reported on the test set" in lines[1]
    for column in ("val acc", "test acc", "constant LR", "vs constant LR (95% CI)", "p (Holm)", "verdict",
                   "diverged"):
        assert column in lines[2]
    best = summary(out)["rows"][0]
    sentence = next(line for line in lines if line.startswith("- best on validation:"))
    assert sentence.startswith(f"- best on validation: trial {best['trial']} (step_size {best['step_size']}")
    word = {"better": "better than", "worse": "worse than"}.get(best["verdict"], best["verdict"])
    assert word in sentence and "beat" not in text
    assert f"winner: trial {best['trial']}" in text
    assert lines[-2:] == [f"summary: {out / 'summary.json'}", f"report: {out / 'report.html'}"]


def test_console_and_report_count_trials_the_same_way(searched):
    out, text = searched
    first = text.splitlines()[0]
    assert first.startswith(f"study 'steplr-qwerty' on {out / 'optuna-journal.log'}: ")
    assert first in report_text(out)
    rows = trials(out)  # counted again here from the trials' states and notes
    complete = sum(r["state"] == "COMPLETE" for r in rows)
    diverged = sum(r["note"] == "diverged" for r in rows)
    pruned = sum(r["state"] == "PRUNED" for r in rows) - diverged
    failed = sum(r["state"] == "FAIL" and r["note"] != "surplus" for r in rows)
    assert first.endswith(f": {complete + pruned + diverged} finished trials ({complete} complete, {pruned} pruned, "
                          f"{diverged} diverged), {failed} failed")
    assert summary(out)["trials"] == {"complete": complete, "pruned": pruned, "diverged": diverged,
                                      "failed": failed, "surplus": 0, "unfinished": 0, "finished": 10}


def test_one_seed_has_no_test(tmp_path):
    code, text, err = optuna_sweep(tmp_path / "o", "--trials", "2", "--epochs", "2", "--seeds", "1")
    assert code == 0, err
    rows = summary(tmp_path / "o")["rows"]
    assert rows and {row["verdict"] for row in rows} == {"1 seed: no test"}
    assert all(row["p"] is None and row["p_adjusted"] is None for row in rows)
    assert "1 seed: no test" in text and "1 seed: no test" in report_text(tmp_path / "o")


def test_a_diverged_constant_lr_is_part_of_the_verdict(tmp_path):
    """At lr 10 the constant LR diverges on every seed; a x0.01 step after one epoch does not."""
    out = tmp_path / "o"
    code, text, err = optuna_sweep(out, "--trials", "1", "--lr", "10", "--step-size", "1", "--gamma", "0.01",
                                   "--epochs", "4", "--seeds", "3")
    assert code == 0, err
    (row,) = summary(out)["rows"]
    assert (row["diverged"], row["baseline_diverged"], row["baseline_test_acc_mean"]) == (0, 3, 0.0)
    assert row["verdict"] == "better"
    note = "the constant LR at lr 10 diverged on 3 of 3 seeds (counted as 0 accuracy)"
    assert f"note: {note}" in text and note in report_text(out)


# --------------------------------------------------------------------------------------------- workers, rebuilds


def test_two_local_workers_share_the_study_with_the_flags_as_typed(tmp_path, capfd):
    out = tmp_path / "o"
    code, text, err = optuna_sweep(out, "--trials", "8", "--workers", "2", "--step-size", "1,3", "--epochs", "3",
                                   "--seeds", "2")
    assert code == 0, err
    helper_said = err + capfd.readouterr().err  # the helper's stderr, and the warning if a helper fails
    assert "worker process" not in helper_said and "Traceback" not in helper_said, helper_said
    rows = trials(out)
    finished = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]
    assert len(finished) == 8 and len({r["number"] for r in rows}) == len(rows)
    assert {r["step_size"] for r in finished} <= {"1ep", "3ep"}
    assert all(r["note"] == "surplus" for r in rows if r["state"] == "FAIL")


@pytest.mark.parametrize(
    "flags",
    [
        ["--step-size", "1,3", "--gamma", "0.5:0.9", "--lr", "0.01,0.1", "--validation", "0.25", "--epochs", "3"],
        ["--step-size", "2ep:9ep", "--data-dir", "somewhere", "--no-download"],
        [],
    ],
)
def test_helpers_are_started_with_the_same_search(flags, tmp_path):
    from steplr.cli import build_parser
    from steplr.cli_optuna import _helper_command, _settings

    argv = ["sweep", "qwerty", "--engine", "optuna", "--trials", "7", "--workers", "3", "--out", str(tmp_path),
            *flags]
    args = build_parser().parse_args(argv)
    command = _helper_command(args, _settings(args))
    assert command[1:3] == ["-m", "steplr.cli_optuna"]
    mine, helper = _settings(args), _settings(build_parser().parse_args(command[3:]))
    assert (mine.workers, helper.workers) == (3, 1)  # each helper is one worker
    assert dataclasses.replace(helper, workers=3) == mine


def test_report_rebuilds_from_the_study_alone(searched, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(searched[0], out)
    before = summary(out)
    for name in ("report.html", "summary.json", "trials.csv", "best_lr.png"):
        (out / name).unlink()
    code, text, err = optuna_sweep(out, "--report")
    assert code == 0, err
    after = summary(out)
    assert after["rows"] == before["rows"] and after["trials"] == before["trials"]
    assert text.splitlines()[0] in report_text(out)
    code, text, err = optuna_sweep(out, "--report", "--gamma", "0.5")
    assert (code, text) == (2, "")
    assert err == "steplr: error: --report rebuilds the report from the study's own settings: drop --gamma\n"


# --------------------------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--step-size", "1,1"], "--step-size '1,1': a value is repeated"),
        (["--step-size", "1ep:5ep,8ep"], "--step-size '1ep:5ep,8ep': write a list (a,b) or a range (LOW:HIGH), not both"),
        (["--step-size", "100it:900"], "--step-size '100it:900': both ends must use the same unit"),
        (["--gamma", "0:0.9"], "--gamma '0:0.9': gamma must lie in (0, 1] (0 would zero the LR)"),
        (["--lr", "0.1,-1"], "--lr '0.1,-1': learning rates must be > 0, got '-1'"),
        (["--validation", "0"], "--validation must be a fraction in (0, 1) (trials are chosen on it), got 0.0"),
    ],
)
def test_bad_flags_are_one_line_and_touch_nothing(flags, message, tmp_path):
    code, text, err = optuna_sweep(tmp_path / "o", *flags)
    assert (code, text, err) == (2, "", f"steplr: error: {message}\n")
    assert not (tmp_path / "o").exists()


def test_storage_errors_are_one_line_and_hide_passwords(tmp_path):
    code, text, err = optuna_sweep(tmp_path / "o", "--trials", "2", "--storage",
                                   "postgresql://me:hunter2@127.0.0.1:1/db")
    assert code == 2 and text == "" and err.count("\n") == 1
    assert "hunter2" not in err and "postgresql://me:***@127.0.0.1:1/db" in err
    assert not (tmp_path / "o").exists()


def test_an_out_folder_of_something_else_needs_force(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, text, err = optuna_sweep(out, "--trials", "1", "--epochs", "2", "--seeds", "1")
    assert (code, text) == (2, "")
    assert err == (f"steplr: error: --out {out} holds files this command did not write (notes.txt): pass --force "
                   "to write into it, or choose another folder\n")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    code, _, err = optuna_sweep(out, "--trials", "1", "--epochs", "2", "--seeds", "1", "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").is_file()


def test_the_winners_plan_warnings_go_to_stderr_and_into_the_report(tmp_path, capfd):
    out = tmp_path / "o"
    code, text, err = optuna_sweep(out, "--trials", "2", "--step-size", "1it", "--gamma", "0.1", "--epochs", "3",
                                   "--seeds", "1")
    assert code == 0
    said = err + capfd.readouterr().err  # main's err, or the process's stderr
    warned = [line for line in said.splitlines() if line.startswith("steplr: warning: winner:")]
    assert warned and "the learning rate falls to" in warned[0]
    assert warned[0].removeprefix("steplr: warning: ") in report_text(out)
    assert "warning: the learning rate falls to" in text  # in the winner's plan on the console


def test_plans_of_a_listed_search_are_warned_about_before_it_starts(tmp_path):
    code, text, err = run("sweep", "qwerty", "--engine", "optuna", "--step-size", "1,50", "--gamma", "0.5",
                          "--trials", "2", "--epochs", "2", "--seeds", "1", "--out", str(tmp_path / "w"))
    assert code == 0, err
    first = err.splitlines()[0]
    assert first.startswith("steplr: warning: step 50ep, gamma 0.5: the learning rate never changes within the run")
    assert "step 1ep, gamma 0.5" not in err  # halving every epoch for 2 epochs is not flagged
