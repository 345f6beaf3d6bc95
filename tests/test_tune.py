"""The Optuna search: ranges, storages (a real PostgreSQL server, a journal file), real worker processes.

Workers run as separate Python processes (``python -c``) on the qwerty recipe (~0.1 s per trial); a barrier
file makes them start training together, after their slow imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from steplr.tune import SweepError, open_study, parse_range, redact, run_optuna, study_rows

STEP_RANGE, GAMMA_RANGE = "1ep:20ep", "0.05:0.99"

WORKER = """
import json, os, sys, time
from pathlib import Path

import optuna  # the slow imports happen before the barrier
import torch
import steplr.train
torch.set_num_threads(1)  # several workers share few cores: no thread oversubscription
from steplr.tune import run_optuna

args = json.loads(sys.argv[1])
barrier = Path(args["barrier"])
(barrier / f"{os.getpid()}.ready").touch()
deadline = time.monotonic() + 60
while len(list(barrier.glob("*.ready"))) < args["workers"] and time.monotonic() < deadline:
    time.sleep(0.02)

def on_epoch(trial, record):  # test hook: slows trials down (from trial number slow_from on)
    if trial.number >= args["slow_from"]:
        time.sleep(args["epoch_sleep"])

run_optuna("qwerty", step_size_range=args["step"], gamma_range=args["gamma"], lr_range=None,
           trials=args["trials"], storage=args["storage"], study_name=args["study"],
           run_dir=Path(args["run_dir"]), on_epoch=on_epoch)
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


class Worker:
    """One ``run_optuna`` in its own process, output to files (shown when a test fails)."""

    def __init__(self, folder: Path, name: str, **args: Any) -> None:
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        settings = {"step": STEP_RANGE, "gamma": GAMMA_RANGE, "slow_from": 0, "epoch_sleep": 0.0, **args}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings)],
                                            stdout=out, stderr=err)

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
            assert 0 <= row["value"] <= 1 and row["epochs_reported"] == 20
        else:
            assert row["value"] is None and 2 <= row["epochs_reported"] < 20  # pruned after the warm-up epoch


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
        ("", "gamma"), ("0.5", "gamma"), ("a:b", "gamma"), ("0.1:0.2:0.3", "gamma"), ("0.1:", "gamma"),
        ("0:0.9", "gamma"), ("0.9:0.1", "gamma"), ("-0.5:0.5", "gamma"), ("0.5:1.5", "gamma"),
        ("nan:0.5", "gamma"), ("0.1:inf", "lr"), ("0:0.1", "lr"), ("0.1:0.01", "lr"),
        ("0ep:5ep", "step_size"), ("5ep:1ep", "step_size"), ("1ep:20it", "step_size"), ("1.5ep:3ep", "step_size"),
        ("soon:later", "step_size"), ("1ep-20ep", "step_size"),
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
    ("url", "expected"),
    [
        ("postgresql://user:secret@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user@host/db?password=secret&sslmode=require",
         "postgresql://user@host/db?password=***&sslmode=require"),
        ("postgresql://host/db", "postgresql://host/db"),
        ("not a url", "not a url"),
    ],
)
def test_redact(url, expected):
    assert redact(url) == expected


def test_import_is_cheap():
    code = ("import sys, steplr.tune; heavy = [m for m in ('optuna', 'torch', 'sqlalchemy') if m in sys.modules]; "
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- bad input


def run_small(tmp_path: Path, **overrides: Any):
    settings: dict[str, Any] = dict(step_size_range=STEP_RANGE, gamma_range=GAMMA_RANGE, lr_range=None, trials=2,
                                    storage=None, study_name="s", run_dir=tmp_path / "run")
    settings.update(overrides)
    return run_optuna(settings.pop("recipe", "qwerty"), **settings)


@pytest.mark.parametrize("gamma", ["0:0.9", "0.9:0.1"])
def test_bad_gamma_range_fails_before_any_storage_is_touched(tmp_path, gamma):
    with pytest.raises(SweepError, match=f"gamma range '{gamma}'"):
        run_small(tmp_path, gamma_range=gamma)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"trials": 0}, "number of trials 0"),
        ({"recipe": "imagenet"}, "unknown recipe 'imagenet'"),
        ({"lr_range": "0.1"}, "lr range '0.1'"),
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
    with pytest.raises(SweepError, match="no study named 'nope'"):
        open_study("qwerty", "nope", None, tmp_path, create=False)


