"""Where an Optuna study lives, for :mod:`steplr.experiments.tune`: storage URLs and their secrets, PostgreSQL
connections that fail in bounded time, journal files that survive a torn write, and one-line errors for all of it.

* **Secrets.** :func:`redact` hides anything that looks like ``user:secret@`` or a ``password=`` item in any storage
  string, well-formed or not; every message built here shows storages through it. A password given in the URL
  is handed to the driver as a separate argument, never inside a URL string a library could print.
* **PostgreSQL.** Connections use TCP keepalives, ``connect_timeout`` and server-side ``statement_timeout`` /
  ``idle_in_transaction_session_timeout``; a *watchdog* thread shuts the socket of any request the server has not
  answered within ``db_timeout`` seconds (a stopped or frozen server, where no server-side timeout can fire and
  the kernel still acknowledges every packet), after which every further connection attempt fails at once.
* **Journal files.** :func:`repair_journal` drops a torn last record (power loss, full disk) before the file is
  appended to, keeping a ``.bak`` copy; any other damage is an error naming the file and the line.

A storage that fails while a search runs raises :class:`StorageLost` ("rerun the same command to continue").

May import: the standard library at module level; optuna, sqlalchemy and psycopg inside functions only (``import
steplr.experiments.tune`` stays cheap).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import shutil
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from steplr.errors import SteplrValueError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "SweepError",
    "StorageLost",
    "redact",
    "shown",
    "StorageURL",
    "parse_storage_url",
    "storage_problem",
    "StudyStorage",
    "repair_journal",
    "JOURNAL_FILE",
    "GRACE_PERIOD",
    "DB_TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_RETRY",
    "heartbeat_interval",
    "check_seconds",
]

JOURNAL_FILE = "optuna-journal.log"
# A running PostgreSQL trial writes a heartbeat every heartbeat_interval(grace) seconds; one silent for longer than
# the grace period is failed (and retried) by the next worker that looks. A minute rides out a laptop's Ctrl-Z or a
# short VM pause; a worker paused for longer finds its trial taken over and goes on with the next one.
GRACE_PERIOD = 60.0
DB_TIMEOUT = 30.0  # seconds the database server may take to answer one request before the search stops
CONNECT_TIMEOUT = 10  # seconds to wait for a new connection (at most DB_TIMEOUT; libpq counts whole seconds, >= 2)
MAX_RETRY = 3  # copies queued for one trial whose worker died, before giving up on those parameters
_SETUP_ATTEMPTS = 5  # schema creation races between workers starting together on a fresh database
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_log = logging.getLogger(__name__)
_URL_HELP = "postgresql://user@host:port/db URL (the password in PGPASSWORD or ~/.pgpass)"
_RERUN = "rerun the same command to continue"


class SweepError(SteplrValueError):
    """A problem with a sweep's input or storage, worded for the user (storage strings in it are redacted)."""


class StorageLost(SweepError):
    """The study storage failed while a search was running (server stopped, frozen or unreachable; a journal file
    that cannot be written). The study keeps what was finished: running the same command again continues it."""


