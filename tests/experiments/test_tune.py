"""The Optuna search: spaces, storages (a real PostgreSQL server, a journal file), real worker processes, and
the confirmation of the best configs against a constant LR.

Workers run as separate Python processes (``python -c``) on the qwerty recipe (~0.1 s per trial); a barrier
file makes them start training together, after their slow imports.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytest

from conftest import SECRET_SHAPES
from steplr.experiments.tune import (
    JOURNAL_FILE,
    STUDY_FORMAT,
    Space,
    SweepError,
    TrialCounts,
    best_trials,
    confirm_best,
    count_trials,
    open_study,
    parse_range,
    parse_space,
    recorded_seeds,
    redact,
    run_optuna,
    study_rows,
)

STEP_RANGE, GAMMA_RANGE = "1ep:20ep", "0.05:0.99"

WORKER = """
import json, os, sys, time
from pathlib import Path

import optuna  # the slow imports happen before the barrier
import torch
import steplr.training.train
torch.set_num_threads(1)  # several workers share few cores: no thread oversubscription
from steplr.experiments.tune import StorageLost, SweepError, run_optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)  # as steplr's command line: no line per trial

args = json.loads(sys.argv[1])
barrier = Path(args["barrier"])
(barrier / f"{os.getpid()}.ready").touch()
deadline = time.monotonic() + 60
while len(list(barrier.glob("*.ready"))) < args["workers"] and time.monotonic() < deadline:
    time.sleep(0.02)

def on_epoch(trial, record):  # test hook: slows trials down (from trial number slow_from on)
    if trial.number >= args["slow_from"]:
        time.sleep(args["epoch_sleep"])

try:
    run_optuna("qwerty", step_size=args["step"], gamma=args["gamma"], lr=None,
               trials=args["trials"], storage=args["storage"], study_name=args["study"],
               run_dir=Path(args["run_dir"]), on_epoch=on_epoch, grace_period=args.get("grace"),
               db_timeout=args.get("db_timeout"))
except SweepError as error:  # printed as steplr's command line prints it: one line
    print(f"error: {error}", file=sys.stderr)
    sys.exit(3 if isinstance(error, StorageLost) else 2)
"""


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train in-process trials on one thread: tiny models gain nothing from more, and they stall badly when
    other processes (the workers) compete for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_worker_left_running():
    """A test that fails while its workers run still ends them."""
    yield
    while Worker.started:
        worker = Worker.started.pop()
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGCONT)  # a paused one, too
            worker.kill()


class Worker:
    """One ``run_optuna`` in its own process, output to files (shown when a test fails)."""

    started: ClassVar[list[Worker]] = []  # emptied after each test (no_worker_left_running)

    def __init__(self, folder: Path, name: str, **args: Any) -> None:
        Worker.started.append(self)
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        settings = {"step": STEP_RANGE, "gamma": GAMMA_RANGE, "slow_from": 0, "epoch_sleep": 0.0, **args}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER, json.dumps(settings)], stdout=out, stderr=err
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait(self, timeout: float = 90) -> None:
        code = self.process.wait(timeout=timeout)
        assert code == 0, f"worker {self.pid} exited with {code}:\n{self.log()}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)  # reap it, so it is not a zombie that looks alive


def finished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["state"] in ("COMPLETE", "PRUNED")]


def check_total(study_rows_: list[dict[str, Any]], total: int) -> None:
    """Exactly ``total`` finished trials, unique numbers; every other trial is a surplus or a dead worker's."""
    numbers = [row["number"] for row in study_rows_]
    assert len(numbers) == len(set(numbers))
    assert len(finished(study_rows_)) == total, study_rows_
    for row in study_rows_:
        if row["state"] not in ("COMPLETE", "PRUNED"):
            assert row["state"] == "FAIL", row
    for row in finished(study_rows_):
        assert row["step_size"].endswith("ep") and 1 <= int(row["step_size"][:-2]) <= 20
        assert 0.05 <= row["gamma"] <= 0.99
        assert row["lr"] == 0.01  # the recipe's: no lr range
        if row["state"] == "COMPLETE":
            assert 0 <= row["val_acc"] <= 1 and 0 <= row["test_acc_info"] <= 1 and row["epochs_reported"] == 20
        else:
            assert row["val_acc"] is None and 2 <= row["epochs_reported"] < 20  # pruned after the warm-up epoch


# --------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("1ep:20ep", "step_size", (1, 20, "ep")),
        (" 1 : 20ep ", "step_size", (1, 20, "ep")),
        ("100it:900it", "step_size", (100, 900, "it")),
        ("5:50", "step_size", (5, 50, "")),
        ("3ep:3ep", "step_size", (3, 3, "ep")),
        ("0.05:0.99", "gamma", (0.05, 0.99)),
        ("0.5:1", "gamma", (0.5, 1.0)),
        ("1e-3:0.1", "lr", (0.001, 0.1)),
    ],
)
def test_parse_range(text, kind, expected):
    assert parse_range(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "gamma"),
        ("0.5", "gamma"),
        ("a:b", "gamma"),
        ("0.1:0.2:0.3", "gamma"),
        ("0.1:", "gamma"),
        ("0:0.9", "gamma"),
        ("0.9:0.1", "gamma"),
        ("-0.5:0.5", "gamma"),
        ("0.5:1.5", "gamma"),
        ("nan:0.5", "gamma"),
        ("0.1:inf", "lr"),
        ("0:0.1", "lr"),
        ("0.1:0.01", "lr"),
        ("0ep:5ep", "step_size"),
        ("5ep:1ep", "step_size"),
        ("1ep:20it", "step_size"),
        ("1.5ep:3ep", "step_size"),
        ("soon:later", "step_size"),
        ("1ep-20ep", "step_size"),
    ],
)
def test_parse_range_refuses_bad_text_naming_it(text, kind):
    with pytest.raises(SweepError, match=f"{kind} range '{text}'" if text else kind):
        parse_range(text, kind)


