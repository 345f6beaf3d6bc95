"""Optuna search over StepLR's ``step_size`` and ``gamma`` (and optionally the base LR) for a recipe.

A study lives in a *storage* that any number of workers share; each worker runs
:func:`run_optuna` with the same arguments and they cooperate until the study holds the requested number of
finished (complete or pruned) trials in total:

* ``storage=None``: an Optuna journal file, ``run_dir / "optuna-journal.log"``. Processes on one machine (or on
  machines sharing the folder) can use it at once. A trial whose worker process died on this machine is found
  by its process id, marked failed and queued again. A torn last record (a write cut short by a power loss or a
  full disk) is removed before the file is used, keeping a ``.bak`` copy.
* ``"postgresql://user@host:5432/db"``: PostgreSQL through SQLAlchemy and psycopg 3 (the password from the URL,
  ``PGPASSWORD`` or ``~/.pgpass``). Running trials send heartbeats; a trial silent for ``grace_period`` seconds
  (:data:`GRACE_PERIOD` by default: its worker was killed, lost its connection or was paused) is marked failed by
  the next worker that looks, and a copy with the same parameters is queued (up to :data:`MAX_RETRY` times); a
  trial whose worker process is gone from this machine is failed at once. A worker whose trial was taken over
  while it was paused logs one line and goes on with the next trial. A server that does not answer within
  ``db_timeout`` seconds (:data:`DB_TIMEOUT`), or goes away, stops the search with :class:`StorageLost`: running
  the same call again continues the study.
* Each worker uses torch's default thread count: with several workers on one machine, set
  ``torch.set_num_threads`` (or ``OMP_NUM_THREADS``) so that workers times threads fits the cores.

Storages, their secrets and their failures are handled in :mod:`steplr.experiments.tune_storage`; messages show storage
strings through :func:`redact` only.

What a study tries is a :class:`Space` per setting, parsed by :func:`parse_space`: a range ``LOW:HIGH``
(``step_size`` a whole number of the range's unit, ``"1ep:20ep"`` gives ``"7ep"``; ``gamma`` uniform; ``lr``
log-uniform), a list of choices ``a,b,c`` (one drawn per trial), or one fixed value.

Select on validation, report on test: every trial holds out a validation split of the training set
(``validation``); the study maximises the final *validation* accuracy and its median pruner compares the
per-epoch validation losses. The test set chooses nothing: :func:`confirm_best` retrains the best configs on
several seeds beside a constant LR and compares their *test* accuracies (:mod:`steplr.experiments.paired`).

``import steplr.experiments.tune`` is cheap: Optuna, SQLAlchemy and torch are imported when a function needs them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steplr.experiments.results import Confirmation
from steplr.experiments.tune_storage import (
    CONNECT_TIMEOUT,
    DB_TIMEOUT,
    GRACE_PERIOD,
    JOURNAL_FILE,
    MAX_RETRY,
    StorageLost,
    StudyStorage,
    SweepError,
    redact,
)

if TYPE_CHECKING:
    import optuna

    from steplr.training.config import EpochRecord, History, TrainConfig
    from steplr.training.data import TrainData

__all__ = [
    "SweepError",
    "StorageLost",
    "Abandon",
    "redact",
    "parse_range",
    "parse_space",
    "Space",
    "open_study",
    "storage_errors",
    "run_optuna",
    "study_rows",
    "TrialCounts",
    "count_trials",
    "Confirmation",
    "best_trials",
    "confirm_best",
    "DEFAULT_STEP_SIZE",
    "DEFAULT_GAMMA",
    "STUDY_FORMAT",
    "CONFIRM_SEEDS",
    "recorded_seeds",
    "JOURNAL_FILE",
    "GRACE_PERIOD",
    "DB_TIMEOUT",
    "MAX_RETRY",
    "CONNECT_TIMEOUT",
]

_POLL_SECONDS = 0.5  # how often an idle worker looks again while other workers hold the remaining budget

_RANGE_KINDS = ("step_size", "gamma", "lr")
DEFAULT_STEP_SIZE, DEFAULT_GAMMA = "1ep:20ep", "0.05:0.99"  # searched when not given; lr: the recipe's
# Recorded in every study: version 2 chooses on validation accuracy (earlier studies chose on the test set, and
# their trials cannot be mixed with these).
STUDY_FORMAT = "steplr.optuna/2"
# The study attribute holding how many seeds the last search's report confirmed its best configs on, so that a
# report rebuilt from the study alone retrains on the same seeds and gives the same numbers.
CONFIRM_SEEDS = "confirm_seeds"
# Trial user attributes naming the process that runs a trial (the liveness check by process id). "machine" also
# names the boot and the process-id namespace: a process id identifies a process only within both.
_HOST_ATTR, _PID_ATTR, _MACHINE_ATTR = "host", "pid", "machine"
_SURPLUS_ATTR = "surplus"
_DIVERGED_ATTR = "diverged"

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- ranges


def parse_range(text: str, kind: str) -> tuple[int, int, str] | tuple[float, float]:
    """Parse a search range written ``LOW:HIGH`` for ``kind`` ``"step_size"``, ``"gamma"`` or ``"lr"``.

    * ``step_size``: two durations in one unit: ``"1ep:20ep"`` gives ``(1, 20, "ep")``; ``"1:20ep"`` takes
      the unit from the end that has one; bare counts (``"100:900"``, scheduler steps) give unit ``""``.
    * ``gamma``: ``"0.05:0.99"`` gives ``(0.05, 0.99)``; both ends within (0, 1].
    * ``lr``: ``"1e-3:0.1"`` gives ``(0.001, 0.1)``; both ends finite and > 0 (sampled log-uniformly).

    ``LOW`` may equal ``HIGH`` (a fixed value).

    Raises:
        SweepError: naming ``text``, for anything else (garbage, a reversed range, values out of bounds).
        ValueError: for an unknown ``kind`` (a programming error).
    """
    if kind not in _RANGE_KINDS:
        raise ValueError(f"unknown range kind {kind!r}; expected one of {', '.join(_RANGE_KINDS)}")
    if kind == "step_size":
        return _duration_range(text)
    return _float_range(text, kind)


_EXAMPLES = {"step_size": "1ep:20ep", "gamma": "0.05:0.99", "lr": "0.001:0.1"}


def _split_range(text: object, kind: str) -> tuple[str, str]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise SweepError(f"bad {kind} range {text!r}: expected LOW:HIGH, e.g. {_EXAMPLES[kind]!r}")
    low_text, high_text = text.split(":")
    return low_text.strip(), high_text.strip()


def _float_range(text: str, kind: str) -> tuple[float, float]:
    """``parse_range`` for ``gamma`` and ``lr``."""
    low_text, high_text = _split_range(text, kind)
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise SweepError(
            f"bad {kind} range {text!r}: expected two numbers LOW:HIGH, e.g. {_EXAMPLES[kind]!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SweepError(f"bad {kind} range {text!r}: both ends must be finite numbers")
    if low > high:
        raise SweepError(f"bad {kind} range {text!r}: LOW is greater than HIGH")
    if kind == "gamma" and not (low > 0 and high <= 1):
        raise SweepError(f"bad gamma range {text!r}: gamma must lie in (0, 1] (0 would zero the LR)")
    if kind == "lr" and not low > 0:
        raise SweepError(f"bad lr range {text!r}: learning rates must be > 0")
    return low, high


def _duration_range(text: str) -> tuple[int, int, str]:
    """``parse_range`` for ``step_size``."""
    from steplr.schedules.durations import Duration, parse_duration

    low_text, high_text = _split_range(text, "step_size")
    ends: list[tuple[int, str | None]] = []
    for part in (low_text, high_text):
        try:
            value = parse_duration(part, "step_size")
        except (TypeError, ValueError):
            raise SweepError(
                f"bad step_size range {text!r}: {part!r} is not a positive duration such as '5ep' or '230it'"
            ) from None
        ends.append((value.count, value.unit) if isinstance(value, Duration) else (value, None))
    (low, low_unit), (high, high_unit) = ends
    if low_unit is not None and high_unit is not None and low_unit != high_unit:
        raise SweepError(f"bad step_size range {text!r}: both ends must use the same unit")
    unit = low_unit or high_unit or ""
    if low > high:
        raise SweepError(f"bad step_size range {text!r}: LOW is greater than HIGH")
    return low, high, unit


_LIST_EXAMPLES = {"step_size": "1ep,2ep,5ep", "gamma": "0.1,0.5", "lr": "0.01,0.1"}


@dataclass(frozen=True)
class Space:
    """What a study tries for one setting (``name``: ``"step_size"``, ``"gamma"`` or ``"lr"``).

    ``kind`` ``"range"``: ``values`` is ``(low, high)``; a step size is a whole number of ``unit`` (``""``:
    scheduler steps), a gamma is drawn uniformly, a learning rate log-uniformly. ``"choice"``: ``values`` holds
    the choices, one drawn per trial. ``"fixed"``: ``values`` holds the one value every trial uses.
    """

    name: str
    kind: str
    values: tuple[Any, ...]
    unit: str = ""

    def __str__(self) -> str:
        """The canonical text (``"1ep:20ep"``, ``"1ep,2ep"``, ``"0.5"``): stored in the study, compared on resume."""
        if self.kind == "range" and self.name == "step_size":
            low, high = self.values
            return f"{low}{self.unit}:{high}{self.unit}"
        if self.kind == "range":
            return f"{self.values[0]!r}:{self.values[1]!r}"
        return ",".join(v if isinstance(v, str) else repr(v) for v in self.values)

    def suggest(self, trial: optuna.Trial) -> Any:
        """The value ``trial`` trains with; a range or a choice becomes a parameter of the trial."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.values))
        low, high = self.values
        if self.name == "step_size":
            count = trial.suggest_int(self.name, low, high)
            return f"{count}{self.unit}" if self.unit else count
        return trial.suggest_float(self.name, low, high, log=self.name == "lr")