# --------------------------------------------------------------------------------------------- one worker


def test_resume_continues_to_the_total_and_refuses_other_settings(tmp_path):
    seen: list[int] = []
    study = run_small(tmp_path, trials=3, on_trial=lambda study, trial: seen.append(trial.number))
    assert seen == [0, 1, 2]
    assert (tmp_path / "run" / "optuna-journal.log").is_file()
    assert study.user_attrs == {"recipe": "qwerty", "seed": 0, "step_size_range": "1ep:20ep",
                                "gamma_range": "0.05:0.99", "lr_range": None}
    study = run_small(tmp_path, trials=5)
    check_total(study_rows(study), 5)
    study = run_small(tmp_path, trials=5)  # already done: no new trial
    assert len(study.trials) == 5
    with pytest.raises(SweepError, match="gamma range '0.05:0.99', not '0.1:0.9'"):
        run_small(tmp_path, trials=6, gamma_range="0.1:0.9")
    with pytest.raises(SweepError, match="seed 0, not 1"):
        run_small(tmp_path, trials=6, seed=1)


def test_lr_range_samples_lr_log_uniformly(tmp_path):
    study = run_small(tmp_path, trials=3, lr_range="0.001:0.1", step_size_range="100it:400it")
    rows = study_rows(study)
    assert [row["state"] for row in rows] == ["COMPLETE"] * 3
    for row in rows:
        assert 0.001 <= row["lr"] <= 0.1 and row["step_size"].endswith("it")
    assert study.trials[0].distributions["lr"].log


def test_pruning_uses_the_negated_test_loss(tmp_path):
    study = run_small(tmp_path, trials=12)
    for trial in study.trials:
        assert trial.state.name in ("COMPLETE", "PRUNED")
        losses = [-value for value in trial.intermediate_values.values()]
        assert all(loss > 0 for loss in losses)  # reported as -test_loss
        assert sorted(trial.intermediate_values) == list(range(1, len(losses) + 1))
        if trial.state.name == "COMPLETE":
            assert trial.user_attrs["test_loss"] == pytest.approx(losses[-1])


# --------------------------------------------------------------------------------------------- many workers


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_two_workers_share_one_study(kind, tmp_path, new_postgres_database):
    storage = None if kind == "journal" else new_postgres_database()  # fresh: both race to create the tables
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    shared = dict(trials=12, storage=storage, study="duo", run_dir=str(tmp_path / "run"), barrier=str(barrier),
                  workers=2, epoch_sleep=0.005)
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
    victim = Worker(tmp_path, "victim", trials=6, storage=storage, study="kill", run_dir=str(run_dir),
                    barrier=str(barrier), workers=1, slow_from=2, epoch_sleep=0.25)
    deadline = time.monotonic() + 60
    study = None
    while True:
        assert time.monotonic() < deadline, victim.log()
        assert victim.process.poll() is None, victim.log()
        if study is None:
            try:
                study = open_study(None, "kill", storage, run_dir, create=False)
            except SweepError:
                pass
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
            study = run_small(tmp_path, trials=1, study_name="race",
                              on_trial=lambda study, trial: seen.append(trial.number))
    finally:
        optuna.logging.disable_propagation()
    rows = study_rows(study)
    assert [(row["number"], row["state"], row["note"], row["step_size"]) for row in rows] == [
        (0, "COMPLETE", "", None), (1, "FAIL", "surplus", None)]
    assert seen == []  # a surplus trial is not reported to on_trial
    assert not [record for record in caplog.records if "failed" in record.getMessage()]  # no alarming log