def test_parse_range_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown range kind") as caught:
        parse_range("1:2", "momentum")
    assert not isinstance(caught.value, SweepError)


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("1ep:20ep", "step_size", Space("step_size", "range", (1, 20), "ep")),
        ("100:900", "step_size", Space("step_size", "range", (100, 900), "")),
        ("1ep,2ep", "step_size", Space("step_size", "choice", ("1ep", "2ep"))),
        (" 2epochs , 115it,7 ", "step_size", Space("step_size", "choice", ("2ep", "115it", 7))),
        ("5ep", "step_size", Space("step_size", "fixed", ("5ep",))),
        ("0.05:0.99", "gamma", Space("gamma", "range", (0.05, 0.99))),
        ("0.1,0.5,1", "gamma", Space("gamma", "choice", (0.1, 0.5, 1.0))),
        ("0.5", "gamma", Space("gamma", "fixed", (0.5,))),
        ("1e-3:0.1", "lr", Space("lr", "range", (0.001, 0.1))),
        ("1e-3,0.1", "lr", Space("lr", "choice", (0.001, 0.1))),
    ],
)
def test_parse_space(text, kind, expected):
    assert parse_space(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("1ep:20ep", "1ep:20ep"), ("1:20ep", "1ep:20ep"), ("2epochs,115it", "2ep,115it"), ("5", "5")],
)
def test_space_text_is_canonical(text, canonical):
    assert str(parse_space(text, "step_size")) == canonical
    assert parse_space(canonical, "step_size") == parse_space(text, "step_size")


@pytest.mark.parametrize(
    ("text", "kind", "match"),
    [
        ("", "gamma", "expected one value, a list"),
        ("1ep,,2ep", "step_size", "an item is empty"),
        ("1ep,", "step_size", "an item is empty"),
        ("1ep,1ep", "step_size", "a value is repeated"),
        ("1ep:5ep,8ep", "step_size", "a list .* or a range .*, not both"),
        ("0ep,1ep", "step_size", "'0ep' is not a positive duration"),
        ("1.5ep", "step_size", "'1.5ep' is not a positive duration"),
        ("0.5,1.5", "gamma", r"gamma must lie in \(0, 1\].*'1.5'"),
        ("0", "gamma", r"gamma must lie in \(0, 1\]"),
        ("0.5,x", "gamma", "'x' is not a number"),
        ("0,0.1", "lr", "learning rates must be > 0, got '0'"),
        ("inf", "lr", "'inf' is not a finite number"),
    ],
)
def test_parse_space_refuses_bad_text_naming_it(text, kind, match):
    with pytest.raises(SweepError, match=match) as caught:
        parse_space(text, kind)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:secret@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user@host/db?password=secret&sslmode=require",
            "postgresql://user@host/db?password=***&sslmode=require",
        ),
        ("postgresql://host/db", "postgresql://host/db"),
        ("not a url", "not a url"),
    ],
)
def test_redact(url, expected):
    assert redact(url) == expected


def test_import_is_cheap():
    code = (
        "import sys, steplr.experiments.tune; "
        "heavy = [m for m in ('optuna', 'torch', 'sqlalchemy') if m in sys.modules]; "
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- bad input


def run_small(tmp_path: Path, **overrides: Any):
    settings: dict[str, Any] = {
        "step_size": STEP_RANGE,
        "gamma": GAMMA_RANGE,
        "lr": None,
        "trials": 2,
        "storage": None,
        "study_name": "s",
        "run_dir": tmp_path / "run",
    }
    settings.update(overrides)
    return run_optuna(settings.pop("recipe", "qwerty"), **settings)


@pytest.mark.parametrize("gamma", ["0:0.9", "0.9:0.1", "0.5,0.5"])
def test_bad_gamma_fails_before_any_storage_is_touched(tmp_path, gamma):
    with pytest.raises(SweepError, match=f"gamma.* '{gamma}'"):
        run_small(tmp_path, gamma=gamma)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"trials": 0}, "number of trials 0"),
        ({"recipe": "imagenet"}, "unknown recipe 'imagenet'"),
        ({"lr": "0.1:"}, "lr range '0.1:'"),
        ({"validation": 0}, r"bad validation 0: .* a fraction in \(0, 1\)"),
        ({"validation": 1.0}, r"bad validation 1.0"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"confirm_seeds": 0}, "bad number of confirmation seeds 0: expected a positive integer"),
        ({"confirm_seeds": True}, "bad number of confirmation seeds True"),
        ({"storage": "sqlite:///tmp/x.db"}, "scheme 'sqlite'"),
        ({"storage": "mysql://u:pw@127.0.0.1/db"}, "scheme 'mysql'"),
        ({"storage": "just-a-file.log"}, "unsupported storage"),
    ],
)
def test_bad_arguments(tmp_path, overrides, match):
    with pytest.raises(SweepError, match=match) as caught:
        run_small(tmp_path, **overrides)
    assert "pw" not in str(caught.value)


