"""SQLite backend: the embedded default.

One connection per thread (and per process: a forked child opens its own), WAL journal,
``synchronous=NORMAL``, ``foreign_keys=ON``, a busy timeout, and ``BEGIN IMMEDIATE`` for
write transactions so two processes never deadlock upgrading a read lock.

``sqlite://`` (no path) is a private in-memory database: a named shared-cache database
that lives as long as the app, with its statements serialized by one lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any, NoReturn

from aicmo.db.base import Params, Row, SqlDatabase, schema_error_for_missing_table
from aicmo.db.statement import Sql
from aicmo.errors import BackendError, ConflictError, TransientError

__all__ = ["SQLiteDatabase"]

DEFAULT_BUSY_TIMEOUT = 30.0


class _ThreadState(threading.local):
    conn: sqlite3.Connection | None = None
    pid: int = 0
    depth: int = 0


class SQLiteDatabase(SqlDatabase):
    dialect = "sqlite"
    self_upgrading = True

    def __init__(self, path: str | None, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        """``path`` is a file (created if missing), or ``None`` for a private in-memory DB."""
        self.path = path
        self.busy_timeout = busy_timeout
        if path is None:
            self._target = f"file:aicmo-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self._uri = True
            self._serial: AbstractContextManager[Any] = threading.RLock()
        else:
            self._target = path
            self._uri = False
            self._serial = nullcontext()
        super().__init__("the in-memory SQLite database" if path is None else f"SQLite {path!r}")
        self._state = _ThreadState()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        # The anchor keeps a private in-memory database alive; for a file it checks
        # that the file can be opened and turns WAL on once.
        self._anchor = self._open()
        if path is not None:
            self._enable_wal()

    # -- connections ---------------------------------------------------------------------
    def _enable_wal(self) -> None:
        """Switch the file to WAL (persistent). Changing the journal mode takes an exclusive
        lock without calling the busy handler, so when another process holds the file (two
        processes opening a new database at once) this retries until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._anchor.execute("PRAGMA journal_mode=WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    self._translate(exc)
                time.sleep(0.02)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._target,
                uri=self._uri,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
            )
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open {self.describe}: {exc}") from exc
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise BackendError(f"{self.describe} is closed; call aicmo.connect() again")
        state = self._state
        conn = state.conn
        if conn is None or state.pid != os.getpid():
            conn = state.conn = self._open()
            state.pid = os.getpid()
            state.depth = 0
        return conn

    def open_raw_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._target, uri=self._uri, timeout=self.busy_timeout, isolation_level=None
        )
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def migration_guard(self) -> AbstractContextManager[Any]:
        return self._serial

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- errors --------------------------------------------------------------------------
    def _translate(self, exc: sqlite3.Error) -> NoReturn:
        message = str(exc)
        if isinstance(exc, sqlite3.IntegrityError):
            raise ConflictError(f"{self.describe} refused the write: {message}") from exc
        if isinstance(exc, sqlite3.OperationalError):
            if message.startswith(("no such table", "no such column")):
                raise schema_error_for_missing_table(self.describe, message) from exc
            if "locked" in message or "busy" in message:
                raise TransientError(
                    f"{self.describe} is locked: another connection held the write lock "
                    f"for longer than the busy timeout ({self.busy_timeout:g}s); retry later"
                ) from exc
        raise BackendError(f"{self.describe}: {message}") from exc

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            self._translate(exc)

    # -- statements ----------------------------------------------------------------------
    def execute(self, stmt: Sql, params: Params | None = None) -> int:
        if not self._schema_checked:
            self.check_schema()
        with self._serial:
            try:
                return self._conn().execute(stmt.text, params or {}).rowcount
            except sqlite3.Error as exc:
                self._translate(exc)

    def execute_many(self, stmt: Sql, params: Sequence[Params]) -> None:
        if not self._schema_checked:
            self.check_schema()
        with self._serial:
            try:
                self._conn().executemany(stmt.text, params)
            except sqlite3.Error as exc:
                self._translate(exc)

    def fetch_all(self, stmt: Sql, params: Params | None = None) -> list[Row]:
        if not self._schema_checked:
            self.check_schema()
        with self._serial:
            try:
                cursor = self._conn().execute(stmt.text, params or {})
                rows = cursor.fetchall()
            except sqlite3.Error as exc:
                self._translate(exc)
        if not rows:
            return []
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def raw_fetch_all(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """A query that skips the schema check (used by the schema check itself)."""
        with self._serial:
            rows: list[tuple[Any, ...]] = self._call(
                lambda: self._conn().execute(sql, params or {}).fetchall()
            )
            return rows

    def table_exists(self, name: str) -> bool:
        return bool(
            self.raw_fetch_all(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name",
                {"name": name},
            )
        )

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        if not self._schema_checked:
            self.check_schema()
        with self._serial:
            conn = self._conn()
            state = self._state
            if state.depth == 0:
                self._call(conn.execute, "BEGIN IMMEDIATE")
                state.depth = 1
                try:
                    yield
                except BaseException:
                    state.depth = 0
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                state.depth = 0
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    self._translate(exc)
            else:
                name = f"aicmo_sp{state.depth}"
                self._call(conn.execute, f"SAVEPOINT {name}")
                state.depth += 1
                try:
                    yield
                except BaseException:
                    state.depth -= 1
                    self._call(conn.execute, f"ROLLBACK TO SAVEPOINT {name}")
                    self._call(conn.execute, f"RELEASE SAVEPOINT {name}")
                    raise
                state.depth -= 1
                self._call(conn.execute, f"RELEASE SAVEPOINT {name}")

    def in_transaction(self) -> bool:
        return self._state.depth > 0 and self._state.pid == os.getpid()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if not self._schema_checked:
            self.check_schema()
        with self._serial:
            conn = self._conn()
            state = self._state
            if state.depth:
                yield
                return
            self._call(conn.execute, "BEGIN")
            state.depth = 1
            try:
                yield
            finally:
                state.depth = 0
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("COMMIT")

    def encode_datetime(self, value: datetime) -> str:
        return value.isoformat(timespec="microseconds")
