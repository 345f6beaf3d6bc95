"""``steplr sweep RECIPE --engine optuna`` end to end through ``steplr.cli.main.main``: what you ask is what runs,
trials chosen on validation and reported on test, verdicts against a constant LR, one way of counting trials.

Small settings (Qwerty, a few trials of a few epochs) keep each command to a few seconds.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import html
import inspect
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import SECRET_SHAPES
from steplr.cli.main import main
from steplr.experiments.paired import VERDICTS
from steplr.experiments.report import percent

TRIAL_TEST_INFO = (
    "The test accuracy of each trial (trials.csv, column test_acc_info) is shown for information; "
    "nothing was chosen or pruned on it."
)

ROW_FIELDS = {
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
}


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


def report_table(out: Path) -> tuple[list[str], list[list[str]]]:
    """report.html's summary table: its header cells and its rows of cells."""
    table = re.search(r'<table id="summary">(.*?)</table>', (out / "report.html").read_text(), flags=re.S)
    assert table is not None
    head = [html.unescape(c) for c in re.findall(r"<th>(.*?)</th>", table.group(1))]
    rows = [
        [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(1).partition("</thead>")[2])
    ]
    return head, rows


def console_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The console's table (columns are two or more spaces apart): header cells and rows of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("trial  "))
    end = next(i for i in range(start + 2, len(lines)) if not lines[i][:1].isdigit())
    split = [re.split(r" {2,}", line.strip()) for line in [lines[start], *lines[start + 2 : end]]]
    return split[0], split[1:]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One small search with lists for step_size and gamma (a bare 1 and 2 are epochs on the command line), its
    best configs retrained on 2 seeds (not the default 3: --report must find that out from the study)."""
    out = tmp_path_factory.mktemp("optuna") / "run"
    code, text, err = optuna_sweep(
        out, "--trials", "10", "--step-size", "1,2", "--gamma", "0.3,0.9", "--epochs", "4", "--seeds", "2"
    )
    assert code == 0, err
    return out, text, err


# --------------------------------------------------------------------------------------------- what runs


def test_lists_are_categorical_choices(searched):
    out, *_ = searched
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
    code, text, err = optuna_sweep(out, "--trials", "12", "--step-size", "1:5", "--gamma", "0.3,0.9", "--epochs", "4")
    assert code == 2 and text == ""
    assert err == (
        "steplr: error: study 'steplr-qwerty' was created with step size '1ep,2ep', not '1ep:5ep'; use "
        "the same settings to continue it, or another study name\n"
    )
    assert len(trials(out)) == 10


# --------------------------------------------------------------------------------------------- the verdict


def test_summary_has_a_row_per_config_chosen_on_validation(searched):
    out, *_ = searched
    data = summary(out)
    assert data["chosen_on"] == "search trial validation accuracy (trial_val_acc, one run per trial)"
    assert data["reported_on"] == "test set"
    assert data["seeds"] == [0, 1] and data["epochs"] == 4
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
        assert set(row) >= ROW_FIELDS
        assert list(row).index("trial_val_acc") < min(list(row).index(k) for k in ("val_acc_mean", "test_acc_mean"))
        for name in ("val_acc_mean", "test_acc_mean", "baseline_test_acc_mean"):
            assert 0 <= row[name] <= 1
        assert row["diff_mean"] == pytest.approx((row["test_acc_mean"] - row["baseline_test_acc_mean"]) * 100)
        assert row["diff_ci_low"] <= row["diff_mean"] <= row["diff_ci_high"]
        assert 0 <= row["p"] <= row["p_adjusted"] <= 1
        assert row["verdict"] in VERDICTS[:3] and row["diverged"] == 0


def test_report_says_what_chose_and_what_reports_and_gives_the_verdict_words(searched):
    out, *_ = searched
    text = report_text(out)
    assert (
        "chosen on validation: ranked by each search trial's own final validation accuracy (trial val acc, one "
        "run), then retrained on 2 seeds beside a constant LR at the same lr on the same seeds and reported on the "
        "test set"
    ) in text
    for row in summary(out)["rows"]:
        assert re.search(rf"\b{row['trial']}\s+{row['step_size']}\s.*?{re.escape(row['verdict'])}\s+0/2", text)
    assert "beat" not in text.lower() and "winner" not in text.lower()
    assert "The plan of the config chosen on validation" in text
    assert (out / "best_lr.png").stat().st_size > 10_000


def test_console_shows_the_columns_and_the_best_configs_verdict(searched):
    out, text, _ = searched
    lines = text.splitlines()
    assert lines[1].startswith("best ") and "chosen on validation: ranked by each search trial's own" in lines[1]
    best = summary(out)["rows"][0]
    sentence = next(line for line in lines if line.startswith("- chosen on validation:"))
    assert sentence.startswith(f"- chosen on validation: trial {best['trial']} (step_size {best['step_size']}")
    assert f"; trial val acc {percent(best['trial_val_acc'])})" in sentence
    word = {"better": "better than", "worse": "worse than"}.get(best["verdict"], best["verdict"])
    assert word in sentence and "beat" not in text and "winner" not in text.lower()
    assert f"chosen on validation: trial {best['trial']} (highest trial val acc), 4 epochs" in text  # its plan
    assert lines[-3:] == [
        f"trials: {out / 'trials.csv'} (test_acc_info: for information; nothing was chosen or pruned on it)",
        f"summary: {out / 'summary.json'}",
        f"report: {out / 'report.html'}",
    ]


@pytest.mark.parametrize("where", ["console", "report"])
def test_the_table_shows_the_trial_val_acc_the_configs_were_ranked_on(searched, where):
    """The rows are ranked on each search trial's own validation accuracy: that column is in the table, first of the
    accuracies, holds each trial's value, and falls down the table; the means over the retrained seeds are beside it
    under their own names."""
    out, text, _ = searched
    head, rows = console_table(text) if where == "console" else report_table(out)
    assert head == [
        "trial",
        "step_size",
        "gamma",
        "lr",
        "trial val acc",
        "val acc (2 seeds)",
        "test acc (2 seeds)",
        "constant LR test acc (2 seeds)",
        "vs constant LR (95% CI)",
        "p",
        "p (Holm)",
        "verdict",
        "diverged",
    ]
    data = summary(out)["rows"]
    assert [row[0] for row in rows] == [str(r["trial"]) for r in data]
    column = head.index("trial val acc")
    assert [row[column] for row in rows] == [percent(r["trial_val_acc"]) for r in data]
    assert [row[column + 1] for row in rows] == [percent(r["val_acc_mean"]) for r in data]
    ranked = [r["trial_val_acc"] for r in data]
    assert ranked == sorted(ranked, reverse=True)


def test_console_and_report_count_trials_the_same_way(searched):
    out, text, _ = searched
    first = text.splitlines()[0]
    assert first.startswith(f"study 'steplr-qwerty' on {out / 'optuna-journal.log'}: ")
    assert first in report_text(out)
    rows = trials(out)  # counted again here from the trials' states and notes
    complete = sum(r["state"] == "COMPLETE" for r in rows)
    diverged = sum(r["note"] == "diverged" for r in rows)
    pruned = sum(r["state"] == "PRUNED" for r in rows) - diverged
    failed = sum(r["state"] == "FAIL" and r["note"] != "surplus" for r in rows)
    assert first.endswith(
        f": {complete + pruned + diverged} finished trials ({complete} complete, {pruned} pruned, "
        f"{diverged} diverged), {failed} failed"
    )
    assert summary(out)["trials"] == {
        "complete": complete,
        "pruned": pruned,
        "diverged": diverged,
        "failed": failed,
        "surplus": 0,
        "unfinished": 0,
        "finished": 10,
    }


def test_one_seed_has_no_test(tmp_path):
    out = tmp_path / "o"
    code, text, err = optuna_sweep(out, "--trials", "2", "--epochs", "2", "--seeds", "1")
    assert code == 0, err
    rows = summary(out)["rows"]
    assert rows and {row["verdict"] for row in rows} == {"1 seed: no test"}
    assert all(row["p"] is None and row["p_adjusted"] is None and row["test_acc_sd"] is None for row in rows)
    assert "1 seed: no test" in text and "1 seed: no test" in report_text(out)
    # No sd exists with one seed: no "± 0.00"; the accuracy alone.
    for head, cells in (console_table(text), report_table(out)):
        assert "test acc (1 seed)" in head
        assert [row[head.index("test acc (1 seed)")] for row in cells] == [percent(r["test_acc_mean"]) for r in rows]
        assert not any("±" in cell for row in cells for cell in row)
    advice = "1 seed: no test: differences from a single seed are not evidence; use --seeds 5 or more"
    assert f"note: {advice}" in text and advice in report_text(out)


def test_a_diverged_constant_lr_is_part_of_the_verdict(tmp_path):
    """At lr 10 the constant LR diverges on every seed; a x0.01 step after one epoch does not."""
    out = tmp_path / "o"
    code, text, err = optuna_sweep(
        out, "--trials", "1", "--lr", "10", "--step-size", "1", "--gamma", "0.01", "--epochs", "4", "--seeds", "3"
    )
    assert code == 0, err
    (row,) = summary(out)["rows"]
    assert (row["diverged"], row["baseline_diverged"], row["baseline_test_acc_mean"]) == (0, 3, 0.0)
    assert row["verdict"] == "better"
    note = "the constant LR at lr 10 diverged on 3 of 3 seeds (counted as 0 accuracy)"
    assert f"note: {note}" in text and note in report_text(out)


# --------------------------------------------------------------------------------------------- workers, rebuilds


def test_two_local_workers_share_the_study_with_the_flags_as_typed(tmp_path, capfd):
    out = tmp_path / "o"
    code, _text, err = optuna_sweep(
        out, "--trials", "8", "--workers", "2", "--step-size", "1,3", "--epochs", "3", "--seeds", "2"
    )
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
    """The same settings reach a helper, the storage URL (and its password) through its stdin, not its argv."""
    from steplr.cli.main import build_parser
    from steplr.cli.tune import _helper_command, _helper_input, _helper_settings, _settings

    storage = "postgresql://me:hunter2@127.0.0.1:5432/db"
    argv = [
        "sweep",
        "qwerty",
        "--engine",
        "optuna",
        "--trials",
        "7",
        "--workers",
        "3",
        "--out",
        str(tmp_path),
        "--storage",
        storage,
        *flags,
    ]
    args = build_parser().parse_args(argv)
    command = _helper_command(args, _settings(args))
    assert command[1:3] == ["-m", "steplr.cli.tune"]
    assert not any("hunter2" in part or part == "--storage" for part in command)
    mine = _settings(args)
    helper, parent = _helper_settings(command[3:], _helper_input(mine, 4321))
    assert (mine.workers, helper.workers, parent) == (3, 1, 4321)  # each helper is one worker
    assert dataclasses.replace(helper, workers=3) == mine and helper.storage == storage


def test_report_rebuilds_from_the_study_alone(searched, tmp_path):
    """The search retrained on 2 seeds (not the default 3): --report finds that in the study and gives the same
    numbers; --seeds given with --report is used, and said."""
    out = tmp_path / "copy"
    shutil.copytree(searched[0], out)
    before = summary(out)
    for name in ("report.html", "summary.json", "trials.csv", "best_lr.png"):
        (out / name).unlink()
    code, text, err = optuna_sweep(out, "--report")
    assert code == 0, err
    same = {k: v for k, v in before.items() if k != "storage"}  # the copy's journal is elsewhere
    assert {k: v for k, v in summary(out).items() if k != "storage"} == same
    assert text.splitlines()[0] in report_text(out)
    said = "retraining on 2 seeds, as the search did (recorded in the study)"
    assert text.splitlines()[1] == said and said in report_text(out)
    assert text.splitlines()[2:-3] == searched[1].splitlines()[1:-3]  # the console says what the search said
    code, text, err = optuna_sweep(out, "--report", "--seeds", "3")
    assert code == 0, err
    said = (
        "retraining on 3 seeds, as --seeds asks: the search retrained on 2 seeds, so these numbers may differ "
        "from its report"
    )
    assert text.splitlines()[1] == said and said in report_text(out)
    assert summary(out)["seeds"] == [0, 1, 2] and "test acc (3 seeds)" in text
    code, text, err = optuna_sweep(out, "--report")  # the study still records the search's seeds
    assert code == 0, err
    assert {k: v for k, v in summary(out).items() if k != "storage"} == same
    code, text, err = optuna_sweep(out, "--report", "--gamma", "0.5")
    assert (code, text) == (2, "")
    assert err == "steplr: error: --report rebuilds the report from the study's own settings: drop --gamma\n"


# --------------------------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--step-size", "1,1"], "--step-size '1,1': a value is repeated"),
        (
            ["--step-size", "1ep:5ep,8ep"],
            "--step-size '1ep:5ep,8ep': write a list (a,b) or a range (LOW:HIGH), not both",
        ),
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
    code, text, err = optuna_sweep(
        tmp_path / "o", "--trials", "2", "--storage", "postgresql://me:hunter2@127.0.0.1:1/db"
    )
    assert code == 2 and text == "" and err.count("\n") == 1
    assert "hunter2" not in err and "postgresql://me:***@127.0.0.1:1/db" in err
    assert not (tmp_path / "o").exists()


def test_an_out_folder_of_something_else_needs_force(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, text, err = optuna_sweep(out, "--trials", "1", "--epochs", "2", "--seeds", "1")
    assert (code, text) == (2, "")
    assert err == (
        f"steplr: error: --out {out} holds files this command did not write (notes.txt): pass --force "
        "to write into it, or choose another folder\n"
    )
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    code, _, err = optuna_sweep(out, "--trials", "1", "--epochs", "2", "--seeds", "1", "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").is_file()


def test_the_chosen_configs_plan_warnings_go_to_stderr_and_into_the_report(tmp_path, capfd):
    out = tmp_path / "o"
    code, text, err = optuna_sweep(
        out, "--trials", "2", "--step-size", "1it", "--gamma", "0.1", "--epochs", "3", "--seeds", "1"
    )
    assert code == 0
    said = err + capfd.readouterr().err  # main's err, or the process's stderr
    warned = [line for line in said.splitlines() if line.startswith("steplr: warning: chosen on validation: trial ")]
    assert warned and "the learning rate falls to" in warned[0]
    assert warned[0].removeprefix("steplr: warning: ") in report_text(out)
    assert "warning: the learning rate falls to" in text  # in the chosen config's plan on the console
    assert "winner" not in (said + text + report_text(out)).lower()


def test_plans_of_a_listed_search_are_warned_about_before_it_starts(tmp_path):
    code, _text, err = run(
        "sweep",
        "qwerty",
        "--engine",
        "optuna",
        "--step-size",
        "1,50",
        "--gamma",
        "0.5",
        "--trials",
        "2",
        "--epochs",
        "2",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "w"),
    )
    assert code == 0, err
    first = err.splitlines()[0]
    assert first.startswith("steplr: warning: step 50ep, gamma 0.5: the learning rate never changes within the run")
    assert "step 1ep, gamma 0.5" not in err  # halving every epoch for 2 epochs is not flagged


# --------------------------------------------------------------------------------------------- nothing to choose


def test_a_search_whose_trials_all_diverged_says_nothing_can_be_chosen(tmp_path):
    """Every trial diverging is a result, not an error: exit 0, and every file and the console say so."""
    out = tmp_path / "d"
    code, text, err = optuna_sweep(out, "--trials", "3", "--epochs", "2", "--seeds", "2", "--lr", "1000:10000")
    assert code == 0, err
    nothing = (
        "no trial completed (3 diverged, 0 pruned, 0 failed): nothing can be chosen, and nothing was compared "
        "with a constant LR"
    )
    assert text.splitlines() == [
        f"study 'steplr-qwerty' on {out / 'optuna-journal.log'}: 3 finished trials (0 complete, 0 pruned, 3 "
        "diverged), 0 failed",
        nothing,
        "note: a diverged trial's loss became NaN or infinite: a smaller --lr (or lr range) may help",
        f"trials: {out / 'trials.csv'}",
        f"summary: {out / 'summary.json'}",
        f"report: {out / 'report.html'}",
    ]
    assert [(r["state"], r["note"], r["val_acc"], r["test_acc_info"]) for r in trials(out)] == [
        ("PRUNED", "diverged", "", "")
    ] * 3
    data = summary(out)
    assert (data["rows"], data["note"], data["seeds"]) == ([], nothing, [])
    assert data["trials"]["diverged"] == 3 and data["trials"]["finished"] == 3
    text = report_text(out)
    assert f"{nothing[0].upper()}{nothing[1:]}." in text and TRIAL_TEST_INFO in text
    assert 'id="summary"' not in (out / "report.html").read_text() and "plan" not in text.lower()
    assert not (out / "best_lr.png").exists()
    code, again, err = optuna_sweep(out, "--report")  # the rebuilt report says the same
    assert (code, again.splitlines()[1]) == (0, nothing), err


def test_a_study_without_trials_cannot_be_reported(tmp_path):
    from steplr.experiments.tune import open_study

    open_study("qwerty", "steplr-qwerty", None, tmp_path)
    code, text, err = optuna_sweep(tmp_path, "--report")
    assert (code, text) == (2, "")
    assert err == ("steplr: error: study 'steplr-qwerty' has no trials yet: run the search (without --report) first\n")


def test_the_test_accuracy_of_the_trials_is_labelled_as_information(searched):
    out, *_ = searched
    rows = trials(out)
    assert "test_acc" not in rows[0] and "test_acc_info" in rows[0]
    assert all((r["test_acc_info"] != "") == (r["state"] == "COMPLETE") for r in rows)
    assert TRIAL_TEST_INFO in report_text(out)


# --------------------------------------------------------------------------------------------- secrets, faults


@pytest.mark.parametrize(("text", "secrets"), SECRET_SHAPES)
def test_no_storage_string_shows_its_password(text, secrets, tmp_path):
    code, out, err = optuna_sweep(tmp_path / "o", "--trials", "1", "--epochs", "2", "--storage", text)
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith("steplr: error: "), err
    assert not any(secret in err for secret in secrets), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("port", "storage"), [("abc", "postgresql://u@127.0.0.1:abc/db"), ("99999", "postgresql://u:pw@db-host:99999/db")]
)
def test_a_malformed_port_names_the_flag_and_the_port(port, storage, tmp_path):
    code, out, err = optuna_sweep(tmp_path / "o", "--storage", storage)
    assert (code, out) == (2, "")
    assert err == (
        f"steplr: error: --storage '{storage.replace(':pw@', ':***@')}': the port '{port}' is not a whole "
        "number in 1-65535\n"
    )
    assert not (tmp_path / "o").exists()


def test_a_torn_journal_is_repaired_and_said_in_one_line(tmp_path):
    out = tmp_path / "o"
    code, _, err = optuna_sweep(out, "--trials", "2", "--epochs", "2", "--seeds", "1")
    assert code == 0, err
    journal = out / "optuna-journal.log"
    torn = b'{"op_code":4,"worker_id":"x","study_id":0,"datetime_st'  # a record cut short
    journal.write_bytes(journal.read_bytes() + torn)
    code, _, err = optuna_sweep(out, "--trials", "3", "--epochs", "2", "--seeds", "1")
    assert code == 0, err
    assert [line for line in err.splitlines() if "journal" in line] == [
        f"steplr: warning: the journal file {journal} ended in a torn record ({len(torn)} bytes, from a write cut "
        "short by a "
        f"power loss or a full disk): removed it (the file as found is {journal}.bak)"
    ]
    assert len([r for r in trials(out) if r["state"] in ("COMPLETE", "PRUNED")]) == 3


class Command:
    """``python -m steplr sweep qwerty --engine optuna FLAGS`` in its own process, output to files."""

    def __init__(self, folder: Path, name: str, *flags: str) -> None:
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "steplr", "sweep", "qwerty", "--engine", "optuna", *flags],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def log(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def helpers(self) -> list[int]:
        """The helper workers it started (its children running steplr.cli.tune)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if (
                    entry.name.isdigit()
                    and parent_of(int(entry.name)) == self.process.pid
                    and b"steplr.cli.tune" in (entry / "cmdline").read_bytes()
                ):
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
        return found

    def wait_for_helpers(self, count: int, study_dir: Path | None = None, timeout: float = 60) -> list[int]:
        """Wait until ``count`` helpers run (and, given the journal's folder, each runs a trial); their ids."""
        from steplr.experiments.tune import SweepError, open_study

        deadline, study = time.monotonic() + timeout, None
        while True:
            assert time.monotonic() < deadline and self.process.poll() is None, self.log()
            helpers = self.helpers()
            if len(helpers) == count and study_dir is None:
                return helpers
            if len(helpers) == count and study is None:
                with contextlib.suppress(SweepError):
                    study = open_study(None, "steplr-qwerty", None, study_dir, create=False)
            if study is not None:
                running = {
                    t.user_attrs.get("pid") for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"
                }
                if set(helpers) <= running:
                    return helpers
            time.sleep(0.1)