def test_unreachable_storage_fails_fast_with_the_password_redacted(tmp_path):
    url = "postgresql://u:pw@127.0.0.1:1/db"
    start = time.monotonic()
    with pytest.raises(SweepError) as caught:
        run_small(tmp_path, storage=url)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert "postgresql://u:***@127.0.0.1:1/db" in message
    assert "pw" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no driver error to print


def test_wrong_database_fails_with_a_sweep_error(postgres_url, tmp_path):
    url = postgres_url.replace("postgres@", "postgres:hunter2@").rpartition("/")[0] + "/no_such_db"
    with pytest.raises(SweepError, match="no_such_db") as caught:
        open_study("qwerty", "s", url, tmp_path)
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_study_of_another_recipe_is_refused(kind, tmp_path, new_postgres_database):
    storage = None if kind == "journal" else new_postgres_database()
    open_study("digits", "shared", storage, tmp_path)
    with pytest.raises(SweepError, match="study 'shared' was created for recipe 'digits', not 'qwerty'"):
        open_study("qwerty", "shared", storage, tmp_path)
    with pytest.raises(SweepError, match="study 'shared' was created for recipe 'digits', not 'qwerty'"):
        run_small(tmp_path, study_name="shared", storage=storage, run_dir=tmp_path)
    assert open_study(None, "shared", storage, tmp_path, create=False).user_attrs["recipe"] == "digits"


def test_missing_study_without_create(tmp_path):
    with pytest.raises(SweepError) as caught:
        open_study("qwerty", "nope", None, tmp_path, create=False)
    assert str(caught.value) == (
        f"no study named 'nope' in {tmp_path}: the journal file {tmp_path / JOURNAL_FILE} does not exist"
    )


def test_a_study_of_an_older_steplr_is_refused(tmp_path):
    """Trials of a study that chose on the test set cannot be continued, nor confirmed, as if they chose on
    validation."""
    import optuna

    study = open_study("qwerty", "old", None, tmp_path)
    study.add_trial(
        optuna.trial.create_trial(
            value=0.9, params={"gamma": 0.5}, distributions={"gamma": optuna.distributions.FloatDistribution(0, 1)}
        )
    )
    with pytest.raises(SweepError, match="study 'old' was made by another version of steplr"):
        run_small(tmp_path, study_name="old", run_dir=tmp_path)
    with pytest.raises(SweepError, match="made by another version of steplr"):
        confirm_best(study, load_qwerty(), [0])


# --------------------------------------------------------------------------------------------- one worker


def load_qwerty():
    from steplr.training.data import load_qwerty as load

    return load()


def test_resume_continues_to_the_total_and_refuses_other_settings(tmp_path):
    seen: list[int] = []
    study = run_small(tmp_path, trials=3, on_trial=lambda study, trial: seen.append(trial.number))
    assert seen == [0, 1, 2]
    assert (tmp_path / "run" / "optuna-journal.log").is_file()
    assert study.user_attrs == {
        "recipe": "qwerty",
        "format": STUDY_FORMAT,
        "seed": 0,
        "validation": 1 / 6,
        "epochs": 20,
        "step_size": "1ep:20ep",
        "gamma": "0.05:0.99",
        "lr": "0.01",
    }
    study = run_small(tmp_path, trials=5)
    check_total(study_rows(study), 5)
    study = run_small(tmp_path, trials=5)  # already done: no new trial
    assert len(study.trials) == 5
    with pytest.raises(SweepError, match=re.escape("created with gamma '0.05:0.99', not '0.1:0.9'")):
        run_small(tmp_path, trials=6, gamma="0.1:0.9")
    with pytest.raises(SweepError, match="created with step size '1ep:20ep', not '1ep,2ep'"):
        run_small(tmp_path, trials=6, step_size="1ep,2ep")
    with pytest.raises(SweepError, match=re.escape("created with lr '0.01', not '0.001:0.1'")):
        run_small(tmp_path, trials=6, lr="0.001:0.1")
    with pytest.raises(SweepError, match="seed 0, not 1"):
        run_small(tmp_path, trials=6, seed=1)
    with pytest.raises(SweepError, match=re.escape("validation 0.16666666666666666, not 0.25")):
        run_small(tmp_path, trials=6, validation=0.25)
    with pytest.raises(SweepError, match="epochs 20, not 3"):
        run_small(tmp_path, trials=6, epochs=3)


def test_lr_range_samples_lr_log_uniformly(tmp_path):
    study = run_small(tmp_path, trials=3, lr="0.001:0.1", step_size="100it:400it", epochs=3)
    rows = study_rows(study)
    assert [row["state"] for row in rows] == ["COMPLETE"] * 3
    for row in rows:
        assert 0.001 <= row["lr"] <= 0.1 and row["step_size"].endswith("it")
    assert study.trials[0].distributions["lr"].log


def test_a_list_is_a_categorical_choice_and_one_value_is_fixed(tmp_path):
    """What you ask is what runs: every trial's step size is one of the list (never the default range), the
    fixed gamma is used as given and is not a searched parameter."""
    import optuna

    study = run_small(tmp_path, trials=8, step_size="1ep,2ep", gamma="0.5", lr="0.01,0.1", epochs=3)
    rows = study_rows(study)
    assert len(rows) == 8
    assert {row["step_size"] for row in rows} <= {"1ep", "2ep"}
    assert {row["gamma"] for row in rows} == {0.5}
    assert {row["lr"] for row in rows} <= {0.01, 0.1}
    trial = study.trials[0]
    assert trial.distributions["step_size"] == optuna.distributions.CategoricalDistribution(["1ep", "2ep"])
    assert trial.distributions["lr"] == optuna.distributions.CategoricalDistribution([0.01, 0.1])
    assert "gamma" not in trial.params
    assert study.user_attrs["step_size"] == "1ep,2ep" and study.user_attrs["gamma"] == "0.5"


