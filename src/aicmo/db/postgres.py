"""PostgreSQL backend: psycopg 3 through a checked ``psycopg_pool.ConnectionPool``.

Connections are in autocommit mode, so a statement outside a transaction is its own
transaction; :meth:`PostgresDatabase.transaction` pins one pooled connection to the
calling thread for the whole block (nested blocks are savepoints). Every session runs
in UTC. This module imports psycopg, so it is imported only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any, NoReturn

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from aicmo.db.base import Params, Row, SqlDatabase, schema_error_for_missing_table
from aicmo.db.statement import Sql
from aicmo.errors import BackendError, ConflictError, TransientError
from aicmo.settings import redact

__all__ = ["PostgresDatabase"]


class _ThreadState(threading.local):
    conn: psycopg.Connection[Any] | None = None


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
_TRANSIENT_STATES = frozenset({"55P03", "57P01", "57P02", "57P03", "53300"})
"""Lock not available; admin shutdown (``pg_terminate_backend``), crash shutdown, cannot
connect now; too many connections."""


def _is_transient(exc: psycopg.Error) -> bool:
    """Whether running the whole transaction again may succeed. A full disk (53100), an I/O
    error (58030), a statement timeout (57014) or a program limit (54000) will not: they
    stay ``BackendError``, as on SQLite."""
    state = exc.sqlstate
    if state is None:  # lost on the client side: the connection broke
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES


class PostgresDatabase(SqlDatabase):
    dialect = "postgresql"
    self_upgrading = False

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        prepare_threshold: int | None = 5,
    ):
        describe, self._password = describe_target(url)
        super().__init__(describe)
        self._url = url
        self.pool_timeout = pool_timeout
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": prepare_threshold,
        }
        self._state = _ThreadState()
        # Fail fast, with the reason, when the server cannot be reached.
        probe = self.open_raw_connection()
        probe.close()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs=self._connect_kwargs,
                configure=_configure,
                check=psycopg_pool.ConnectionPool.check_connection,
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

    def migration_guard(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._state.conn
        if conn is not None:
            yield conn
            return
        try:
            with self._pool.connection() as pooled:
                yield pooled
        except psycopg_pool.PoolTimeout as exc:
            raise BackendError(
                f"no connection to {self.describe} became available within "
                f"{self.pool_timeout:g}s (pool of {self._pool.max_size}): either the server "
                "is unreachable or restarting (check it, then retry), or every connection "
                "is busy (raise AICMO_DB_POOL_SIZE or AICMO_DB_POOL_TIMEOUT)"
            ) from exc

    # -- errors --------------------------------------------------------------------------
    def _translate(self, exc: psycopg.Error) -> NoReturn:
        message = self._redact(str(exc).strip())
        if isinstance(exc, pg_errors.IntegrityError):
            raise ConflictError(f"{self.describe} refused the write: {message}") from exc
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
            raise schema_error_for_missing_table(self.describe, message) from exc
        if _is_transient(exc):
            raise TransientError(f"{self.describe}: {message}; retry the transaction") from exc
        raise BackendError(f"{self.describe}: {message}") from exc

    # -- statements ----------------------------------------------------------------------
    def execute(self, stmt: Sql, params: Params | None = None) -> int:
        if not self._schema_checked:
            self.check_schema()
        try:
            with self._connection() as conn:
                return conn.execute(stmt.pyformat, params).rowcount
        except psycopg.Error as exc:
            self._translate(exc)

    def execute_many(self, stmt: Sql, params: Sequence[Params]) -> int:
        if not self._schema_checked:
            self.check_schema()
        try:
            with self._connection() as conn, conn.cursor() as cursor:
                cursor.executemany(stmt.pyformat, params)
                return cursor.rowcount
        except psycopg.Error as exc:
            self._translate(exc)

    def fetch_all(self, stmt: Sql, params: Params | None = None) -> list[Row]:
        if not self._schema_checked:
            self.check_schema()
        try:
            with self._connection() as conn:
                cursor = conn.execute(stmt.pyformat, params)
                rows = cursor.fetchall()
                if not rows:
                    return []
                assert cursor.description is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
                names = [d.name for d in cursor.description]
        except psycopg.Error as exc:
            self._translate(exc)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def raw_fetch_all(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """A query in psycopg's own parameter style that skips the schema check."""
        try:
            with self._connection() as conn:
                return conn.execute(sql.encode(), params).fetchall()
        except psycopg.Error as exc:
            self._translate(exc)

    def table_exists(self, name: str) -> bool:
        rows = self.raw_fetch_all("SELECT to_regclass(%(name)s) IS NOT NULL", {"name": name})
        return bool(rows[0][0])

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        if not self._schema_checked:
            self.check_schema()
        state = self._state
        try:
            if state.conn is not None:
                with state.conn.transaction():
                    yield
                return
            with self._connection() as conn:
                state.conn = conn
                try:
                    with conn.transaction():
                        yield
                finally:
                    state.conn = None
        except psycopg.Error as exc:
            self._translate(exc)

    def in_transaction(self) -> bool:
        return self._state.conn is not None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if not self._schema_checked:
            self.check_schema()
        state = self._state
        if state.conn is not None:
            yield
            return
        try:
            with self._connection() as conn:
                state.conn = conn
                try:
                    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    try:
                        yield
                    finally:
                        conn.execute("COMMIT")
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
