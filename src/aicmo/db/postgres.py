"""PostgreSQL backend: psycopg 3 through a checked ``psycopg_pool.ConnectionPool``.

Connections are in autocommit mode, so a statement outside a transaction is its own
transaction; :meth:`PostgresDatabase.transaction` pins one pooled connection to the
calling thread for the whole block (nested blocks are savepoints). Every session runs
in UTC. This module imports psycopg, so it is imported only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from aicmo.db.base import LockWait, Params, SqlDatabase, closed_error, log, schema_mismatch
from aicmo.db.statement import Sql
from aicmo.errors import BackendError, ConflictError, TransientError
from aicmo.settings import redact

__all__ = ["PostgresDatabase"]

T = TypeVar("T")
C = TypeVar("C")


class _ThreadState(threading.local):
    conn: psycopg.Connection[Any] | None = None
    tx: _WriteTransaction | None = None  # the outermost write transaction (None: a snapshot)
    flat: bool = False  # the open transaction has no savepoints (transaction(savepoints=False))

    def __init__(self) -> None:
        self.precommit: list[Callable[[], object]] = []


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


def describe_target(url: str) -> tuple[str, str | None]:
    """``("PostgreSQL at host:port/dbname", password)`` for messages that never show it."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL (unparsable URL)", None
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    port = str(info.get("port") or "5432")
    dbname = str(info.get("dbname") or info.get("user") or "")
    password = info.get("password")
    return f"PostgreSQL at {host}:{port}/{dbname}", str(password) if password else None


_TRANSIENT_CLASSES = ("40", "08")
"""SQLSTATE classes a retry can get past: transaction rollback (serialization failure,
deadlock) and connection exceptions."""
_TRANSIENT_STATES = frozenset({"55P03", "57P01", "57P02", "57P03", "53300", "25P03", "57P05"})
"""Lock not available (``lock_timeout``); admin shutdown (``pg_terminate_backend``), crash
shutdown, cannot connect now; too many connections; a session ended by
``idle_in_transaction_session_timeout`` or ``idle_session_timeout``."""
_SCHEMA_STATES = frozenset({"42P01", "42703", "42704", "42P10"})
"""Undefined table, column or object; no unique constraint matching an ``ON CONFLICT``:
the statement was written for another schema."""
_PREPARED_STATES = frozenset({"26000", "42P05"})
"""``prepared statement "_pg3_N" does not exist`` / ``already exists``: aicmo names no
prepared statement itself, so these come from psycopg's automatic preparation meeting a
pooler in transaction mode (PgBouncer before 1.21) that hands each transaction another
server session. (A ``bind message supplies N parameters, but prepared statement ...
requires M``, 08P01, is the same meeting.)"""


def _unique_statement_names(conn: psycopg.Connection[Any]) -> None:
    """Start the names psycopg gives the statements it prepares on ``conn`` (``_pg3_N``) at
    a random ``N``, so that no two connections share one.

    Behind a pooler in transaction mode, a transaction may run on a server session where
    *another* client prepared ``_pg3_1``: with psycopg's names (0, 1, 2 ... on every
    connection) executing our ``_pg3_1`` there would run the other client's statement --
    an error when the parameters differ, a wrong answer when they happen to fit. With names
    unique per connection, such a session can only answer "does not exist", which
    :meth:`PostgresDatabase._prepared_statement_lost` detects. psycopg has no public way
    to choose the names, so this sets its counter (when it has the one this was written
    against; ``tests/test_app.py`` checks the names stay unique)."""
    manager = getattr(conn, "_prepared", None)
    if isinstance(getattr(manager, "_prepared_idx", None), int):
        manager._prepared_idx = secrets.randbits(48)  # type: ignore[union-attr]


def _lost_prepared_statement(exc: psycopg.Error) -> bool:
    return exc.sqlstate in _PREPARED_STATES or (
        exc.sqlstate == "08P01" and "prepared statement" in str(exc)
    )