def test_trials_choose_on_validation_and_keep_the_test_set_for_information(tmp_path):
    """The study's value is the final validation accuracy and the pruner sees the negated validation loss of
    every epoch: both recomputed here by training the same config alone in the batched engine (which trials train
    in: exactly equal), and with the sequential train() (equal up to float32 rounding)."""
    from steplr.experiments.compare import recipe_config
    from steplr.training.batched import train_batched
    from steplr.training.train import train

    study = run_small(tmp_path, trials=12, epochs=6)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete  # trial 0 at least: the pruner has no median to compare it with
    for trial in study.trials:
        assert trial.state.name in ("COMPLETE", "PRUNED")
        assert sorted(trial.intermediate_values) == list(range(1, len(trial.intermediate_values) + 1))
    trial = complete[0]
    config = recipe_config(
        "qwerty",
        step_size=trial.user_attrs["step_size"],
        gamma=trial.user_attrs["gamma"],
        lr=trial.user_attrs["lr"],
        seed=0,
        validation=1 / 6,
        epochs=6,
    )
    (history,) = train_batched([config], load_qwerty())
    assert [trial.intermediate_values[e.epoch] for e in history.epochs] == [-e.val_loss for e in history.epochs]
    final = history.epochs[-1]
    assert trial.value == final.val_acc
    assert trial.user_attrs["val_loss"] == final.val_loss
    assert (trial.user_attrs["test_acc"], trial.user_attrs["test_loss"]) == (final.test_acc, final.test_loss)
    # The test accuracy is listed under a name that says it chose nothing; the value is the trial's.
    (row,) = [r for r in study_rows(study) if r["number"] == trial.number]
    assert "test_acc" not in row and (row["val_acc"], row["test_acc_info"]) == (final.val_acc, final.test_acc)
    sequential = train(config, load_qwerty())
    assert len(sequential.epochs) == len(history.epochs) == 6
    for ours, reference in zip(history.epochs, sequential.epochs):
        for name in ("val_loss", "val_acc", "test_loss", "test_acc"):
            assert getattr(ours, name) == pytest.approx(getattr(reference, name), rel=0, abs=1e-6), name


def test_the_confirmation_seeds_are_recorded_and_the_latest_kept(tmp_path):
    """The seeds a search's report confirms on are kept in the study (so a rebuilt report uses the same ones); they
    do not change what the trials run, so a continued search may change them, and a search-only worker (None)
    leaves them as they are."""
    study = run_small(tmp_path, trials=1, epochs=2)
    assert recorded_seeds(study) is None and "confirm_seeds" not in study.user_attrs
    assert recorded_seeds(run_small(tmp_path, trials=1, epochs=2, confirm_seeds=2)) == 2
    assert recorded_seeds(run_small(tmp_path, trials=2, epochs=2, confirm_seeds=5)) == 5
    assert recorded_seeds(run_small(tmp_path, trials=2, epochs=2)) == 5
    assert recorded_seeds(open_study(None, "s", None, tmp_path / "run", create=False)) == 5


def test_counts_name_every_way_a_trial_ends(tmp_path):
    import optuna
    from optuna.trial import TrialState, create_trial

    study = open_study("qwerty", "counts", None, tmp_path)
    space = {"gamma": optuna.distributions.FloatDistribution(0, 1)}
    made = [
        (TrialState.COMPLETE, {}),
        (TrialState.COMPLETE, {}),
        (TrialState.PRUNED, {}),
        (TrialState.PRUNED, {"diverged": "loss became nan"}),
        (TrialState.FAIL, {}),
        (TrialState.FAIL, {"surplus": True}),
        (TrialState.FAIL, {"surplus": True}),
        (TrialState.WAITING, {}),
    ]
    for state, attrs in made:
        study.add_trial(
            create_trial(
                state=state,
                value=0.5 if state == TrialState.COMPLETE else None,
                params={"gamma": 0.5},
                distributions=space,
                user_attrs=attrs,
            )
        )
    counts = count_trials(study)
    assert counts == TrialCounts(complete=2, pruned=1, diverged=1, failed=1, surplus=2, unfinished=1)
    assert counts.finished == 4
    assert str(counts) == (
        "4 finished trials (2 complete, 1 pruned, 1 diverged), 1 failed, 2 surplus (not run: "
        "the budget was already taken), 1 still running or queued"
    )


def test_a_diverged_trial_is_pruned_and_counted_as_diverged(tmp_path):
    study = run_small(tmp_path, trials=2, lr="1e30", gamma="1", step_size="5ep", epochs=2)
    assert count_trials(study) == TrialCounts(complete=0, pruned=0, diverged=2, failed=0, surplus=0, unfinished=0)
    rows = study_rows(study)
    assert [(row["state"], row["note"], row["lr"]) for row in rows] == [("PRUNED", "diverged", 1e30)] * 2