@pytest.fixture
def command(tmp_path):
    """Start a ``Command`` in ``tmp_path`` (``command(name, *flags)``); any still running at the end is killed."""
    started: list[Command] = []

    def start(name: str, *flags: str) -> Command:
        started.append(Command(tmp_path, name, *flags))
        return started[-1]

    yield start
    for each in started:
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait()


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def gone(pid: int) -> bool:
    """No such process, or a zombie (it has ended; only its exit status waits to be collected)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_a_helper_without_its_settings_on_stdin_searches_nothing(tmp_path):
    from steplr.cli.tune import _helper

    assert _helper(["sweep", "qwerty", "--engine", "optuna", "--out", str(tmp_path / "o")], io.StringIO("")) == 2
    assert not (tmp_path / "o").exists()


def test_helpers_get_the_storage_url_on_stdin_never_on_their_command_line(tmp_path, new_postgres_database, command):
    """A helper's command line is visible to every user of the machine (``ps``, /proc/PID/cmdline): the URL with its
    password is not on it (nor in its environment)."""
    storage = new_postgres_database().replace("postgres@", "postgres:hunter2@")  # trust: the password is unchecked
    out = tmp_path / "o"
    main = command(
        "main",
        "--trials",
        "8",
        "--workers",
        "2",
        "--epochs",
        "10",
        "--seeds",
        "1",
        "--storage",
        storage,
        "--out",
        str(out),
    )
    (helper,) = main.wait_for_helpers(1)
    seen = Path(f"/proc/{helper}/cmdline").read_bytes() + Path(f"/proc/{helper}/environ").read_bytes()
    assert b"steplr.cli.tune" in seen and b"hunter2" not in seen and b"--storage" not in seen
    assert main.process.wait(timeout=120) == 0, main.log()
    assert len([r for r in trials(out) if r["state"] in ("COMPLETE", "PRUNED")]) == 8
    assert not any(b"hunter2" in path.read_bytes() for path in out.iterdir())
    assert "hunter2" not in main.log() and "postgres:***@" in main.out.read_text()


def _journal_lock_grace() -> float:
    """Seconds after which Optuna's JournalFileSymlinkLock breaks a lock left by a dead process."""
    from optuna.storages.journal import JournalFileSymlinkLock

    return float(inspect.signature(JournalFileSymlinkLock).parameters["grace_period"].default)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_helpers_end_with_the_main_process(how, tmp_path, command):
    """SIGTERM: the main process stops its helpers, waits for them and says how to continue (exit 130); every
    trial that was running is failed, none is left RUNNING. SIGKILL: the helpers notice their parent is gone and
    stop by themselves: within seconds, or once Optuna breaks the journal's lock (after its 30 s grace) when the
    main process died holding it, since a helper asking for or telling a trial holds the signal until the
    storage answers (experiments/tune.py, _signals_held)."""
    from steplr.experiments.tune import open_study

    out = tmp_path / "o"
    main = command("main", "--trials", "500", "--workers", "3", "--epochs", "20", "--seeds", "1", "--out", str(out))
    helpers = main.wait_for_helpers(2, study_dir=out)
    main.process.send_signal(getattr(signal, how))
    code = main.process.wait(timeout=30)
    deadline = time.monotonic() + _journal_lock_grace() + 15
    while not all(gone(pid) for pid in helpers):
        assert time.monotonic() < deadline, [Path(f"/proc/{pid}/stat").read_text() for pid in helpers]
        time.sleep(0.1)
    if how == "SIGTERM":
        assert code == 130
        assert main.err.read_text().splitlines()[-1] == (
            "steplr: interrupted: the search stopped (its finished trials are kept in the study); rerun the same "
            "command to continue"
        )
        study = open_study(None, "steplr-qwerty", None, out, create=False)
        assert not [t.number for t in study.trials if t.state.name == "RUNNING"]