def _is_transient(exc: psycopg.Error) -> bool:
    """Whether running the whole transaction again may succeed. A full disk (53100), an I/O
    error (58030), a statement timeout (57014) or a program limit (54000) will not: they
    stay ``BackendError``, as on SQLite."""
    state = exc.sqlstate
    if state is None:  # lost on the client side: the connection broke
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES


CHECK_AFTER_IDLE = 10.0
"""Seconds a pooled connection may sit idle and still be lent without a check (one empty
query, a round trip). A connection dropped sooner is found by the statement that uses
it: see :meth:`PostgresDatabase._run` and :meth:`PostgresDatabase._begin`."""


def _connection_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the connection itself is gone (cut, or its session ended by
    the server): nothing more can run on it, and another connection may do better."""
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    # 08P01 (protocol violation) is also what a pooler's lost prepared statement gives.
    return (state.startswith("08") and state != "08P01") or state in ("57P01", "57P02", "57P03")


def _rowcount(cursor: psycopg.Cursor[Any]) -> int:
    return cursor.rowcount


def _first_error(exc: BaseException) -> BaseException:
    """The error that aborted a pipeline: psycopg can raise the "pipeline aborted" of a
    statement the server skipped while it fetches the rest, over the error that made it
    skip (then the error is the exception's context)."""
    first = exc.__context__
    if isinstance(exc, pg_errors.PipelineAborted) and isinstance(first, psycopg.Error):
        return first
    return exc


class _WriteTransaction:
    """An outermost write transaction on a pooled connection it holds until :meth:`close`,
    begun lazily to save round trips: the ``BEGIN`` goes with the first statement
    (:meth:`first`), and the transaction's last writes go with the ``COMMIT``
    (:meth:`commit`), each pair before one wait in pipeline mode (where libpq has it:
    ``PostgresDatabase.pipeline``; else each waited for). A transaction that sends nothing
    sends no ``BEGIN`` either."""

    def __init__(self, db: PostgresDatabase):
        self._db = db
        self._pipeline = db.pipeline
        self.conn = db._checkout()
        # psycopg's Transaction itself, not conn.transaction(): that one, entered in
        # pipeline mode, syncs around the transaction (a round trip each).
        self._tx: psycopg.Transaction | None = None
        self._ended = False

    @property
    def unbegun(self) -> bool:
        return self._tx is None

    def _swap(self) -> None:
        """Give back a connection found dropped (the pool drops it) and take another,
        checked one (see ``PostgresDatabase._found_dropped``)."""
        db = self._db
        db._give_back(self.conn)
        db._found_dropped()
        self.conn = db._state.conn = db._checkout()

    def begin(self) -> None:
        """Send the ``BEGIN`` alone (before a savepoint, or a statement that is not sent
        with it). One that finds its connection dropped ran nothing: it is sent once
        more, on a checked connection."""
        self.first(lambda conn: None, lambda _: None)

    def first(
        self,
        send: Callable[[psycopg.Connection[Any]], C],
        read: Callable[[C], T],
    ) -> T:
        """``BEGIN`` and the statement ``send`` makes, in one round trip; then ``read``
        of what ``send`` gave (its cursor, complete once the pipeline synced). When the
        connection is found dropped, nothing ran (nothing commits without the
        ``COMMIT``): both are sent once more on a checked connection."""
        for last_try in (False, True):
            conn = self.conn
            tx = psycopg.Transaction(conn)
            try:
                with conn.pipeline() if self._pipeline else nullcontext():
                    tx.__enter__()  # the BEGIN, queued
                    self._tx = tx
                    sent = send(conn)
            except psycopg.Error as exc:
                if last_try or not _connection_lost(exc):
                    raise _first_error(exc) from None  # begun: the block rolls it back
                self._tx = None
                self._swap()
                continue
            return read(sent)
        raise AssertionError("unreachable")  # pragma: no cover

    def commit(self, last: list[Callable[[], object]], queue: list[Callable[[], object]]) -> None:
        """Commit, after ``last`` (writes whose results nothing reads, see ``run_last``):
        those, the ``COMMIT`` and a ``BEGIN`` not sent yet go before one wait. An error
        in any of them (raised when the pipeline syncs) leaves the transaction aborted:
        it is rolled back, nothing written."""
        if not last:
            if self._tx is not None:
                self._ended = True
                self._tx.__exit__(None, None, None)
            return
        conn = self.conn
        try:
            with conn.pipeline() if self._pipeline else nullcontext():
                if self._tx is None:
                    self._tx = psycopg.Transaction(conn)
                    self._tx.__enter__()
                tx = self._tx
                self._db._run_last(queue, last)  # raising: close() rolls back, as for the block
                self._ended = True
                tx.__exit__(None, None, None)  # the COMMIT, queued
        except BaseException as exc:
            idle = conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if self._ended and not idle:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            first = _first_error(exc)
            if first is not exc:
                raise first from None
            raise

    def close(self, exc: BaseException | None) -> None:
        """Give the connection back; first, if the block raised ``exc``, roll back what was
        begun and not ended (without an error :meth:`commit` has ended it)."""
        try:
            if exc is not None and self._tx is not None and not self._ended:
                self._ended = True
                self._tx.__exit__(type(exc), exc, exc.__traceback__)
        finally:
            self._db._give_back(self.conn)


@contextmanager
def _read_only_snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A read-only transaction of one snapshot on ``conn`` (``snapshot()``)."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _milliseconds(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _advisory_holder(backend: Any, key: int) -> tuple[str, str]:
    """What a wait for the schema's advisory lock waits for (the session holding it), and
    what to do about it."""
    row = backend.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objsubid = 1 AND classid::bigint = :hi AND objid::bigint = :lo "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
    ).fetchone()
    session = f"PostgreSQL session {row[0]}" if row else "another PostgreSQL session"
    return (
        f"the migration lock (held by {session})",
        "Another process is migrating this database: try again when it is done; if it "
        "hangs, stop it (the server then drops its lock)",
    )