def test_a_trial_diverges_in_the_epoch_the_sequential_trainer_does_and_reports_the_epochs_before(tmp_path):
    """At a constant lr 10 qwerty's loss becomes infinite in epoch 2 (train() stops there); the trial reports
    epoch 1's validation loss only, and its note names the epoch and the epoch's mean training loss."""
    from steplr.errors import DivergedError
    from steplr.experiments.compare import recipe_config
    from steplr.training.train import train

    config = recipe_config("qwerty", step_size="5ep", gamma=1.0, lr=10.0, seed=0, validation=1 / 6, epochs=3)
    with pytest.raises(DivergedError) as stopped:
        train(config, load_qwerty())
    assert stopped.value.epoch == 2
    study = run_small(tmp_path, trials=1, lr="10", gamma="1", step_size="5ep", epochs=3)
    (trial,) = study.trials
    assert trial.state.name == "PRUNED" and count_trials(study).diverged == 1
    assert list(trial.intermediate_values) == [1]
    assert trial.user_attrs["diverged"] == "loss became nan at epoch 2: stopped"


# --------------------------------------------------------------------------------------------- confirming


def test_confirm_best_retrains_distinct_configs_beside_a_constant_lr(tmp_path):
    """Up to five distinct configs, in the study's order (validation accuracy), each against a constant LR at its
    own lr on the same seeds; the paired numbers agree with the accuracies they summarise."""
    from steplr.experiments.paired import VERDICTS

    study = run_small(tmp_path, trials=8, step_size="1ep,2ep", gamma="0.5", lr="0.01,0.1", epochs=4)
    chosen = best_trials(study)
    keys = [(t.user_attrs["step_size"], t.user_attrs["lr"]) for t in chosen]
    assert len(keys) == len(set(keys)) <= 4
    values = [t.value for t in chosen]
    assert values == sorted(values, reverse=True)
    result = confirm_best(study, load_qwerty(), [0, 1, 2])
    assert [row.trial for row in result.rows] == [t.number for t in chosen]
    assert result.seeds == [0, 1, 2] and result.base.epochs == 4 and result.base.validation == 1 / 6
    assert result.batches == 19  # 600 of Qwerty's 720 training examples, in batches of 32
    for row, trial in zip(result.rows, chosen):
        assert (row.step_size, row.gamma, row.lr, row.trial_val_acc) == (
            trial.user_attrs["step_size"],
            0.5,
            trial.user_attrs["lr"],
            trial.value,
        )
        assert row.seeds == 3 and row.verdict in VERDICTS[:3]
        for value in (row.val_acc_mean, row.test_acc_mean, row.baseline_test_acc_mean):
            assert 0 <= value <= 1
        assert row.diff_mean == pytest.approx((row.test_acc_mean - row.baseline_test_acc_mean) * 100)
        assert row.diff_ci_low <= row.diff_mean <= row.diff_ci_high
        assert row.p <= row.p_adjusted <= 1
    # Rows at the same lr share one constant-LR baseline.
    by_lr = {}
    for row in result.rows:
        by_lr.setdefault(row.lr, set()).add(row.baseline_test_acc_mean)
    assert all(len(means) == 1 for means in by_lr.values())


def test_confirm_counts_diverged_seeds_instead_of_crashing(tmp_path):
    """At lr 10 a constant LR diverges on every seed while a sharp step decay (x0.01 after one epoch) does not:
    the diverged baseline counts as 0 accuracy and the verdict says so."""
    study = run_small(tmp_path, trials=1, lr="10", gamma="0.01", step_size="1ep", epochs=4)
    result = confirm_best(study, load_qwerty(), [0, 1, 2])
    (row,) = result.rows
    assert (row.diverged, row.baseline_diverged) == (0, 3)
    assert row.baseline_test_acc_mean == 0.0 and row.test_acc_mean > 0.5
    assert row.verdict == "better"


def test_confirm_with_one_seed_has_no_test(tmp_path):
    study = run_small(tmp_path, trials=2, epochs=3)
    result = confirm_best(study, load_qwerty(), [0])
    assert {row.verdict for row in result.rows} == {"1 seed: no test"}
    assert all(row.p is None and row.p_adjusted is None and row.diff_ci_low is None for row in result.rows)
    assert all(math.isnan(row.test_acc_sd) for row in result.rows)  # no spread exists with one seed, not 0


def test_confirm_with_two_seeds_gives_the_sample_sd(tmp_path):
    import statistics

    from steplr.experiments.compare import recipe_config
    from steplr.training.train import train

    study = run_small(tmp_path, trials=1, step_size="1ep", gamma="0.5", epochs=3)
    (row,) = confirm_best(study, load_qwerty(), [0, 1]).rows
    accs = [
        train(
            recipe_config("qwerty", schedule="step", step_size="1ep", gamma=0.5, seed=seed, validation=1 / 6, epochs=3),
            load_qwerty(),
        )
        .epochs[-1]
        .test_acc
        for seed in (0, 1)
    ]
    assert row.test_acc_mean == pytest.approx(statistics.fmean(accs))
    assert row.test_acc_sd == pytest.approx(statistics.stdev(accs))


def test_confirm_needs_a_complete_trial(tmp_path):
    study = run_small(tmp_path, trials=1, lr="1e30", gamma="1", step_size="5ep", epochs=2)
    with pytest.raises(SweepError, match="study 's' has no complete trials yet"):
        confirm_best(study, load_qwerty(), [0])