def parse_space(text: str, kind: str) -> Space:
    """Parse what to try for ``kind``: a range ``LOW:HIGH`` (as :func:`parse_range`), a list ``a,b,c`` or one value.

    Values follow the Python API: a bare step size counts scheduler steps (the command line turns ``5`` into
    ``"5ep"`` before calling this); gammas lie in (0, 1]; learning rates are finite and > 0.

    >>> parse_space("1ep,2ep", "step_size")
    Space(name='step_size', kind='choice', values=('1ep', '2ep'), unit='')
    >>> str(parse_space("1ep:20ep", "step_size")), str(parse_space("0.5", "gamma"))
    ('1ep:20ep', '0.5')

    Raises:
        SweepError: naming ``text``: an empty item, a value repeated or out of bounds, a list mixed with a range.
        ValueError: for an unknown ``kind`` (a programming error).
    """
    if kind not in _RANGE_KINDS:
        raise ValueError(f"unknown range kind {kind!r}; expected one of {', '.join(_RANGE_KINDS)}")
    if not isinstance(text, str) or not text.strip():
        raise SweepError(
            f"bad {kind} {text!r}: expected one value, a list such as {_LIST_EXAMPLES[kind]!r} "
            f"or a range such as {_EXAMPLES[kind]!r}"
        )
    if ":" in text:
        if "," in text:
            raise SweepError(f"bad {kind} {text!r}: write a list (a,b) or a range (LOW:HIGH), not both")
        if kind == "step_size":
            low, high, unit = _duration_range(text)
            return Space(kind, "range", (low, high), unit)
        return Space(kind, "range", _float_range(text, kind))
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise SweepError(f"bad {kind} list {text!r}: an item is empty")
    values = tuple(_one_value(item, kind, text) for item in items)
    if len(set(values)) != len(values):
        raise SweepError(f"bad {kind} list {text!r}: a value is repeated")
    return Space(kind, "fixed" if len(values) == 1 else "choice", values)


