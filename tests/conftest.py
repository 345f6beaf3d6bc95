"""Shared fixtures: a throwaway PostgreSQL 15 server on the loopback interface, for the Optuna storage tests."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/steplr_test`` on a fresh cluster, removed after the session.

    Trust authentication, fsync off, listening on 127.0.0.1 only (its Unix socket in the cluster's folder).
    """
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not (initdb.is_file() and pg_ctl.is_file()):
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (install postgresql-15 or set STEPLR_PG_BIN)")
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="steplr-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=PG_USER)
    data, log = root / "data", root / "server.log"
    port = _free_port()
    started = False
    try:
        _run([str(initdb), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
              "--no-sync"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        _run([str(pg_ctl), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "30", "start"])
        started = True
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute("CREATE DATABASE steplr_test")
        yield f"postgresql://postgres@127.0.0.1:{port}/steplr_test"
    finally:
        if started:
            subprocess.run(_as_cluster_owner([str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


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