# --------------------------------------------------------------------------------------------- many workers


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_two_workers_share_one_study(kind, tmp_path, new_postgres_database):
    storage = None if kind == "journal" else new_postgres_database()  # fresh: both race to create the tables
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    shared = {
        "trials": 12,
        "storage": storage,
        "study": "duo",
        "run_dir": str(tmp_path / "run"),
        "barrier": str(barrier),
        "workers": 2,
        "epoch_sleep": 0.005,
    }
    workers = [Worker(tmp_path, f"worker{i}", **shared) for i in range(2)]
    for worker in workers:
        worker.wait()
    rows = study_rows(open_study("qwerty", "duo", storage, tmp_path / "run", create=False))
    check_total(rows, 12)
    by_worker = {row["worker"].rpartition(":")[2] for row in finished(rows)}
    assert by_worker == {str(worker.pid) for worker in workers}, rows
    assert all(row["note"] == "surplus" for row in rows if row["state"] == "FAIL")


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_killed_worker_trial_is_failed_and_retried(kind, tmp_path, new_postgres_database):
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    storage = None if kind == "journal" else new_postgres_database()
    run_dir, barrier = tmp_path / "run", tmp_path / "barrier"
    barrier.mkdir()
    # Trials 0 and 1 run at full speed; from trial 2 on, 0.25 s per epoch (5 s a trial): time to kill it.
    victim = Worker(
        tmp_path,
        "victim",
        trials=6,
        storage=storage,
        study="kill",
        run_dir=str(run_dir),
        barrier=str(barrier),
        workers=1,
        slow_from=2,
        epoch_sleep=0.25,
    )
    deadline = time.monotonic() + 60
    study = None
    while True:
        assert time.monotonic() < deadline, victim.log()
        assert victim.process.poll() is None, victim.log()
        if study is None:
            with contextlib.suppress(SweepError):
                study = open_study(None, "kill", storage, run_dir, create=False)
        if study is not None:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if running and running[0].number == 2 and running[0].intermediate_values:
                break
        time.sleep(0.05)
    victim.kill()
    before = {t.number: (t.state, t.value, t.params) for t in study.get_trials() if t.number < 2}
    assert [state for state, _, _ in before.values()] == [TrialState.COMPLETE] * 2
    killed_params = study.trials[2].params

    start = time.monotonic()
    study = run_small(tmp_path, trials=6, storage=storage, study_name="kill", run_dir=run_dir)  # in this process
    elapsed = time.monotonic() - start
    assert elapsed < (30 if kind == "postgres" else 15)

    trials = study.get_trials()
    assert {t.number: (t.state, t.value, t.params) for t in trials if t.number < 2} == before
    assert trials[2].state == TrialState.FAIL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # Optuna marks the retry API experimental
        retries = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 2]
    assert len(retries) == 1
    assert retries[0].params == killed_params and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].user_attrs["pid"] == os.getpid()
    rows = study_rows(study)
    check_total(rows, 6)
    assert rows[2]["state"] == "FAIL" and rows[retries[0].number]["retry_of"] == 2


def test_a_trial_started_after_the_budget_is_taken_ends_as_surplus(tmp_path, monkeypatch, caplog):
    """Another worker slips a trial in between this worker's budget check and its ``ask``: the later trial
    yields (FAIL, ``surplus``, no parameters), the worker waits for the other's trial, and the study ends with
    exactly the requested total."""
    import threading

    import optuna

    original_ask = optuna.study.Study.ask
    raced: list[int] = []

    def racing_ask(self, fixed_distributions=None):
        if not raced:  # once: "another worker" asks first, then finishes its trial a second later
            raced.append(original_ask(self).number)
            threading.Timer(1.0, finish_other).start()
        return original_ask(self, fixed_distributions)

    def finish_other():
        other = open_study(None, "race", None, tmp_path / "run", create=False)  # the other worker's view
        other.tell(raced[0], 0.5)

    monkeypatch.setattr(optuna.study.Study, "ask", racing_ask)
    seen: list[int] = []
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            study = run_small(
                tmp_path, trials=1, study_name="race", on_trial=lambda study, trial: seen.append(trial.number)
            )
    finally:
        optuna.logging.disable_propagation()
    rows = study_rows(study)
    assert [(row["number"], row["state"], row["note"], row["step_size"]) for row in rows] == [
        (0, "COMPLETE", "", None),
        (1, "FAIL", "surplus", None),
    ]
    assert seen == []  # a surplus trial is not reported to on_trial
    assert not [record for record in caplog.records if "failed" in record.getMessage()]  # no alarming log


# --------------------------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(("text", "secrets"), SECRET_SHAPES)
def test_no_storage_string_shows_its_password(text, secrets, tmp_path):
    shown = redact(text)
    assert "***" in shown and not any(secret in shown for secret in secrets), shown
    with pytest.raises(SweepError) as caught:
        run_small(tmp_path, storage=text)
    message = str(caught.value)
    assert message.count("\n") == 0 and not any(secret in message for secret in secrets), message
    error = caught.value  # no driver error chained to it (a traceback would print the driver's message)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    written = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    assert not any(secret.encode() in written for secret in secrets)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("postgresql://u@127.0.0.1:abc/db", "the port 'abc' is not a whole number in 1-65535"),
        ("postgresql://u@127.0.0.1:0/db", "the port '0' is not a whole number in 1-65535"),
        ("postgresql://u:pw@127.0.0.1:70000/db", "the port '70000' is not a whole number in 1-65535"),
        ("postgresql://u@127.0.0.1:/db", "the port '' is not a whole number in 1-65535"),
        ("postgresql://u@[::1]x/db", "unexpected 'x' after the host [::1]"),
    ],
)
def test_a_malformed_url_is_named_with_what_is_wrong(text, reason, tmp_path):
    with pytest.raises(SweepError) as caught:
        run_small(tmp_path, storage=text)
    assert str(caught.value) == f"bad storage {redact(text)!r}: {reason}"
    assert not (tmp_path / "run").exists()