def check_seconds(value: object, name: str) -> float:
    """``value`` as a positive finite number of seconds, or a SweepError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise SweepError(f"bad {name} {value!r}: expected a positive number of seconds")
    return float(value)


def heartbeat_interval(grace: float) -> float:
    """Seconds between a trial's heartbeats for a grace period of ``grace`` seconds: four beats per grace period,
    at most one every 10 s (a tiny UPDATE per trial)."""
    return min(10.0, grace / 4)


# --------------------------------------------------------------------------------------------- secrets


_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]*:/+")
_ITEM_KEY = re.compile(r"(?:^|(?<=[\s&?;]))([^\s&?;=]+)\s*=\s*")
_SECRET_KEYS = ("password", "sslpassword", "pgpassword")


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where the secrets of ``text`` are: merged, sorted ``(start, end)`` spans.

    The user-info password runs from the first ``:`` after the scheme (if any) to the *last* ``@`` (a password
    may hold unescaped ``@``, ``/``, ``?`` or spaces); a ``password=`` item's value runs to the closing quote, the
    next ``&`` or the next ``key=`` item. Both are computed on the whole text and merged, so odd mixtures of the
    two hide too much rather than too little.
    """
    spans: list[tuple[int, int]] = []
    head, at, _ = text.rpartition("@")
    if at:
        scheme = _SCHEME.match(head)
        colon = head.find(":", scheme.end() if scheme else 0)
        if colon >= 0:
            spans.append((colon + 1, len(head)))
    keys = list(_ITEM_KEY.finditer(text))
    for index, key in enumerate(keys):
        if unquote(key.group(1)).strip().lower() not in _SECRET_KEYS:
            continue
        start = key.end()
        if text.startswith("'", start):
            closing = re.compile(r"'(?:[^'\\]|\\.)*'?").match(text, start)
            end = closing.end() if closing else len(text)
        else:
            end = keys[index + 1].start(1) if index + 1 < len(keys) else len(text)
            ampersand = text.find("&", start, end)
            end = ampersand if ampersand >= 0 else start + len(text[start:end].rstrip())
        spans.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact(text: str) -> str:
    """``text`` (a storage string, well-formed or not) with every password replaced by ``***``.

    Anything that looks like ``user:secret@`` loses its secret (up to the last ``@``), and so does every
    ``password=`` item (a URL's query or libpq's ``key=value`` form, percent-encoded keys included).

    >>> redact("postgresql://user:secret@host:5432/db")
    'postgresql://user:***@host:5432/db'
    >>> redact("me:p@ss@host/db"), redact("postgresql://me@host/db?password=secret&sslmode=require")
    ('me:***@host/db', 'postgresql://me@host/db?password=***&sslmode=require')

    Text without a secret comes back unchanged.
    """
    text = str(text)
    parts, position = [], 0
    for start, end in _secret_spans(text):
        parts += [text[position:start], "***"]
        position = end
    return "".join(parts) + text[position:]