def _one_value(item: str, kind: str, text: str) -> int | str | float:
    """One value of a list (or a fixed value) for ``parse_space``."""
    from steplr.schedules.durations import Duration, parse_duration

    if kind == "step_size":
        try:
            value = parse_duration(item, "step_size")
        except (TypeError, ValueError):
            raise SweepError(
                f"bad step_size {text!r}: {item!r} is not a positive duration such as '5ep' or '230it'"
            ) from None
        return str(value) if isinstance(value, Duration) else value
    try:
        number = float(item)
    except ValueError:
        raise SweepError(f"bad {kind} {text!r}: {item!r} is not a number") from None
    if not math.isfinite(number):
        raise SweepError(f"bad {kind} {text!r}: {item!r} is not a finite number")
    if kind == "gamma" and not 0 < number <= 1:
        raise SweepError(f"bad gamma {text!r}: gamma must lie in (0, 1] (0 would zero the LR), got {item!r}")
    if kind == "lr" and not number > 0:
        raise SweepError(f"bad lr {text!r}: learning rates must be > 0, got {item!r}")
    return number


# --------------------------------------------------------------------------------------------- storage


def open_study(
    recipe: str | None,
    study_name: str,
    storage: str | None,
    run_dir: Path,
    create: bool = True,
    *,
    grace_period: float | None = None,
    db_timeout: float | None = None,
) -> optuna.Study:
    """Open (or with ``create=True``, create if missing) the study ``study_name`` for ``recipe``.

    The study maximises the final validation accuracy with a TPE sampler (unseeded, so that workers propose different
    points) and a median pruner that waits one epoch. A new study records ``recipe`` in its user attributes;
    an existing one must have been created for the same recipe (``recipe=None`` skips the check, for reading
    a study whatever it holds). Workers racing to create the same study are safe: one creates it, the others
    load it. ``grace_period`` and ``db_timeout``: as :func:`run_optuna`'s (PostgreSQL only).

    Raises:
        SweepError: for an unknown recipe, a bad or unreachable storage (message with the URL redacted), a damaged
            journal file (naming it), a study that does not exist (``create=False``), or one created for another
            recipe.
    """
    return _open_study(recipe, study_name, storage, run_dir, create, grace_period, db_timeout)[0]


@contextlib.contextmanager
def storage_errors(storage: str | None, run_dir: Path) -> Iterator[None]:
    """Failures of the study storage inside the block (a study being read) as one-line :class:`StorageLost` errors
    naming it, the URL redacted."""
    with StudyStorage(storage, run_dir).errors():
        yield


def _open_study(
    recipe: str | None,
    study_name: str,
    storage: str | None,
    run_dir: Path,
    create: bool,
    grace_period: float | None,
    db_timeout: float | None,
) -> tuple[optuna.Study, StudyStorage]:
    """:func:`open_study`, with the storage that keeps its heartbeats and words its errors."""
    import optuna

    if recipe is not None:
        from steplr.experiments.compare import RECIPES

        if recipe not in RECIPES:
            raise SweepError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    if not isinstance(study_name, str) or not study_name.strip():
        raise SweepError(f"bad study name {study_name!r}: expected a non-empty name")
    handle = StudyStorage(storage, Path(run_dir), grace_period, db_timeout)
    if handle.journal is not None and not create and not handle.journal.is_file():
        raise SweepError(
            f"no study named {study_name!r} in {Path(run_dir)}: the journal file {handle.journal} does not exist"
        )
    backend = handle.open()
    if handle.repaired:
        _log.warning("%s", handle.repaired)
    sampler = optuna.samplers.TPESampler(seed=None)
    # n_warmup_steps=1: no pruning on the first epoch's loss, which says little about the schedule.
    pruner = optuna.pruners.MedianPruner(n_warmup_steps=1)
    with handle.errors(running=False):
        try:
            if create:
                study = optuna.create_study(
                    study_name=study_name,
                    storage=backend,
                    sampler=sampler,
                    pruner=pruner,
                    direction="maximize",
                    load_if_exists=True,
                )
            else:
                study = optuna.load_study(study_name=study_name, storage=backend, sampler=sampler, pruner=pruner)
        except KeyError:
            raise SweepError(f"no study named {study_name!r} in {handle.where}") from None
        if study.directions != [optuna.study.StudyDirection.MAXIMIZE]:
            raise SweepError(f"study {study_name!r} in {handle.where} does not maximise one value: not a steplr study")
        stored = study.user_attrs.get("recipe")
        if recipe is not None:
            if stored is None:
                study.set_user_attr("recipe", recipe)
            elif stored != recipe:
                raise SweepError(f"study {study_name!r} was created for recipe {stored!r}, not {recipe!r}")
    return study, handle


