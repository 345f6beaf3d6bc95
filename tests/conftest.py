"""Shared fixtures: a throwaway PostgreSQL 15 server on the loopback interface, for the Optuna storage tests; and
the one place that marks integration tests (``make test-fast`` runs the rest: ``-m "not integration"``)."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PG_BIN = Path(os.environ.get("STEPLR_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # the OS user that owns the cluster (PostgreSQL refuses to run as root)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_cluster_owner(argv: list[str]) -> list[str]:
    """Run ``argv`` as the ``postgres`` OS user when the tests run as root, else as the current user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *argv]
    return argv


def _run(argv: list[str]) -> None:
    done = subprocess.run(_as_cluster_owner(argv), capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


class Cluster:
    """A throwaway PostgreSQL 15 cluster in a temporary folder, listening on 127.0.0.1 only (its Unix socket in the
    cluster's folder), fsync off; one database ``steplr_test``. A test may stop it, freeze it (SIGSTOP the postmaster
    and every backend: the kernel still accepts connections and acknowledges packets, nothing answers), thaw it and
    start it again. ``password``: scram-sha-256 authentication for user ``postgres`` with that password (else trust).
    """

    def __init__(self, password: str | None = None) -> None:
        initdb, self.pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
        if not (initdb.is_file() and self.pg_ctl.is_file()):
            pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (install postgresql-15 or set STEPLR_PG_BIN)")
        self.password = password
        self.root = Path(tempfile.mkdtemp(prefix="steplr-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, user=PG_USER)
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = _free_port()
        self.running = False
        self.frozen: list[int] = []
        auth = ["-A", "trust"]
        if password is not None:
            pwfile = self.root / "password"
            pwfile.write_text(password + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, user=PG_USER)
            auth = ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
        _run([str(initdb), "-D", str(self.data), *auth, "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        self.start()
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", password=password, autocommit=True
        ) as connection:
            connection.execute("CREATE DATABASE steplr_test")

    def url(self, database: str = "steplr_test") -> str:
        """The database's URL, without a password."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run([str(self.pg_ctl), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start"])
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """``pg_ctl stop -m MODE``: ``immediate`` is a crash as far as clients can tell (no goodbye)."""
        self.thaw()
        _run([str(self.pg_ctl), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"])
        self.running = False

    def processes(self) -> list[int]:
        """The postmaster's process id, then its children's."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "stat").read_text().rpartition(")")[2].split()[1] == str(postmaster):
                        children.append(int(entry.name))
                except (OSError, IndexError):
                    continue
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the postmaster first (no new backends), then every backend, until none is left running."""
        while True:
            fresh = [pid for pid in self.processes() if pid not in self.frozen]
            if not fresh:
                return
            for pid in fresh:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    # A backend may end between the listing and the signal (a client disconnecting); the
                    # postmaster is stopped first, so it cannot be the one gone.
                    if pid == fresh[0] and not self.frozen:
                        raise
                self.frozen.append(pid)

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def remove(self) -> None:
        self.thaw()
        if self.running:
            subprocess.run(
                _as_cluster_owner([str(self.pg_ctl), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/steplr_test`` on a fresh cluster (trust authentication), removed
    after the session."""
    cluster = Cluster()
    try:
        yield cluster.url()
    finally:
        cluster.remove()


@pytest.fixture
def make_pg_cluster() -> Iterator[Callable[..., Cluster]]:
    """A factory of clusters of this test's own (``Cluster``'s arguments), removed after it."""
    clusters: list[Cluster] = []

    def make(**options: Any) -> Cluster:
        clusters.append(Cluster(**options))
        return clusters[-1]

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.remove()


@pytest.fixture
def pg_cluster(make_pg_cluster: Callable[..., Cluster]) -> Cluster:
    """A cluster of this test's own, which it may stop, freeze (SIGSTOP), thaw and restart; removed after it."""
    return make_pg_cluster()


_database_numbers = itertools.count(1)


@pytest.fixture
def new_postgres_database(postgres_url: str) -> Callable[[], str]:
    """A factory of URLs of new, empty databases on the session's server (no Optuna tables yet)."""
    import psycopg

    server, _, _ = postgres_url.rpartition("/")

    def create() -> str:
        name = f"steplr_{os.getpid()}_{next(_database_numbers)}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"{server}/{name}"

    return create


# ------------------------------------------------------------------------------------------ integration marker

# A test is an integration test when it uses a PostgreSQL server, lives in a module of them, starts a process or
# sends a signal in its own body, or is named below (a helper does that for it, or it runs a command for long).
_SERVER_FIXTURES = {"postgres_url", "make_pg_cluster", "pg_cluster", "new_postgres_database"}
_INTEGRATION_MODULES = {"test_lightning.py", "test_ignite.py", "test_hf_trainer.py"}  # third-party training loops
_PROCESS_CALLS = ("subprocess.", "os.kill(", ".send_signal(")
_INTEGRATION_TESTS = {
    "test_cli_optuna.py": {  # helper processes
        "test_two_local_workers_share_the_study_with_the_flags_as_typed",
        "test_helpers_end_with_the_main_process",
    },
    "test_cli_runs.py": {  # the real Fashion-MNIST; the longest train and compare runs
        "test_the_real_fashion_mnist_protocol",
        "test_compare_takes_every_override_and_shows_the_plans",
        "test_resume_starts_over_without_a_checkpoint_and_extends_a_finished_run",
        "test_train_overrides_are_saved_and_a_full_folder_is_refused",
        "test_plan_warnings_print_before_training_and_the_report_repeats_them",
        "test_bare_durations_are_epochs_and_plan_warnings_go_to_stderr",
        "test_train_resume_completes_a_run",
        "test_bad_config_leaves_no_trace_and_force_keeps_a_good_run",
    },
    "test_hostile.py": {  # a process through _closed_pipe(); the largest seed's run
        "test_explain_into_a_closed_pipe_exits_quietly",
        "test_train_into_a_closed_pipe_stops_in_one_line_and_can_resume",
        "test_the_largest_seed_trains",
    },
    "test_tune.py": {"test_a_trial_started_after_the_budget_is_taken_ends_as_surplus"},  # waits on a thread
}


def _is_integration(item: pytest.Item) -> bool:
    module = item.path.name
    function = getattr(item, "function", None)
    if module in _INTEGRATION_MODULES or _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    if getattr(item, "originalname", item.name) in _INTEGRATION_TESTS.get(module, ()):
        return True
    try:
        body = inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        body = ""
    return any(call in body for call in _PROCESS_CALLS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_integration(item):
            item.add_marker(pytest.mark.integration)


# ------------------------------------------------------------------------------------------ shared test data

# Storage strings a user may type, most of them malformed, each with the secrets it holds (as typed and decoded).
# Hosts are 127.0.0.1 port 1 where there is one: nothing listens there, so nothing is ever reached.
SECRET_SHAPES = [
    ("me:hunter2@127.0.0.1:1/db", ["hunter2"]),  # no scheme
    ("postgresql:/me:hunter2@127.0.0.1:1/db", ["hunter2"]),  # one slash
    ("postgresql:me:hunter2@127.0.0.1:1/db", ["hunter2"]),  # no slash
    ("postgresql//me:hunter2@127.0.0.1:1/db", ["hunter2"]),  # no colon
    ("postgresql://me:hun ter2@127.0.0.1:1/db", ["hun ter2", "ter2"]),  # a space
    ("  postgresql://me:hunter2@127.0.0.1:1/db  ", ["hunter2"]),  # spaces around
    ("postgresql://me:hunter2@127.0.0.1:1/db\n", ["hunter2"]),
    ("postgresql://me:hun@ter2@127.0.0.1:1/db", ["hun@ter2", "ter2"]),  # '@' in the password
    ("postgresql://me:hunter2/x@127.0.0.1:1/db", ["hunter2"]),  # '/' in the password
    ("postgresql://me:hunter2?x@127.0.0.1:1/db", ["hunter2"]),  # '?' in the password
    ("postgresql://me:hunter2#x@127.0.0.1:1/db", ["hunter2"]),  # '#' in the password
    ("postgresql://me:hunter%32@127.0.0.1:1/db", ["hunter%32", "hunter2"]),  # percent-encoded
    ("postgresql://:hunter2@127.0.0.1:1/db", ["hunter2"]),  # no user
    ("postgresql://me:hunter2@127.0.0.1:abc/db", ["hunter2"]),  # a bad port
    ("postgresql://me:hunter2@[::1/db", ["hunter2"]),  # a bad IPv6 host
    ("postgresql://me:hunter2@127.0.0.1:1/db?x=a@b", ["hunter2"]),  # '@' in the query
    ("postgresql://me@127.0.0.1:1/db?password=hunter2", ["hunter2"]),  # query password
    ("postgresql://me@127.0.0.1:1/db?sslmode=disable&PASSWORD=hunter2&application_name=x", ["hunter2"]),
    ("postgresql://me@127.0.0.1:1/db?pass%77ord=hunter2", ["hunter2"]),  # percent-encoded key
    ("postgresql://me@127.0.0.1:1/db?password=hun ter2&sslmode=disable", ["hun ter2", "ter2"]),
    ("postgresql://me@127.0.0.1:1/db?password=hunter2@x", ["hunter2"]),
    ("postgresql://me:hunter2@127.0.0.1:1/db?password=hunter3", ["hunter2", "hunter3"]),
    ("POSTGRESQL://me:hunter2@127.0.0.1:1/db", ["hunter2"]),  # well-formed: refused by the server's port
    ("mysql://me:hunter2@127.0.0.1:1/db", ["hunter2"]),
    ("me:hunter2@://x", ["hunter2"]),  # a "scheme" made of the secret
    ("host=127.0.0.1 port=1 user=me password=hunter2 dbname=db", ["hunter2"]),  # libpq's key=value form
    ("host=127.0.0.1 password='hun ter2' dbname=db", ["hun ter2", "ter2"]),
    ("host=127.0.0.1 sslpassword=hunter2", ["hunter2"]),
]