class PostgresDatabase(SqlDatabase):
    dialect = "postgresql"
    self_upgrading = False
    driver_errors = (psycopg.Error,)

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        prepare_threshold: int | None = 5,
        lock_timeout: float = 0.0,
        idle_in_transaction_timeout: float = 0.0,
        check_after_idle: float = CHECK_AFTER_IDLE,
    ):
        """``check_after_idle`` (seconds): a pooled connection idle longer than that is
        checked (an empty query) before it is lent; one used more recently is lent as it
        is (see :meth:`_check_pooled`).

        ``lock_timeout`` and ``idle_in_transaction_timeout`` (seconds; 0: none) become
        the pooled sessions' ``lock_timeout`` and ``idle_in_transaction_session_timeout``:
        a statement that waits longer for a row lock fails as ``TransientError`` (and its
        transaction is retried), and the server ends a session left idle inside a
        transaction longer than that (a frozen process), releasing its locks."""
        describe, self._password = describe_target(url)
        super().__init__(describe)
        self._url = url
        self.pool_timeout = pool_timeout
        self.prepare_threshold = prepare_threshold
        self._session_settings = {
            "lock_timeout": _milliseconds(lock_timeout),
            "idle_in_transaction_session_timeout": _milliseconds(idle_in_transaction_timeout),
        }
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": prepare_threshold,
        }
        self._state = _ThreadState()
        self.pipeline = psycopg.Pipeline.is_supported()
        """Whether write transactions save round trips in pipeline mode (libpq 14 or
        newer, as psycopg's binary package bundles); without it every statement waits."""
        self._closed = False
        self._in_use = 0  # pooled connections lent to this process's threads
        self._in_use_lock = threading.Lock()
        self.check_after_idle = check_after_idle
        # When each pooled connection was last given back (and when each was opened), and
        # the moment a connection was last found dropped: every connection idle since
        # before then is checked.
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._opened_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._suspect_before = 0.0
        # Fail fast, with the reason, when the server cannot be reached.
        probe = self.open_raw_connection()
        probe.close()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs=self._connect_kwargs,
                configure=self._configure_pooled,
                check=self._check_pooled,
                timeout=pool_timeout,
                open=True,
                name="aicmo",
            )
        )
        # The first connection is ready before any use: no background growth on the first
        # call (pool workers use `random`, which hypothesis forbids during data generation).
        try:
            self._pool.wait(timeout=pool_timeout)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise BackendError(
                f"{self.describe}: the connection pool did not open within {pool_timeout:g}s"
            ) from exc

    # -- connections ---------------------------------------------------------------------
    def _check_pooled(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's check of a connection it is about to lend: an empty query (a round
        trip; a broken connection raises, and the pool drops it and lends another), but
        only for a connection idle longer than :attr:`check_after_idle` or since before a
        connection was last found dropped. "Idle since" is when it was last given back,
        or, for one never lent yet, when it was opened.

        The trade-off: a connection the server dropped while it sat idle for less than
        that is lent unchecked. Its first statement then fails; a plain ``SELECT``
        outside a transaction and a transaction's ``BEGIN`` with its first statement
        (nothing ran yet: nothing commits without the ``COMMIT``) are sent once more, on a
        checked connection; any other statement's failure is a
        ``TransientError`` (retried whole by ``app.run_transaction``), never a wrong answer.
        """
        idle_since = self._returned_at.get(conn)
        if idle_since is None:
            idle_since = self._opened_at.get(conn)
            if idle_since is None:
                return
        if (
            idle_since < self._suspect_before
            or time.monotonic() - idle_since > self.check_after_idle
        ):
            psycopg_pool.ConnectionPool.check_connection(conn)

    def _found_dropped(self) -> None:
        """A connection was found dropped: the others may have been cut with it (a server
        restart, a network outage). Check every connection idle in the pool now, the ones
        never lent included (the pool drops the broken ones and opens others), and every
        connection idle since before now when it is next lent.

        Checking them here, not one by one as they are lent, matters: when the pool's check
        of a connection it is about to lend fails, the pool waits (its reconnect backoff,
        about a second) before it lends another, so the one retry of a ``SELECT`` or a
        ``BEGIN`` would fail on a pool timeout instead of running on a good connection."""
        self._suspect_before = time.monotonic()
        with contextlib.suppress(psycopg_pool.PoolClosed):
            self._pool.check()

    def _configure_pooled(self, conn: psycopg.Connection[Any]) -> None:
        """A new pooled session: UTC, and the lock and idle-in-transaction timeouts."""
        settings = self._session_settings
        self._opened_at[conn] = time.monotonic()  # idle since it opened, until first lent
        _unique_statement_names(conn)
        conn.execute(
            "SELECT set_config('TimeZone', 'UTC', false), "
            "set_config('lock_timeout', %(lock)s, false), "
            "set_config('idle_in_transaction_session_timeout', %(idle)s, false)",
            {
                "lock": settings["lock_timeout"],
                "idle": settings["idle_in_transaction_session_timeout"],
            },
            prepare=False,
        )

    def _redact(self, message: str) -> str:
        message = message.replace(self._url, redact(self._url))  # a URL libpq echoes back
        if self._password:
            message = message.replace(self._password, "***")
        return message

    def open_raw_connection(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._url, connect_timeout=10, **self._connect_kwargs)
        except psycopg.Error as exc:
            reason = self._redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            raise BackendError(
                f"cannot connect to {self.describe}: {reason}. Check that the server is "
                "running and that the URL (AICMO_DATABASE_URL) is right"
            ) from None
        _configure(conn)
        return conn

    # -- migrations ----------------------------------------------------------------------
    def yoyo_backend_class(self) -> Any:
        from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend

        return PostgresqlPsycopgBackend

    @contextmanager
    def migration_session_lock(self, backend: Any, wait: LockWait) -> Iterator[None]:
        """An advisory lock for this schema held by the migration connection's session
        (the server drops it when the session ends, a killed process's included)."""
        schema = backend.execute("SELECT current_schema()").fetchone()[0]
        digest = hashlib.sha256(f"aicmo-migrations:{schema}".encode()).digest()
        key = {"key": int.from_bytes(digest[:8], "big", signed=True)}
        while not backend.execute("SELECT pg_try_advisory_lock(:key)", key).fetchone()[0]:
            wait(functools.partial(_advisory_holder, backend, key["key"]))
        try:
            yield
        finally:
            # A broken session has dropped the lock already.
            with contextlib.suppress(backend.driver.Error):
                backend.execute("SELECT pg_advisory_unlock(:key)", key)

    def stale_lock_reason(self, pid: int, alive: Callable[[int], bool]) -> str | None:
        # Asked while holding the schema's advisory lock: no aicmo migration is running.
        return "its session is gone (no migration is running now)"

    def migration_guard(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def close(self) -> None:
        """Refuse every later statement and close the pool. A statement another thread is
        running finishes (its connection is closed when it comes back); a transaction
        still open in another thread fails at its next statement or its commit."""
        self._closed = True
        self._pool.close()

    def _closed_error(self) -> BackendError:
        return closed_error(self.describe)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection: its transaction's, or one lent by the pool until the
        block ends."""
        if self._closed:
            raise self._closed_error()
        conn = self._state.conn
        if conn is not None:
            yield conn
            return
        pooled = self._checkout()
        try:
            yield pooled
        finally:
            self._give_back(pooled)

    def _lend(
        self,
        work: Callable[[psycopg.Connection[Any]], Any],
        read: Callable[[Any], T] | None = None,
    ) -> T:
        """``work`` on this thread's connection (then ``read`` of what it gave, if given):
        :meth:`_connection` without a generator's context manager, for each statement.
        The first statement of a write transaction with a ``read`` is sent with the
        transaction's ``BEGIN`` (see :class:`_WriteTransaction`); without one, the
        ``BEGIN`` goes first on its own."""
        if self._closed:
            raise self._closed_error()
        state = self._state
        conn = state.conn
        if conn is None:
            conn = self._checkout()
            try:
                return work(conn) if read is None else read(work(conn))
            finally:
                self._give_back(conn)
        tx = state.tx
        if tx is not None and tx.unbegun:
            if read is not None:
                return tx.first(work, read)
            tx.begin()
            conn = tx.conn
        return work(conn) if read is None else read(work(conn))

    def _checkout(self) -> psycopg.Connection[Any]:
        """A connection lent by the pool (``getconn``; the pool checks it first, see
        :meth:`_check_pooled`), counted in use until :meth:`_give_back`. The pool's
        ``connection()`` also commits on the way back, which an autocommit connection
        never needs: each transaction commits or rolls back itself, and the pool rolls
        back (or drops) a connection given back in any other state."""
        try:
            pooled = self._pool.getconn()
        except psycopg_pool.PoolClosed:
            raise self._closed_error() from None
        except psycopg_pool.PoolTimeout as exc:
            raise self._pool_timeout_error() from exc
        if pooled.prepare_threshold != self.prepare_threshold:
            pooled.prepare_threshold = self.prepare_threshold
        with self._in_use_lock:
            self._in_use += 1
        return pooled

    def _give_back(self, pooled: psycopg.Connection[Any]) -> None:
        with self._in_use_lock:
            self._in_use -= 1
        self._returned_at[pooled] = time.monotonic()
        self._pool.putconn(pooled)

    def _pool_timeout_error(self) -> BackendError:
        """Why no connection came within the timeout: every connection is busy (lent to
        this process's threads), or none could be made or kept; the pool's own statistics
        say how many attempts failed. (Its ``pool_size`` counts connections being made
        too, so it cannot tell the two cases apart by itself.)"""
        stats = self._pool.get_stats()
        busy = self._in_use
        waited = f"no connection to {self.describe} became available within {self.pool_timeout:g}s"
        if busy >= self._pool.max_size:
            return BackendError(
                f"{waited}: all {busy} connections of the pool are in use by other threads "
                "of this process. Raise AICMO_DB_POOL_SIZE (or AICMO_DB_POOL_TIMEOUT), or "
                "run fewer threads per process"
            )
        failed = stats.get("connections_errors", 0)
        broken = stats.get("returns_bad", 0) + stats.get("connections_lost", 0)
        # The server is away or dropping connections: trying the transaction again later may
        # succeed (a busy pool, above, is this process's configuration and stays BackendError).
        return TransientError(
            f"{waited} ({busy} of {self._pool.max_size} connection(s) in use): the server "
            f"could not be reached or kept dropping connections ({failed} connection "
            f"attempt(s) failed and {broken} connection(s) were found broken since the pool "
            "opened). The pool keeps reconnecting; check the server and the network, then retry"
        )

    def _run(
        self,
        work: Callable[[psycopg.Connection[Any]], Any],
        read: Callable[[Any], T] | None = None,
        *,
        read_only: bool = False,
    ) -> T:
        """``work`` on this thread's connection, driver errors translated. A statement
        outside a transaction runs once more, on another connection, when a pooler's lost
        prepared statement broke it (nothing ran, and preparing is off from now on) or,
        for a ``read_only`` one, when its connection was found dropped (a read repeated
        changes nothing; the retry's connection is checked, see :meth:`_check_pooled`)."""
        try:
            return self._lend(work, read)
        except psycopg.Error as exc:
            if self._state.conn is not None:
                self._translate(exc)
            if _connection_lost(exc):
                self._found_dropped()
                if not read_only:
                    self._translate(exc)
            elif not self._prepared_statement_lost(exc):
                self._translate(exc)
        try:
            return self._lend(work, read)
        except psycopg.Error as exc:
            self._translate(exc)

    def _prepared_statement_lost(self, exc: psycopg.Error) -> bool:
        """Whether ``exc`` is a prepared statement a pooler lost; then turn preparing off
        for this app (once, with one line in the log saying what to set)."""
        if not _lost_prepared_statement(exc):
            return False
        if self.prepare_threshold is not None:
            self.prepare_threshold = None
            self._connect_kwargs["prepare_threshold"] = None  # connections opened from now
            log.warning(
                "%s: the server lost a prepared statement (%s): a pooler in transaction "
                "mode (PgBouncer older than 1.21, or max_prepared_statements = 0) is in "
                "between. aicmo stopped preparing statements for this app; set "
                "AICMO_DB_PREPARE_THRESHOLD=none to start that way",
                self.describe,
                self._redact(str(exc).strip().splitlines()[0]),
            )
        if self._state.conn is not None:
            self._state.conn.prepare_threshold = None
        return True

    # -- errors --------------------------------------------------------------------------
    def _translate(self, exc: psycopg.Error) -> NoReturn:
        message = self._redact(str(exc).strip())
        if isinstance(exc, pg_errors.IntegrityError):
            raise ConflictError(f"{self.describe} refused the write: {message}") from exc
        if exc.sqlstate in _SCHEMA_STATES:
            raise schema_mismatch(self, message) from exc
        if self._prepared_statement_lost(exc):
            raise TransientError(
                f"{self.describe}: {message} (a pooler in transaction mode; aicmo stopped "
                "preparing statements); retry the transaction"
            ) from exc
        if _is_transient(exc):
            raise TransientError(f"{self.describe}: {message}; retry the transaction") from exc
        raise BackendError(f"{self.describe}: {message}") from exc

    # -- statements ----------------------------------------------------------------------
    def _execute(self, stmt: Sql, params: Params | None) -> int:
        return self._run(lambda conn: conn.execute(stmt.pyformat, params), _rowcount)

    def _execute_many(self, stmt: Sql, params: Sequence[Params]) -> int:

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.cursor() as cursor:
                cursor.executemany(stmt.pyformat, params)
                return cursor.rowcount

        return self._run(work)

    def _fetch_rows(
        self, stmt: Sql, params: Params | None
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:

        def read(cursor: psycopg.Cursor[Any]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
            rows = cursor.fetchall()
            if not rows:
                return (), rows
            # The column names of a statement's result are the same every time: read
            # from the result once (cursor.description builds an object per column).
            names = stmt.pg_names
            if names is None or len(names) != len(rows[0]):
                assert cursor.description is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
                names = stmt.pg_names = tuple(d.name for d in cursor.description)
            return names, rows

        return self._run(
            lambda conn: conn.execute(stmt.pyformat, params), read, read_only=stmt.read_only
        )

    def raw_fetch_all(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """A query in psycopg's own parameter style that skips the schema check."""
        return self._run(
            lambda conn: conn.execute(sql.encode(), params).fetchall(),
            read_only=sql.lstrip()[:6].upper() == "SELECT",
        )

    def table_exists(self, name: str) -> bool:
        rows = self.raw_fetch_all("SELECT to_regclass(%(name)s) IS NOT NULL", {"name": name})
        return bool(rows[0][0])

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def _transaction(self, savepoints: bool = True, defer_lock: bool = False) -> Iterator[None]:
        state = self._state
        try:
            if state.conn is not None:
                if state.flat or not savepoints:
                    yield
                    return
                mark = len(state.precommit)
                if state.tx is not None and state.tx.unbegun:
                    state.tx.begin()  # a savepoint needs its transaction begun
                try:
                    with state.conn.transaction():
                        yield
                except BaseException:
                    del state.precommit[mark:]  # what the savepoint's block asked for is undone
                    raise
                return
            if self._closed:
                raise self._closed_error()
            tx = state.tx = _WriteTransaction(self)
            state.conn = tx.conn
            state.flat = not savepoints
            try:
                yield
                last = self._run_precommit(state.precommit)
                if self._closed:  # never commit once the app is closed
                    raise self._closed_error()
                tx.commit(last, state.precommit)  # the audit trail's rows go with it
            except BaseException as exc:
                tx.close(exc)
                raise
            else:
                tx.close(None)
            finally:
                state.conn = state.tx = None
                state.flat = False
                state.precommit.clear()
        except psycopg.Error as exc:
            self._translate(exc)

    def _begin(
        self,
        stack: contextlib.ExitStack[Any],
        begin: Callable[[psycopg.Connection[Any]], AbstractContextManager[Any]],
    ) -> psycopg.Connection[Any]:
        """A pooled connection with a transaction begun on it (``begin(conn)``; the read-only
        snapshot's: write transactions are :class:`_WriteTransaction`), both held by
        ``stack``. A ``BEGIN`` that finds its connection dropped (lent unchecked: see
        :meth:`_check_pooled`) ran nothing, so it is sent once more on a checked one."""
        for last in (False, True):
            attempt = contextlib.ExitStack()
            conn = attempt.enter_context(self._connection())
            try:
                attempt.enter_context(begin(conn))
            except psycopg.Error as exc:
                attempt.close()  # the pool drops the broken connection
                if last or not _connection_lost(exc):
                    raise
                self._found_dropped()
                continue
            stack.enter_context(attempt)
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    def _precommit_queue(self) -> list[Callable[[], object]] | None:
        return self._state.precommit if self._state.conn is not None else None

    def in_transaction(self) -> bool:
        return self._state.conn is not None

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        state = self._state
        if state.conn is not None:
            yield
            return
        try:
            with contextlib.ExitStack() as stack:
                state.conn = self._begin(stack, _read_only_snapshot)
                try:
                    yield
                finally:
                    state.conn = None
        except psycopg.Error as exc:
            self._translate(exc)

    def encode_datetime(self, value: datetime) -> datetime:
        return value

    def clock(self) -> datetime:
        """The server's ``clock_timestamp()``: the same for every client, whatever its clock."""
        [(now,)] = self.raw_fetch_all("SELECT clock_timestamp()")
        result: datetime = now
        return result