def test_a_server_stopped_under_the_command_is_one_line_and_the_same_command_continues(pg_cluster, tmp_path, command):
    from steplr.experiments.tune import open_study, redact

    storage = pg_cluster.url().replace("postgres@", "postgres:hunter2@")  # trust: the password is unchecked
    out = tmp_path / "o"
    flags = ("--trials", "20", "--epochs", "10", "--seeds", "1", "--storage", storage, "--out", str(out))
    first = command("first", *flags)
    deadline, study = time.monotonic() + 60, None
    while True:
        assert time.monotonic() < deadline and first.process.poll() is None, first.log()
        if study is None:
            with contextlib.suppress(ValueError):
                study = open_study(None, "steplr-qwerty", storage, out, create=False)
        if study is not None and any(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials):
            break
        time.sleep(0.1)
    pg_cluster.stop("immediate")
    code = first.process.wait(timeout=30)
    assert code == 3  # the storage failed while searching: rerunning continues
    said = first.err.read_text()
    assert said.count("\n") == 1, said
    line = said.rstrip("\n")
    assert line.startswith(f"steplr: error: lost the study storage {redact(storage)}: ") and "hunter2" not in line
    assert line.endswith("; rerun the same command to continue")
    pg_cluster.start()
    again = command("again", *flags)
    assert again.process.wait(timeout=120) == 0, again.log()
    rows = trials(out)
    assert len([r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]) == 20
    assert all(r["state"] in ("COMPLETE", "PRUNED", "FAIL") for r in rows)