def test_the_password_comes_from_the_url_or_pgpassword(tmp_path, monkeypatch, make_pg_cluster):
    """A server that checks passwords (scram-sha-256): a password holding '@', ':' and '/' works written in the URL
    as it is or percent-encoded, and so does a password-less URL with PGPASSWORD; a wrong one is refused with the
    password hidden."""
    from urllib.parse import quote

    password = "p@ss:w/rd"
    url = make_pg_cluster(password=password).url()
    plain = url.replace("postgres@", f"postgres:{password}@")
    encoded = url.replace("postgres@", f"postgres:{quote(password, safe='')}@")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    for storage in (plain, encoded):
        assert open_study("qwerty", "pw", storage, tmp_path).user_attrs["recipe"] == "qwerty"
    monkeypatch.setenv("PGPASSWORD", password)
    assert open_study(None, "pw", url, tmp_path, create=False).study_name == "pw"
    with pytest.raises(SweepError, match="password authentication failed") as caught:
        open_study(None, "pw", url.replace("postgres@", "postgres:wr@ng@"), tmp_path, create=False)
    assert "wr@ng" not in str(caught.value) and "postgres:***@127.0.0.1" in str(caught.value)


# --------------------------------------------------------------------------------------------- journal damage


def journal_records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def test_a_torn_journal_tail_is_removed_with_a_backup_and_the_study_continues(tmp_path, caplog):
    """A record cut short (power loss, full disk) is dropped before anything is appended to it (appending would
    make the study unreadable for ever); the file as found is kept; the search goes on to its exact total."""
    run_small(tmp_path, trials=2, epochs=2)
    journal = tmp_path / "run" / JOURNAL_FILE
    whole = journal.read_bytes()
    torn = whole + b'{"op_code":5,"worker_id":"w-1","trial_id":1,"user_attr'
    journal.write_bytes(torn)
    with caplog.at_level("WARNING", logger="steplr.experiments.tune"):
        study = run_small(tmp_path, trials=4, epochs=2)
    assert (tmp_path / "run" / f"{JOURNAL_FILE}.bak").read_bytes() == torn
    assert journal.read_bytes().startswith(whole)
    assert len(journal_records(journal)) > len(whole.splitlines())
    assert [r.getMessage() for r in caplog.records if r.name == "steplr.experiments.tune"] == [
        f"the journal file {journal} ended in a torn record (54 bytes, from a write cut short by a power loss or a "
        f"full disk): removed it (the file as found is {journal}.bak)"
    ]
    assert count_trials(study).finished == 4 == len(study.trials)


def test_a_record_torn_while_a_study_is_open_is_removed_before_the_next_append(tmp_path):
    """A worker that dies mid-write while another goes on: the next append repairs the file first."""
    study = open_study("qwerty", "s", None, tmp_path)
    journal = tmp_path / JOURNAL_FILE
    torn = journal.read_bytes() + b'{"op_code":3,"worker_id":"w'
    journal.write_bytes(torn)
    study.set_user_attr("after", 1)
    assert (tmp_path / f"{JOURNAL_FILE}.bak").read_bytes() == torn
    journal_records(journal)  # every line a record
    assert open_study(None, "s", None, tmp_path, create=False).user_attrs["after"] == 1


def test_a_last_record_missing_only_its_newline_is_kept(tmp_path):
    run_small(tmp_path, trials=1, epochs=2)
    journal = tmp_path / "run" / JOURNAL_FILE
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-1])
    study = open_study(None, "s", None, tmp_path / "run", create=False)
    assert journal.read_bytes() == whole and (tmp_path / "run" / f"{JOURNAL_FILE}.bak").read_bytes() == whole[:-1]
    assert [t.state.name for t in study.trials] == ["COMPLETE"]


def test_a_journal_damaged_inside_is_an_error_naming_the_file_and_the_line(tmp_path):
    run_small(tmp_path, trials=1, epochs=2)
    journal = tmp_path / "run" / JOURNAL_FILE
    lines = journal.read_bytes().splitlines(keepends=True)
    damaged = b"".join([*lines[:3], b'{"op_code": 4, "trial\n', *lines[3:]])
    journal.write_bytes(damaged)
    for attempt in (
        lambda: run_small(tmp_path, trials=2, epochs=2),
        lambda: open_study(None, "s", None, tmp_path / "run", create=False),
    ):
        with pytest.raises(SweepError) as caught:
            attempt()
        assert str(caught.value) == (
            f"the journal file {journal} is damaged: line 4 of {len(lines) + 1} is not a JSON record; steplr "
            "repairs only a torn last record: restore a copy, or start a new study (another run folder or study "
            "name)"
        )
    assert journal.read_bytes() == damaged  # left as found


# --------------------------------------------------------------------------------------------- faults