# --------------------------------------------------------------------------------------------- the search


class Abandon(BaseException):
    """Raise it (from ``on_epoch``, or a signal handler) to leave :func:`run_optuna` at once, telling the storage
    nothing: the running trial stays RUNNING until a worker finds its process gone (or its heartbeat stale) and
    fails and retries it. For a worker whose parent died: its study may be locked by the dead process (a journal
    file's lock is released by Optuna only after 30 s), and the next run resumes cleanly anyway."""


class _SurplusTrial(Exception):
    """Raised in a trial that would take the study past its budget: other workers' trials already fill it."""


def _finished_states() -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def _is_surplus(study: optuna.Study, number: int, total: int) -> bool:
    """Whether trial ``number`` would exceed the budget of ``total`` finished trials.

    Counts the finished trials and the live (running or queued) trials numbered before this one. Trial numbers
    follow creation order, so of several trials started at once the earlier ones win, and the study never
    ends with more than ``total`` finished trials, however many workers race.
    """
    from optuna.trial import TrialState

    finished = ahead = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            finished += 1
        elif trial.state in (TrialState.RUNNING, TrialState.WAITING) and trial.number < number:
            ahead += 1
    return finished + ahead >= total


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (True when unsure)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. owned by another user
    try:  # a killed child its parent has not waited for yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _machine() -> str | None:
    """This host, boot and process-id namespace (Linux), within which a process id names one process; else None."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}/{namespace}"


def _requeue(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """Queue a copy of ``failed`` (same parameters), recorded like Optuna's RetryHeartbeatStaleTrialCallback.

    The copy carries the system attributes ``failed_trial`` (the first failed number) and ``retry_history``, so
    ``RetryHeartbeatStaleTrialCallback.retried_trial_number`` works on it; it drops the dead worker's identity.
    """
    import optuna

    system_attrs: dict[str, Any] = {"failed_trial": failed.number, "retry_history": [], **failed.system_attrs}
    history = [*system_attrs["retry_history"], failed.number]
    if len(history) > MAX_RETRY:
        return
    system_attrs["retry_history"] = history
    dropped = (_HOST_ATTR, _PID_ATTR, _MACHINE_ATTR, _SURPLUS_ATTR)
    user_attrs = {k: v for k, v in failed.user_attrs.items() if k not in dropped}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )


def _fail_dead_trials(study: optuna.Study, journal: bool) -> None:
    """Fail (and queue again) running trials whose worker died.

    Trials of this machine whose process is gone, at once: for a journal file, trials of this host (a journal has
    no heartbeats; trials of dead workers on other machines sharing the file stay RUNNING); for PostgreSQL, trials
    of this host, boot and process-id namespace. PostgreSQL also fails trials whose heartbeat is older than the
    grace period (Optuna's check, which queues the retry itself).
    """
    import optuna
    from optuna.trial import TrialState

    from steplr.experiments.tune_storage import _quiet_experimental

    if not journal:
        with _quiet_experimental():
            optuna.storages.fail_stale_trials(study)
    host, machine, me = socket.gethostname(), _machine(), os.getpid()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        pid = attrs.get(_PID_ATTR)
        here = (machine is not None and attrs.get(_MACHINE_ATTR) == machine) or (
            journal and attrs.get(_HOST_ATTR) == host
        )
        if not here or not isinstance(pid, int) or pid == me or _pid_alive(pid):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker failed it first (and queued the copy)
        _log.warning("trial %d: its worker (pid %d) died; failed it and queued a retry", trial.number, pid)
        _requeue(study, trial)


_HELD_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while the storage records that a trial starts or ends, then deliver them.

    A signal landing inside ``study.ask()`` would leave a trial the storage created but this worker never learnt
    of, RUNNING for good; inside ``study.tell()`` it would leave one whose end was never recorded. Held, it is
    raised right after the call, where the trial is known and is failed. (A storage that stops answering delays
    Ctrl-C until the database timeout ends the call.) Only the main thread handles signals: elsewhere, nothing is
    held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    numbers = [getattr(signal, name) for name in _HELD_SIGNALS if hasattr(signal, name)]
    previous = {number: signal.signal(number, hold) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])  # to the handler the command installed: Interrupted, exit 130


def _run_trial(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    handle: StudyStorage,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None,
) -> None:
    """Ask for a trial, run ``objective`` on it with heartbeats, and tell the study how it ended.

    A trial taken over by another worker (this one was silent past the grace period) is logged in one line and
    left to the worker that retries it. A surplus trial ends FAIL quietly. Anything else that stops the objective
    (Ctrl-C, SIGTERM, a bug) fails the trial and is raised, except a failure of the storage itself, which leaves
    the trial to the heartbeat and retry machinery (the storage cannot be told anything), and so does
    :class:`Abandon`.
    """
    import optuna
    from optuna.trial import TrialState

    trial: optuna.Trial | None = None
    value: float | None = None
    try:
        with warnings.catch_warnings(), _signals_held():
            # Optuna warns that heartbeats go with Study.optimize, which starts its own heartbeat thread; this loop
            # replaces optimize (to tell a trial taken over from a failure) and beats with handle.heartbeat below.
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used", UserWarning)
            trial = study.ask()
        with handle.heartbeat(trial._trial_id):
            try:
                value, state = objective(trial), TrialState.COMPLETE
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except _SurplusTrial:
                state = TrialState.FAIL
        with _signals_held():
            frozen: optuna.trial.FrozenTrial | None = study.tell(trial, value, state=state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Another worker failed this trial (and queued its retry) while this one was silent for longer than the
        # grace period: paused (Ctrl-Z, a suspended laptop or VM) or cut off. Normal: the retry carries on.
        frozen = None
    except Abandon:
        raise
    except BaseException as error:
        if trial is not None and handle.translate(error, searching=True) is None:
            with contextlib.suppress(Exception), _signals_held():
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    assert trial is not None  # every way here passed study.ask()
    if frozen is not None and frozen.state != state:
        frozen = None
    if frozen is None:
        _log.warning(
            "trial %d was taken over by another worker: this one was silent for longer than the grace "
            "period (%g s; paused or cut off); going on with the next trial",
            trial.number,
            handle.grace,
        )
    elif on_trial is not None and not frozen.user_attrs.get(_SURPLUS_ATTR):
        on_trial(study, frozen)


def _check_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    """Record the search settings in a new study; refuse to continue one created with other settings."""
    # Trials first, then the attributes: a worker records the format before its first trial, so a study seen with
    # trials is seen with its format (read the other way round, a worker starting beside another could see the
    # other's first trial but not its format, and take the new study for an old one).
    has_trials = bool(study.get_trials(deepcopy=False))
    attrs = study.user_attrs
    if attrs.get("format") != STUDY_FORMAT and ("format" in attrs or has_trials):
        raise SweepError(_older_study(study))
    for key, value in {"format": STUDY_FORMAT, **settings}.items():
        if key not in attrs:
            study.set_user_attr(key, value)
        elif attrs[key] != value:
            raise SweepError(
                f"study {study.study_name!r} was created with {key.replace('_', ' ')} {attrs[key]!r}, "
                f"not {value!r}; use the same settings to continue it, or another study name"
            )


def _older_study(study: optuna.Study) -> str:
    made = study.user_attrs.get("format", "steplr.optuna/1")
    return (
        f"study {study.study_name!r} was made by another version of steplr ({made}, which chose trials on the "
        f"test set), not {STUDY_FORMAT}; use another study name"
    )


def run_optuna(
    recipe: str,
    *,
    step_size: str = DEFAULT_STEP_SIZE,
    gamma: str = DEFAULT_GAMMA,
    lr: str | None = None,
    trials: int,
    storage: str | None,
    study_name: str,
    run_dir: Path,
    seed: int = 0,
    validation: float | None = None,
    epochs: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    on_epoch: Callable[[optuna.Trial, EpochRecord], None] | None = None,
    confirm_seeds: int | None = None,
    grace_period: float | None = None,
    db_timeout: float | None = None,
) -> optuna.Study:
    """Run trials of the study ``study_name`` until it holds ``trials`` finished trials, counting all workers.

    Workers started with the same arguments share the work (module docstring); the study ends with exactly
    ``trials`` complete or pruned trials, and a larger ``trials`` continues it (also after :class:`StorageLost`).

    ``step_size``, ``gamma`` and ``lr`` say what to try (:func:`parse_space`; ``lr=None``: the recipe's). A trial
    trains the recipe at those values (one model, batched engine) and returns its final *validation* accuracy;
    the median pruner sees the negated validation loss of every epoch; a diverged run counts as pruned. Trial user
    attributes: the worker's ``host`` and ``pid``, the values trained, final ``val_acc``/``val_loss`` and, for
    information only, ``test_acc``/``test_loss``; a trial started past the budget ends FAIL with ``surplus=True``.

    Args:
        validation: the held-out share of the training set, in (0, 1) (None: ``DEFAULT_VALIDATION``).
        epochs: the length of every trial (None: the recipe's).
        on_trial, on_epoch: called with ``(study, frozen_trial)`` after each trial this worker finishes, and with
            ``(trial, record)`` after each reported epoch (it may raise ``optuna.TrialPruned``).
        confirm_seeds: the seeds :func:`confirm_best` will use, recorded as :data:`CONFIRM_SEEDS` (None: nothing).
        grace_period: PostgreSQL: seconds a running trial may go without a heartbeat before another worker fails
            and retries it (None: :data:`GRACE_PERIOD`); give every worker of a study the same value.
        db_timeout: PostgreSQL: seconds the server may take to answer one request (None: :data:`DB_TIMEOUT`).

    Raises:
        SweepError: for a bad argument or storage, data that cannot be loaded, a damaged journal file, or a study
            created with other settings (recipe, seed, validation, epochs, spaces).
        StorageLost: the storage failed while searching (server gone, frozen or unreachable; a journal file that
            cannot be written): one line naming it; running the same call again continues the study.
    """
    search = _checked_search(
        recipe, (step_size, gamma, lr), trials, seed, validation, epochs, confirm_seeds, data_dir, download
    )
    study, handle = _open_study(recipe, study_name, storage, Path(run_dir), True, grace_period, db_timeout)
    objective = _Objective(study, search, on_epoch)
    with handle.errors(searching=True):
        _check_settings(study, search.settings)
        if confirm_seeds is not None and study.user_attrs.get(CONFIRM_SEEDS) != confirm_seeds:
            study.set_user_attr(CONFIRM_SEEDS, confirm_seeds)
        while _trial_to_run(study, trials, journal=storage is None):
            _run_trial(study, objective, handle, on_trial)
    return study


@dataclass(frozen=True)
class _Search:
    """What this worker's trials train, checked before the storage is touched: the spaces, the base config (the
    recipe at the search's seed, validation split and epochs), the data, the budget and the settings the study
    records."""

    spaces: list[Space]
    base: TrainConfig
    data: TrainData
    trials: int
    settings: dict[str, Any]


def _checked_search(
    recipe: str,
    spaces: tuple[str, str, str | None],
    trials: int,
    seed: int,
    validation: float | None,
    epochs: int | None,
    confirm_seeds: int | None,
    data_dir: str | os.PathLike[str] | None,
    download: bool,
) -> _Search:
    """:func:`run_optuna`'s inputs checked (in the order of its arguments) and its data loaded."""
    from steplr.experiments.compare import DEFAULT_VALIDATION, recipe_config
    from steplr.training.data import load_dataset, split_validation

    validation = DEFAULT_VALIDATION if validation is None else validation
    step_size, gamma, lr = spaces
    searched = [parse_space(step_size, "step_size"), parse_space(gamma, "gamma")]
    _check_counts(trials, seed, confirm_seeds, validation)
    try:
        base = recipe_config(recipe, schedule="step", seed=seed, validation=validation, epochs=epochs)
        searched.append(parse_space(lr, "lr") if lr is not None else Space("lr", "fixed", (base.lr,)))
        data = load_dataset(base.dataset, data_dir=data_dir, download=download)
        split_validation(data, validation)  # a fraction this training set cannot split fails here, before storage
    except SweepError:
        raise
    except ValueError as error:
        raise SweepError(str(error)) from None
    settings = {"seed": seed, "validation": validation, "epochs": base.epochs, **{s.name: str(s) for s in searched}}
    return _Search(searched, base, data, trials, settings)


def _check_counts(trials: object, seed: object, confirm_seeds: object, validation: object) -> None:
    """The numbers of :func:`run_optuna`, each refused in one line naming it."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials <= 0:
        raise SweepError(f"bad number of trials {trials!r}: expected a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SweepError(f"bad seed {seed!r}: expected an integer")
    if confirm_seeds is not None and (
        isinstance(confirm_seeds, bool) or not isinstance(confirm_seeds, int) or confirm_seeds <= 0
    ):
        raise SweepError(f"bad number of confirmation seeds {confirm_seeds!r}: expected a positive integer")
    if isinstance(validation, bool) or not isinstance(validation, (int, float)) or not 0 < validation < 1:
        raise SweepError(
            f"bad validation {validation!r}: trials are chosen on a validation split, so it must be "
            "a fraction in (0, 1)"
        )


def _trial_to_run(study: optuna.Study, trials: int, journal: bool) -> bool:
    """Whether this worker should start a trial: False once the study holds ``trials`` finished trials. While the
    rest of the budget is in other workers' hands (their trials running, none queued) it waits and looks again;
    each look first fails (and queues again) the trials of dead workers."""
    from optuna.trial import TrialState

    finished_states = _finished_states()
    while True:
        _fail_dead_trials(study, journal=journal)
        all_trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in finished_states for t in all_trials)
        if finished >= trials:
            return False
        running = sum(t.state == TrialState.RUNNING for t in all_trials)
        queued = any(t.state == TrialState.WAITING for t in all_trials)
        if queued or finished + running < trials:
            return True
        time.sleep(_POLL_SECONDS)


class _Objective:
    """One trial of this worker: claim it (or refuse it as surplus), draw its settings, train it with a report to
    the pruner after every epoch, and record its result."""

    def __init__(
        self, study: optuna.Study, search: _Search, on_epoch: Callable[[optuna.Trial, EpochRecord], None] | None
    ) -> None:
        self.study, self.search, self.on_epoch = study, search, on_epoch
        self.host, self.pid, self.machine = socket.gethostname(), os.getpid(), _machine()

    def __call__(self, trial: optuna.Trial) -> float:
        # Every write to the storage holds signals (a record cut in half would leave the trial's end untold);
        # the training between them stays interruptible.
        with _signals_held():
            self._claim(trial)
            values = {space.name: space.suggest(trial) for space in self.search.spaces}
            for name, value in values.items():
                trial.set_user_attr(name, value)
        final = self._train(trial, self.search.base.with_settings(**values)).epochs[-1]
        with _signals_held():
            for name in ("val_acc", "val_loss", "test_acc", "test_loss"):
                trial.set_user_attr(name, float(getattr(final, name)))
        return float(final.val_acc)

    def _claim(self, trial: optuna.Trial) -> None:
        """Name this worker in the trial (the liveness check); refuse a trial past the budget."""
        trial.set_user_attr(_HOST_ATTR, self.host)
        trial.set_user_attr(_PID_ATTR, self.pid)
        if self.machine is not None:
            trial.set_user_attr(_MACHINE_ATTR, self.machine)
        total = self.search.trials
        if _is_surplus(self.study, trial.number, total):
            trial.set_user_attr(_SURPLUS_ATTR, True)
            _log.info("trial %d not run: the study's %d trials are taken by other workers", trial.number, total)
            raise _SurplusTrial(f"trial {trial.number} not run: the study's {total} trials are already taken")

    def _train(self, trial: optuna.Trial, config: TrainConfig) -> History:
        """Train ``config`` alone in the batched engine (faster than the sequential trainer even for one model),
        reporting to the pruner after every epoch."""
        import optuna

        from steplr.training.batched import train_batched

        def after_epoch(records: list[EpochRecord]) -> None:
            (record,) = records
            if not math.isfinite(record.train_loss):
                # The epoch's mean training loss: NaN or infinite as soon as one of its batches was. Nothing of
                # this epoch is reported, as the sequential trainer stopped before reporting it.
                message = f"loss became {record.train_loss} at epoch {record.epoch}: stopped"
                with _signals_held():
                    trial.set_user_attr(_DIVERGED_ATTR, message)
                raise optuna.TrialPruned(f"diverged: {message}")
            # The pruner compares intermediate values in the study's direction, and this study maximises
            # accuracy: report the *negated* validation loss, so that a lower loss counts as better when
            # MedianPruner ranks this trial against the median of the others at the same epoch.
            with _signals_held():
                trial.report(-record.val_loss, record.epoch)
            if self.on_epoch is not None:
                self.on_epoch(trial, record)
            # Not on the last epoch: the run is over, pruning would only throw its result away.
            with _signals_held():
                prune = record.epoch < config.epochs and trial.should_prune()
            if prune:
                raise optuna.TrialPruned(
                    f"epoch {record.epoch}: validation loss {record.val_loss:.4g} above the median"
                )

        return train_batched([config], self.search.data, on_epoch=after_epoch)[0]


# --------------------------------------------------------------------------------------------- reading


def _trained(trial: optuna.trial.FrozenTrial) -> tuple[Any, Any, Any]:
    """The (step_size, gamma, lr) a trial trained with (None where it never got that far)."""
    attrs, params = trial.user_attrs, trial.params
    return tuple(attrs.get(name, params.get(name)) for name in ("step_size", "gamma", "lr"))  # type: ignore[return-value]


def study_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial, by number: ``number``, ``state`` (``"COMPLETE"``, ``"PRUNED"``, ...), ``step_size``
    (text, e.g. ``"7ep"``), ``gamma``, ``lr``, ``val_acc`` (the final validation accuracy the study maximises, or
    None), ``test_acc_info`` (the final test accuracy, for information only: nothing is chosen or pruned on it;
    or None), ``epochs_reported``, plus ``worker`` (``host:pid``),
    ``retry_of`` (the number of the trial it repeats after its worker died, or None) and ``note``
    (``"surplus"``, ``"diverged"`` or ``""``).
    """
    rows = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        attrs = trial.user_attrs
        step_size, gamma, lr = _trained(trial)
        worker = f"{attrs[_HOST_ATTR]}:{attrs[_PID_ATTR]}" if _HOST_ATTR in attrs and _PID_ATTR in attrs else None
        note = "surplus" if attrs.get(_SURPLUS_ATTR) else "diverged" if _DIVERGED_ATTR in attrs else ""
        complete = trial.state.name == "COMPLETE"
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "step_size": None if step_size is None else str(step_size),
                "gamma": gamma,
                "lr": lr,
                # Only a complete trial's value is an accuracy (Optuna gives a pruned trial its last report).
                "val_acc": trial.value if complete else None,
                "test_acc_info": attrs.get("test_acc") if complete else None,
                "epochs_reported": len(trial.intermediate_values),
                "worker": worker,
                "retry_of": trial.system_attrs.get("failed_trial"),
                "note": note,
            }
        )
    return rows


@dataclass(frozen=True)
class TrialCounts:
    """How a study's trials ended. The budget (``trials``) counts the finished ones: complete, pruned, diverged."""

    complete: int
    pruned: int  # stopped early by the median pruner
    diverged: int  # their loss became NaN or infinite (Optuna state PRUNED, user attribute "diverged")
    failed: int  # their worker died (a copy was queued) or an error stopped them
    surplus: int  # started when other workers' trials already filled the budget: never trained
    unfinished: int  # running or queued

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.diverged

    def __str__(self) -> str:
        """One sentence, the same wherever a study is summed up (console, report)."""
        text = (
            f"{self.finished} finished trials ({self.complete} complete, {self.pruned} pruned, "
            f"{self.diverged} diverged), {self.failed} failed"
        )
        if self.surplus:
            text += f", {self.surplus} surplus (not run: the budget was already taken)"
        if self.unfinished:
            text += f", {self.unfinished} still running or queued"
        return text


def count_trials(study: optuna.Study) -> TrialCounts:
    """Count ``study``'s trials by how they ended (see :class:`TrialCounts`)."""
    found = dict.fromkeys(("complete", "pruned", "diverged", "failed", "surplus", "unfinished"), 0)
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        if state == "COMPLETE":
            found["complete"] += 1
        elif state == "PRUNED":
            found["diverged" if _DIVERGED_ATTR in trial.user_attrs else "pruned"] += 1
        elif state == "FAIL":
            found["surplus" if trial.user_attrs.get(_SURPLUS_ATTR) else "failed"] += 1
        else:
            found["unfinished"] += 1
    return TrialCounts(**found)


# --------------------------------------------------------------------------------------------- the verdict


def _settings(study: optuna.Study) -> dict[str, Any]:
    """The settings a study was created with (see :func:`run_optuna`); refuses a study of another version."""
    if study.user_attrs.get("format") != STUDY_FORMAT:
        raise SweepError(_older_study(study))
    return dict(study.user_attrs)


def recorded_seeds(study: optuna.Study) -> int | None:
    """How many seeds the study's last search confirmed its best configs on (None: not recorded, a study made
    before steplr recorded it, or searched only through :func:`run_optuna` without ``confirm_seeds``)."""
    value = study.user_attrs.get(CONFIRM_SEEDS)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def best_trials(study: optuna.Study, limit: int = 5) -> list[optuna.trial.FrozenTrial]:
    """Up to ``limit`` complete trials of distinct (step_size, gamma, lr), by final validation accuracy (the
    study's value), best first; equal values keep the earlier trial first."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None]
    found: list[optuna.trial.FrozenTrial] = []
    seen: set[tuple[str, float, float]] = set()
    for trial in sorted(complete, key=lambda t: (-float(t.value), t.number)):  # type: ignore[arg-type]
        step_size, gamma, lr = _trained(trial)
        key = (str(step_size), float(gamma), float(lr))
        if key not in seen:
            seen.add(key)
            found.append(trial)
        if len(found) == limit:
            break
    return found


def confirm_best(
    study: optuna.Study,
    data: TrainData,
    seeds: Sequence[int],
    limit: int = 5,
    on_epoch: Callable[[int], None] | None = None,
) -> Confirmation:
    """Retrain the study's best configs (:func:`best_trials`) on ``seeds`` beside a constant LR and compare them.

    Every config and, for each of their base LRs, a constant LR (schedule ``"none"``) train on every seed in
    one batch (:func:`steplr.training.batched.train_batched`), with the study's recipe, epochs and validation split. The
    study chose the configs on validation accuracy; the comparison uses the test set only. ``on_epoch``: called
    with the epoch's number (1-based) after every epoch, for progress.

    Raises:
        SweepError: for a study without complete trials or made by another version of steplr.
    """
    from steplr.experiments.compare import recipe_config
    from steplr.experiments.paired import still_falling
    from steplr.experiments.results import SeedRun, pair_runs
    from steplr.training.batched import train_batched
    from steplr.training.data import split_validation

    settings = _settings(study)
    chosen = best_trials(study, limit)
    if not chosen:
        raise SweepError(f"study {study.study_name!r} has no complete trials yet")
    if not seeds:
        raise SweepError("confirming the best configs needs at least one seed")
    base = recipe_config(settings["recipe"], validation=settings["validation"], epochs=settings["epochs"])
    configs = [
        base.with_settings(schedule="step", step_size=step_size, gamma=gamma, lr=lr, seed=seed)
        for step_size, gamma, lr in map(_trained, chosen)
        for seed in seeds
    ]
    lrs = list(dict.fromkeys(float(_trained(t)[2]) for t in chosen))
    configs += [base.with_settings(schedule="none", lr=lr, seed=seed) for lr in lrs for seed in seeds]
    histories = train_batched(
        configs, data, on_epoch=None if on_epoch is None else lambda records: on_epoch(records[0].epoch)
    )
    n = len(seeds)
    runs = [histories[i * n : (i + 1) * n] for i in range(len(chosen))]
    baselines = {lr: histories[(len(chosen) + j) * n : (len(chosen) + j + 1) * n] for j, lr in enumerate(lrs)}
    candidates = []
    for trial, run in zip(chosen, runs):
        step_size, gamma, lr = _trained(trial)
        identity = {
            "schedule": "step",
            "trial": trial.number,
            "step_size": step_size,
            "gamma": float(gamma),
            "lr": float(lr),
            "trial_val_acc": float(trial.value),  # type: ignore[arg-type]
        }
        candidates.append((identity, [SeedRun.of(h) for h in run], [SeedRun.of(h) for h in baselines[float(lr)]]))
    rows = pair_runs(candidates)
    falling = {lr: still_falling([h.column("val_loss") for h in runs_]) for lr, runs_ in baselines.items()}
    batches = -(-split_validation(data, base.validation).x_train.shape[0] // base.batch_size)
    return Confirmation(rows, list(seeds), base, batches, {lr: f for lr, f in falling.items() if f is not None})