def shown(text: object) -> str:
    """How a storage string appears in a message: redacted, stripped, control characters escaped (one line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in redact(str(text)).strip())


def _secrets(text: str) -> list[str]:
    """The secrets of ``text`` as written and percent-decoded, longest first (to scrub them from driver messages)."""
    found = {piece for start, end in _secret_spans(text) for piece in (text[start:end], unquote(text[start:end]))}
    return sorted((piece for piece in found if piece), key=len, reverse=True)


def _scrub(message: str, secrets: list[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, "***")
    return redact(message)


# --------------------------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class StorageURL:
    """A PostgreSQL storage URL taken apart (``postgresql://user:password@host:port/db?key=value``).

    ``query`` holds libpq connection parameters (``sslmode``, ``host`` for a socket folder, ...); a ``password``
    in the user part or in the query ends up in ``password`` only. Values are percent-decoded.
    """

    text: str
    host: str | None
    port: int | None
    user: str | None
    database: str | None
    query: tuple[tuple[str, str], ...] = ()
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return redact(self.text)


def storage_problem(text: object) -> str | None:
    """What is wrong with the storage string ``text`` (never quoting a secret), or None if it is a usable URL."""
    try:
        parse_storage_url(text)
    except _BadStorage as error:
        return error.reason
    return None


class _BadStorage(SweepError):
    def __init__(self, text: object, reason: str, kind: str = "bad") -> None:
        super().__init__(f"{kind} storage {shown(text)!r}: {reason}")
        self.reason = reason


def parse_storage_url(text: object) -> StorageURL:
    """Take a PostgreSQL storage URL apart, checking its scheme and port.

    The user part runs to the last ``@`` (a password may hold an unescaped ``@``); a port must be a whole number
    in 1-65535; a missing host means libpq's default (a local socket).

    Raises:
        SweepError: naming the storage (redacted) and what is wrong; a secret is never quoted.
    """
    if not isinstance(text, str) or "://" not in text:
        raise _BadStorage(
            text, f"expected a {_URL_HELP}, or no storage for a journal file in the run folder", "unsupported"
        )
    scheme, _, rest = text.strip().partition("://")
    if scheme.lower() not in POSTGRES_SCHEMES:
        named = (
            f"scheme {scheme!r} is not supported" if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) else "not a URL"
        )
        raise _BadStorage(text, f"{named}; use a {_URL_HELP}", "unsupported")
    userinfo, at, hostpart = rest.rpartition("@")
    hostpath, _, query_text = hostpart.partition("?")
    hostport, _, database = hostpath.partition("/")
    host, port_text = hostport, None
    if hostport.startswith("["):  # [IPv6]:port
        bracket = hostport.find("]")
        if bracket < 0:
            raise _BadStorage(text, f"the host {hostport!r} lacks its closing ']'")
        host, after = hostport[1:bracket], hostport[bracket + 1 :]
        if after:
            if not after.startswith(":"):
                raise _BadStorage(text, f"unexpected {after!r} after the host [{host}]")
            port_text = after[1:]
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
            raise _BadStorage(text, f"the port {port_text!r} is not a whole number in 1-65535")
        port = int(port_text)
    user, colon, password = userinfo.partition(":") if at else ("", "", "")
    query, secret = [], unquote(password) if colon else None
    for key, value in parse_qsl(query_text, keep_blank_values=True):
        if key.strip().lower() == "password":
            secret = value
        else:
            query.append((key, value))
    return StorageURL(
        text, unquote(host) or None, port, unquote(user) or None, unquote(database) or None, tuple(query), secret
    )


# --------------------------------------------------------------------------------------------- journal files


def repair_journal(path: Path) -> str | None:
    """Drop a torn last record from the journal file ``path`` (a write cut short by a power loss or a full disk),
    keeping the damaged file as ``path.bak`` (or ``.bak.2``, ...); return one line saying what was done, or None
    when the file is missing or whole.

    A last line that is a complete record missing only its newline gets the newline instead. The check holds the
    journal's own lock (Optuna's ``JournalFileSymlinkLock``), so a record another worker is appending at that
    moment is never taken for a torn one. Studies opened by steplr also check before each append (a worker that
    died mid-write while others go on).
    """
    path = Path(path)
    if not _torn(path):
        return None
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        return _repair_locked(path)
    finally:
        lock.release()


def _repair_locked(path: Path) -> str | None:
    """:func:`repair_journal` for a caller that holds the journal's lock."""
    if not _torn(path):
        return None  # another worker was writing that record
    with open(path, "rb") as stream:
        data = stream.read()
    keep = data.rfind(b"\n") + 1
    tail = data[keep:]
    backup = path.with_name(path.name + ".bak")
    number = 2
    while backup.exists():
        backup, number = path.with_name(f"{path.name}.bak.{number}"), number + 1
    shutil.copy2(path, backup)
    try:
        whole = isinstance(json.loads(tail), dict)
    except ValueError:
        whole = False
    with open(path, "r+b") as stream:
        if whole:
            stream.seek(0, os.SEEK_END)
            stream.write(b"\n")
        else:
            stream.truncate(keep)
        stream.flush()
        os.fsync(stream.fileno())
    if whole:
        return f"the journal file {path} ended without its last newline: added it (the file as found is {backup})"
    return (
        f"the journal file {path} ended in a torn record ({len(tail)} bytes, from a write cut short by a power "
        f"loss or a full disk): removed it (the file as found is {backup})"
    )