def wait_for_running_trial(
    storage: str | None, study: str, run_dir: Path, worker: Worker, at_least: int = 0, timeout: float = 60
) -> int:
    """Wait until ``worker`` runs a trial numbered ``at_least`` or more that has reported an epoch; its number."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout
    opened = None
    while True:
        assert time.monotonic() < deadline, worker.log()
        assert worker.process.poll() is None, worker.log()
        if opened is None:
            with contextlib.suppress(SweepError):  # not created yet
                opened = open_study(None, study, storage, run_dir, create=False)
        for trial in opened.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if opened else []:
            if trial.user_attrs.get("pid") == worker.pid and trial.number >= at_least and trial.intermediate_values:
                return trial.number
        time.sleep(0.1)


# One fixed config: every trial trains the same run, so none is ever pruned (a trial a test waits on runs its
# 20 epochs).
UNPRUNED = {"step": "5ep", "gamma": "0.5"}


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_server_stopped_under_a_worker_is_one_line_and_the_rerun_finishes_exactly(pg_cluster, tmp_path):
    storage = pg_cluster.url().replace("postgres@", "postgres:hunter2@")  # trust: the password is not checked
    run_dir, barrier = tmp_path / "run", tmp_path / "barrier"
    barrier.mkdir()
    worker = Worker(
        tmp_path,
        "worker",
        trials=8,
        storage=storage,
        study="stop",
        run_dir=str(run_dir),
        barrier=str(barrier),
        workers=1,
        slow_from=2,
        epoch_sleep=0.1,
        grace=2,
        **UNPRUNED,
    )
    wait_for_running_trial(storage, "stop", run_dir, worker, at_least=2)
    pg_cluster.stop("immediate")
    assert worker.process.wait(timeout=30) == 3, worker.log()
    line = one_line(worker.err.read_text())
    shown = redact(storage)
    assert line.startswith(f"error: lost the study storage {shown}: ") and "hunter2" not in line
    assert line.endswith("; rerun the same command to continue")
    pg_cluster.start()
    study = run_small(
        tmp_path,
        trials=8,
        storage=storage,
        study_name="stop",
        run_dir=run_dir,
        grace_period=2,
        step_size=UNPRUNED["step"],
        gamma=UNPRUNED["gamma"],
    )
    check_total(study_rows(study), 8)
    assert any(row["retry_of"] is not None for row in study_rows(study))  # the trial it was running, run again


def test_a_frozen_server_stops_a_worker_within_the_timeout(pg_cluster, tmp_path):
    """SIGSTOP on the postmaster and every backend: connections are accepted and packets acknowledged by the kernel,
    nothing answers, and no server-side timeout can fire. The worker stops with one line within the database
    timeout (plus the watchdog's polling), and the study finishes once the server is back."""
    storage = pg_cluster.url()
    run_dir, barrier = tmp_path / "run", tmp_path / "barrier"
    barrier.mkdir()
    worker = Worker(
        tmp_path,
        "worker",
        trials=8,
        storage=storage,
        study="freeze",
        run_dir=str(run_dir),
        barrier=str(barrier),
        workers=1,
        slow_from=2,
        epoch_sleep=0.1,
        grace=2,
        db_timeout=3,
        **UNPRUNED,
    )
    wait_for_running_trial(storage, "freeze", run_dir, worker, at_least=2)
    pg_cluster.freeze()
    start = time.monotonic()
    try:
        code = worker.process.wait(timeout=30)
        elapsed = time.monotonic() - start
    finally:
        pg_cluster.thaw()
    assert code == 3, worker.log()
    assert elapsed < 3 + 6, elapsed  # the timeout, the watchdog's polling, the process's exit
    assert one_line(worker.err.read_text()) == (
        f"error: lost the study storage {storage}: the server did not answer for 3 s (stopped, frozen or "
        "unreachable); rerun the same command to continue"
    )
    study = run_small(
        tmp_path,
        trials=8,
        storage=storage,
        study_name="freeze",
        run_dir=run_dir,
        grace_period=2,
        step_size=UNPRUNED["step"],
        gamma=UNPRUNED["gamma"],
    )
    check_total(study_rows(study), 8)


def test_a_worker_paused_beyond_the_grace_period_goes_on(tmp_path, new_postgres_database):
    """Ctrl-Z (SIGSTOP) on a worker in mid-trial for longer than the grace period: the other worker fails its trial,
    retries it and finishes the study; resumed (SIGCONT), the paused worker says in one line that its trial was
    taken over and goes on (here: to find the study finished). The total stays exact."""
    from optuna.trial import TrialState

    storage = new_postgres_database()
    run_dir, barrier = tmp_path / "run", tmp_path / "barrier"
    barrier.mkdir()
    shared = dict(
        trials=6,
        storage=storage,
        study="pause",
        run_dir=str(run_dir),
        barrier=str(barrier),
        workers=2,
        grace=2,
        **UNPRUNED,
    )
    paused = Worker(tmp_path, "paused", epoch_sleep=0.2, **shared)
    other = Worker(tmp_path, "other", **shared)
    number = wait_for_running_trial(storage, "pause", run_dir, paused)
    paused.process.send_signal(signal.SIGSTOP)
    try:
        other.wait(timeout=60)
        study = open_study(None, "pause", storage, run_dir, create=False)
        assert study.trials[number].state == TrialState.FAIL
    finally:
        paused.process.send_signal(signal.SIGCONT)
    paused.wait(timeout=60)
    said = paused.err.read_text()
    assert one_line(said) == (
        f"trial {number} was taken over by another worker: this one was silent for longer than "
        "the grace period (2 s; paused or cut off); going on with the next trial"
    )
    rows = study_rows(open_study(None, "pause", storage, run_dir, create=False))
    check_total(rows, 6)
    assert [row["retry_of"] for row in rows if row["retry_of"] is not None] == [number]