def _journal_backend(path: Path) -> Any:
    """Optuna's journal file backend, repairing a torn last record under its lock before every append: a record
    appended to a torn one would make the file unreadable for every worker, for ever."""
    from optuna.storages.journal import JournalFileBackend

    class RepairingBackend(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            # As JournalFileBackend.append_logs (Optuna 4-5), with the repair inside the same lock.
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            self._lock.acquire()
            try:
                repaired = _repair_locked(path)
                with open(path, "ab") as stream:
                    stream.write(text.encode("utf-8"))
                    stream.flush()
                    os.fsync(stream.fileno())
            finally:
                self._lock.release()
            if repaired:
                _log.warning("%s", repaired)

    return RepairingBackend(str(path))


def _torn(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            if stream.seek(0, os.SEEK_END) == 0:
                return False
            stream.seek(-1, os.SEEK_END)
            return stream.read(1) != b"\n"
    except FileNotFoundError:
        return False


def _journal_damage(path: Path) -> str:
    """Where the journal file is damaged, e.g. ``"line 7 of 12 is not a JSON record"``."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as error:
        return error.strerror or str(error)
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        return f"line {number} of {len(lines)} is not a JSON record"
    return "a record does not fit the ones before it"


# --------------------------------------------------------------------------------------------- PostgreSQL


class _Watchdog:
    """Gives up on a server that leaves a request unanswered for ``timeout`` seconds.

    A daemon thread looks at every connection of one engine a few times a second. A connection that is busy (its
    lock held: psycopg holds it from sending a request until the answer is in) with no new statement started since
    it was first seen busy, for ``timeout`` seconds, has its socket shut down: the blocked call returns at once with
    an error. (Looking at the lock, not at libpq's state, means never calling into libpq beside a thread that may
    be closing the connection.)
    From then on the server counts as gone: every connection's socket is shut and new connections fail at once,
    so a worker stops within about ``timeout`` seconds however many requests it had in flight.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reason = f"the server did not answer for {timeout:g} s (stopped, frozen or unreachable)"
        self.fired = False
        self._lock = threading.Lock()
        self._connections: list[weakref.ref[Any]] = []
        self._statements: dict[int, int] = {}  # id(connection) -> statements started
        self._seen: dict[int, tuple[int, float]] = {}  # id(connection) -> (statements, first seen ACTIVE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, engine: Any) -> None:
        """Watch the connections ``engine`` opens from now on."""
        from sqlalchemy import event

        event.listen(engine, "do_connect", self._refuse_when_gone)
        event.listen(engine, "connect", lambda connection, _record: self._track(connection))
        event.listen(engine, "checkout", lambda connection, _record, _proxy: self._started(connection))
        event.listen(engine, "before_cursor_execute", lambda _c, cursor, *_: self._started(cursor.connection))

    def stop(self) -> None:
        self._stop.set()

    def _refuse_when_gone(self, *_: Any) -> None:
        if self.fired:
            import psycopg

            raise psycopg.OperationalError(self.reason)

    def _track(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(weakref.ref(connection))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="steplr-db-watchdog", daemon=True)
                self._thread.start()

    def _started(self, connection: Any) -> None:
        with self._lock:
            self._statements[id(connection)] = self._statements.get(id(connection), 0) + 1

    def _watch(self) -> None:
        step = min(0.5, self.timeout / 8)
        while not self._stop.wait(step):
            now = time.monotonic()
            with self._lock:
                self._connections = [ref for ref in self._connections if ref() is not None]
                connections = [c for c in (ref() for ref in self._connections) if c is not None]
            for connection in connections:
                key = id(connection)
                lock = connection.lock
                active = not lock.acquire(blocking=False)
                if not active:
                    lock.release()
                if not active and not self.fired:
                    self._seen.pop(key, None)
                    continue
                count = self._statements.get(key, 0)
                first = self._seen.get(key)
                if first is None or first[0] != count:
                    self._seen[key] = (count, now)
                elif now - first[1] >= self.timeout:
                    self.fired = True
                if self.fired:
                    _shut(connection)


def _shut(connection: Any) -> None:
    """Shut down a psycopg connection's socket under whoever waits on it (the fd stays theirs to close)."""
    try:
        fd = connection.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except Exception:  # already closed or shut
        pass


def _connect_args(url: StorageURL, db_timeout: float) -> dict[str, Any]:
    """libpq parameters: the URL's query, then timeouts and keepalives the URL does not set, then the password."""
    ms = max(1, int(db_timeout * 1000))
    args: dict[str, Any] = {
        "connect_timeout": max(2, round(min(CONNECT_TIMEOUT, db_timeout))),
        # A dead network or host (no answer at all, unlike a frozen server whose kernel still answers).
        "keepalives": 1,
        "keepalives_idle": max(1, int(db_timeout / 3)),
        "keepalives_interval": max(1, int(db_timeout / 9)),
        "keepalives_count": 3,
        "tcp_user_timeout": ms,
    }
    # statement_timeout: a statement stuck behind the locks of a frozen worker fails rather than waits for ever;
    # the frozen worker's own idle transaction is ended sooner, so that healthy workers get its locks first.
    options = f"-c statement_timeout={ms} -c idle_in_transaction_session_timeout={max(1, ms // 2)}"
    query = dict(url.query)
    args.update(query)
    args["options"] = f"{options} {query['options']}" if "options" in query else options
    if url.password is not None:
        args["password"] = url.password
    return args


def _fatal_at_setup(error: BaseException) -> bool:
    """True for errors retrying cannot fix: no server, refused login, missing database."""
    import sqlalchemy.exc

    for current in _chain(error):
        if isinstance(current, sqlalchemy.exc.DBAPIError):
            sqlstate = getattr(current.orig, "sqlstate", None)
            # No SQLSTATE: the connection itself failed. 08: connection exception, 28: authorization, 3D: no such
            # database.
            return sqlstate is None or str(sqlstate)[:2] in ("08", "28", "3D")
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _db_reason(error: BaseException, secrets: list[str]) -> str:
    """The driver's first lines for ``error`` (the root cause), scrubbed of secrets."""
    import sqlalchemy.exc

    chain = list(_chain(error))
    found = next((e for e in chain if isinstance(e, sqlalchemy.exc.DBAPIError)), chain[-1])
    text = str(getattr(found, "orig", None) or found).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _scrub("; ".join(lines[:2]) if lines else type(found).__name__, secrets)


def _is_db_error(error: BaseException) -> bool:
    import optuna
    import psycopg
    import sqlalchemy.exc

    return isinstance(error, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, psycopg.Error))


# --------------------------------------------------------------------------------------------- one storage


class StudyStorage:
    """One study storage as steplr uses it: the Optuna storage, heartbeats, and one-line errors naming it.

    ``storage`` None: the journal file ``run_dir / JOURNAL_FILE``; else a PostgreSQL URL (:func:`parse_storage_url`).
    ``grace_period``: seconds a running trial may go without a heartbeat (PostgreSQL); ``db_timeout``: seconds the
    server may take to answer one request.
    """

    def __init__(
        self, storage: str | None, run_dir: Path, grace_period: float | None = None, db_timeout: float | None = None
    ) -> None:
        self.url = None if storage is None else parse_storage_url(storage)
        self.journal = Path(run_dir) / JOURNAL_FILE if storage is None else None
        self.where = f"the journal file {self.journal}" if self.journal is not None else shown(storage)
        self.grace = GRACE_PERIOD if grace_period is None else check_seconds(grace_period, "grace period")
        self.db_timeout = DB_TIMEOUT if db_timeout is None else check_seconds(db_timeout, "database timeout")
        self.repaired: str | None = None  # what repair_journal did on opening, if anything
        self._rdb: Any = None
        self._watchdog: _Watchdog | None = None
        self._secrets = [] if storage is None else _secrets(storage)

    def open(self) -> optuna.storages.BaseStorage:
        """The Optuna storage (a journal file is repaired first, see :func:`repair_journal`).

        Raises:
            SweepError: naming the storage: it cannot be reached, logged into or created, or the journal is damaged.
        """
        if self.journal is not None:
            return self._open_journal(self.journal)
        assert self.url is not None
        return self._open_rdb(self.url)

    def _open_journal(self, path: Path) -> optuna.storages.BaseStorage:
        from optuna.storages.journal import JournalStorage

        with self.errors(running=False):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.repaired = repair_journal(path)
                return JournalStorage(_journal_backend(path))
            except OSError as error:
                raise SweepError(f"cannot open the journal file {path}: {error.strerror or error}") from None

    def _open_rdb(self, url: StorageURL) -> optuna.storages.BaseStorage:
        import optuna
        import sqlalchemy.engine

        driver_url = sqlalchemy.engine.URL.create(
            "postgresql+psycopg", username=url.user, host=url.host, port=url.port, database=url.database
        )
        engine_kwargs = {"pool_pre_ping": True, "connect_args": _connect_args(url, self.db_timeout)}
        for attempt in range(1, _SETUP_ATTEMPTS + 1):
            try:
                with _quiet_experimental():
                    storage = optuna.storages.RDBStorage(
                        driver_url.render_as_string(hide_password=False),  # no password in it: connect_args has it
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=max(1, round(heartbeat_interval(self.grace))),  # our thread beats
                        grace_period=self.grace,  # type: ignore[arg-type]  # a float works (a timedelta's seconds)
                        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                            max_retry=MAX_RETRY
                        ),
                    )
                break
            except Exception as error:
                # Workers starting together on a fresh database race to create Optuna's tables: try again.
                if not _is_db_error(error) or _fatal_at_setup(error) or attempt == _SETUP_ATTEMPTS:
                    if not _is_db_error(error):
                        raise
                    raise SweepError(
                        f"cannot open the study storage {self.where}: {_db_reason(error, self._secrets)}"
                    ) from None
                time.sleep(0.1 + 0.4 * random.random())
        # The connections made while setting up are closed: the watchdog sees every connection from here on.
        storage.engine.dispose()
        self._watchdog = _Watchdog(self.db_timeout)
        self._watchdog.attach(storage.engine)
        # Close the pooled connections when the storage goes (with its study): left to the garbage collector, open
        # psycopg connections are dropped without a goodbye (and a ResourceWarning).
        weakref.finalize(storage, _dispose, storage.engine, self._watchdog)
        self._rdb = storage
        return storage

    @contextlib.contextmanager
    def errors(self, running: bool = True, searching: bool = False) -> Iterator[None]:
        """Turn the storage's failures inside the block into one-line errors naming it.

        ``running``: a search (or a report) is under way, so a failure is :class:`StorageLost`; else (opening) a
        :class:`SweepError`. A damaged journal is always a SweepError (rerunning cannot fix it). ``searching``: the
        block does nothing but search, so an OSError naming no file (a full disk under a journal append) is the
        journal's too.
        """
        noise, quiet = logging.getLogger("optuna.storages._rdb.storage"), _LostConnectionNoise()
        noise.addFilter(quiet)
        try:
            yield
        except SweepError:
            raise
        except Exception as error:
            converted = self.translate(error, running, searching)
            if converted is None:
                raise
            raise converted from None
        finally:
            noise.removeFilter(quiet)

    def translate(self, error: BaseException, running: bool = True, searching: bool = False) -> SweepError | None:
        """The one-line error for a failure of this storage, or None if ``error`` is not one (see :meth:`errors`)."""
        if self.journal is not None:
            path = self.journal
            if isinstance(error, (UnicodeDecodeError, json.JSONDecodeError)) or (
                type(error) is ValueError and str(error) == "Invalid log format."
            ):
                return SweepError(
                    f"the journal file {path} is damaged: {_journal_damage(path)}; steplr repairs "
                    "only a torn last record: restore a copy, or start a new study (another run "
                    "folder or study name)"
                )
            named = error.filename is not None if isinstance(error, OSError) else False
            if isinstance(error, OSError) and (
                (named and str(error.filename).startswith(str(path))) or (searching and not named)
            ):
                kind = StorageLost if running else SweepError
                return kind(
                    f"cannot use the journal file {path}: {error.strerror or error}"
                    + (f"; {_RERUN}" if running else "")
                )
            return None
        if not _is_db_error(error):
            return None
        fired = self._watchdog is not None and self._watchdog.fired
        reason = self._watchdog.reason if fired and self._watchdog else _db_reason(error, self._secrets)
        if running:
            return StorageLost(f"lost the study storage {self.where}: {reason}; {_RERUN}")
        return SweepError(f"cannot use the study storage {self.where}: {reason}")

    @contextlib.contextmanager
    def heartbeat(self, trial_id: int) -> Iterator[None]:
        """Beat for trial ``trial_id`` while the block runs (PostgreSQL; a journal has no heartbeats).

        A failed beat is not raised here: the thread keeps trying, and the trial's own next write meets the same
        failure (and says so) in the worker's thread.
        """
        if self._rdb is None:
            yield
            return
        stop, rdb, every = threading.Event(), self._rdb, heartbeat_interval(self.grace)

        def beat() -> None:
            while True:
                with contextlib.suppress(Exception):
                    rdb.record_heartbeat(trial_id)
                if stop.wait(every):
                    return

        thread = threading.Thread(target=beat, name="steplr-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            # Not joined for long: a beat blocked on a lost server ends with the watchdog, and nothing waits on it.
            thread.join(timeout=1.0)


class _LostConnectionNoise(logging.Filter):
    """Drops Optuna's warning that it "caught an error from sqlalchemy" and tries a slower query when the error is a
    lost connection: the slower query fails the same way, and the error is said once, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Caught an error from sqlalchemy") and "connection" in message.lower())


def _dispose(engine: Any, watchdog: _Watchdog) -> None:
    watchdog.stop()
    with contextlib.suppress(Exception):
        engine.dispose()


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the features used on purpose here (heartbeats and retries)."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield
