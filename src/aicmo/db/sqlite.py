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
import re
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any, NoReturn

from aicmo.db.base import NOTICE_AFTER, Params, SqlDatabase, closed_error, log, schema_mismatch
from aicmo.db.statement import Sql
from aicmo.errors import AicmoError, BackendError, ConflictError, SchemaError, TransientError

__all__ = ["SQLiteDatabase", "busy_timeout_pragma"]

DEFAULT_BUSY_TIMEOUT = 30.0


CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`SQLiteDatabase.close` waits for a statement another thread is running."""

_BUSY = 5  # SQLITE_BUSY: another connection holds the lock (its busy handler ran)

_SCHEMA_MISMATCH = re.compile(
    r"^no such (table|column|index)|has no column named|"
    r"ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint"
)
"""The forms in which SQLite reports a statement written for another schema."""


def busy_timeout_pragma(seconds: float) -> str:
    """The statement that sets a connection's busy timeout (PRAGMAs take no parameters;
    the value is a whole number of milliseconds)."""
    return f"PRAGMA busy_timeout = {int(seconds * 1000)}"


class _Conn:
    """One driver connection and the lock its thread holds while it uses it, so that
    :meth:`SQLiteDatabase.close` never closes a connection in the middle of a statement
    (the driver would crash the interpreter)."""

    __slots__ = ("lock", "open", "raw")

    def __init__(self, raw: sqlite3.Connection):
        self.raw = raw
        self.lock = threading.Lock()
        self.open = True

    def close(self) -> None:
        """Close the connection (the caller holds :attr:`lock`)."""
        if self.open:
            self.open = False
            with contextlib.suppress(sqlite3.Error):
                self.raw.close()

    def rollback(self) -> None:
        """Roll back whatever is open, if the connection still is."""
        with self.lock:
            if self.open:
                with contextlib.suppress(sqlite3.Error):
                    self.raw.execute("ROLLBACK")


class _ThreadState(threading.local):
    conn: _Conn | None = None
    pid: int = 0
    depth: int = 0
    flat: bool = False  # the open transaction has no savepoints (transaction(savepoints=False))
    unbegun: bool = False  # opened with defer_lock: BEGIN IMMEDIATE not sent yet

    def __init__(self) -> None:
        self.precommit: list[Callable[[], object]] = []


def _read_only(where: str, detail: str) -> BackendError:
    return BackendError(
        f"{where} is read-only ({detail}): aicmo writes to the file and creates '-wal' and "
        "'-shm' files beside it. Make the file and its folder writable, or copy the database "
        "to a writable folder"
    )


def _read_only_uri(path: str) -> str | None:
    """For an existing file this process cannot write (or whose folder it cannot): a URI
    that opens it read-only, so that reads work. When SQLite could not create the WAL index
    beside it (no ``-shm`` file, a folder that cannot be written) it is opened
    ``immutable``: no process can be writing it in WAL mode then, since that needs the same
    file. ``None`` for a writable or missing file."""
    folder = os.path.dirname(os.path.abspath(path))
    folder_read_only = not os.access(folder, os.W_OK)
    if not os.path.exists(path) or (os.access(path, os.W_OK) and not folder_read_only):
        return None
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
    if folder_read_only and not os.path.exists(f"{path}-shm"):
        uri += "&immutable=1"
    return uri


class SQLiteDatabase(SqlDatabase):
    dialect = "sqlite"
    self_upgrading = True
    driver_errors = (sqlite3.Error,)

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
            read_only_uri = _read_only_uri(path)
            if read_only_uri is not None:  # reads work; writes fail as read-only
                self._target, self._uri = read_only_uri, True
        super().__init__("the in-memory SQLite database" if path is None else f"SQLite {path!r}")
        self._state = _ThreadState()
        self._all: list[_Conn] = []
        self._all_lock = threading.Lock()
        self._closed = False
        #: Set when the file holds another application's tables (see ``_foreign_error``):
        #: then aicmo neither migrates nor uses it, and does not switch it to WAL.
        self.foreign: SchemaError | None = None
        # The anchor keeps a private in-memory database alive; for a file it checks
        # that the file is a SQLite database of aicmo's (or empty) and turns WAL on once.
        self._anchor = self._open()
        #: Set when the file or its folder cannot be written: then aicmo does not try to
        #: migrate it (yoyo would wait for a lock it can never take) and writes fail with it.
        self.read_only: BackendError | None = None
        if path is not None:
            try:
                self.foreign = self._foreign_error()
                self.read_only = self._read_only_error(path)
                if self.read_only is not None:
                    self.self_upgrading = False
                elif self.foreign is None:
                    self._enable_wal()
            except BaseException:
                self.close()
                raise

    # -- connections ---------------------------------------------------------------------
    def _enable_wal(self) -> None:
        """Switch the file to WAL (persistent). Changing the journal mode takes an exclusive
        lock without calling the busy handler, so when another process holds the file (two
        processes opening a new database at once) this retries until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._anchor.raw.execute("PRAGMA journal_mode=WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    self._translate(exc)
                time.sleep(0.02)

    def _open(self) -> _Conn:
        try:
            raw = sqlite3.connect(
                self._target,
                uri=self._uri,
                timeout=min(NOTICE_AFTER, self.busy_timeout),
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
            )
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise self._error(exc, opening=True) from exc
        conn = _Conn(raw)
        with self._all_lock:
            if self._closed:  # closed while this one opened: it is never used
                conn.close()
                raise self._closed_error()
            self._all.append(conn)
        return conn

    def _conn(self) -> _Conn:
        """This thread's connection (a new one on first use, and after a fork)."""
        if self._closed:
            raise self._closed_error()
        state = self._state
        conn = state.conn
        if conn is None or state.pid != os.getpid():
            conn = state.conn = self._open()
            state.pid = os.getpid()
            state.depth = 0
        return conn

    def _foreign_error(self) -> SchemaError | None:
        """A ``SchemaError`` when the file is another application's database, else ``None``.

        The rule: a file is aicmo's when it has no tables at all (new or empty), or when it
        has yoyo's bookkeeping tables (created before any aicmo table) whose history, if
        any, names at least one aicmo migration. Anything else holds another program's
        data, and aicmo refuses it rather than adding its tables to it.
        """
        tables = [
            str(row[0])
            for row in self.raw_fetch_all(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        if not tables:
            return None
        yoyo = [t for t in tables if t.startswith(("_yoyo", "yoyo"))]
        if yoyo and "_yoyo_migration" not in tables:
            return None  # a migration was interrupted while yoyo set itself up
        if yoyo:
            from aicmo.db.migrations import known_migration_ids

            applied = {
                str(row[0])
                for row in self.raw_fetch_all("SELECT migration_id FROM _yoyo_migration")
            }
            if not applied or applied & set(known_migration_ids(self.dialect)):
                return None
            reason = (
                "its migration history lists only migrations aicmo does not know "
                f"({', '.join(sorted(applied)[:5])})"
            )
        else:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            reason = f"it holds tables of another application ({shown}) and no aicmo history"
        return SchemaError(
            f"{self.describe} is not an aicmo database: {reason}. aicmo does not add its "
            "tables to another program's database; point AICMO_DATABASE_URL (or --database) "
            "at a new file or at an existing aicmo database"
        )

    def _read_only_error(self, path: str) -> BackendError | None:
        """A ``BackendError`` when this process cannot write the file or its folder."""
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.exists(path) and not os.access(path, os.W_OK):
            what = "the file is read-only"
        elif not os.access(folder, os.W_OK):
            what = f"its folder {folder!r} is read-only"
        else:
            return None
        return _read_only(self.describe, what)

    def refuse_foreign(self) -> None:
        if self.foreign is not None:
            raise self.foreign

    def open_raw_connection(self) -> sqlite3.Connection:
        if self.foreign is not None:
            raise self.foreign  # never migrate another application's database
        if self.read_only is not None:
            raise self.read_only  # yoyo would wait for its lock until the timeout
        try:
            conn = sqlite3.connect(
                self._target, uri=self._uri, timeout=self.busy_timeout, isolation_level=None
            )
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise self._error(exc, opening=True) from exc
        return conn

    # -- migrations ----------------------------------------------------------------------
    def lock_key(self) -> str:
        return self.describe if self.path is None else os.path.realpath(self.path)

    def yoyo_backend_class(self) -> Any:
        from yoyo.backends.core.sqlite3 import SQLiteBackend

        class ImmediateBackend(SQLiteBackend):  # type: ignore[misc]
            """Every migration transaction takes the write lock when it begins. yoyo's
            ``BEGIN`` is deferred: a migration that read first and wrote later (a
            downgrade's ``DROP TABLE IF EXISTS`` after steps that changed nothing) failed
            at once with "database is locked" when another connection wrote in between,
            whatever the busy timeout (a read snapshot cannot become a write one)."""

            def begin(self) -> None:
                self._in_transaction = True
                self.execute("BEGIN IMMEDIATE")

        return ImmediateBackend

    @contextmanager
    def polling_writes(self, backend: Any, poll: float) -> Iterator[None]:
        busy = backend.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
        backend.execute(busy_timeout_pragma(poll))
        try:
            yield
        finally:
            backend.execute(busy_timeout_pragma(busy))

    def stale_lock_reason(self, pid: int, alive: Callable[[int], bool]) -> str | None:
        # WAL requires every user of the file to be on this machine: a holder that is not
        # running here is gone.
        return None if alive(pid) else "is no longer running on this machine"

    def migration_guard(self) -> AbstractContextManager[Any]:
        return self._serial

    def close(self) -> None:
        """Refuse every later statement, then close the connections. A statement another
        thread is running is waited for (up to :data:`CLOSE_TIMEOUT` seconds in all; past
        that its thread closes its connection when the statement ends); a transaction
        still open in another thread fails at its next statement and is rolled back."""
        with self._all_lock:
            self._closed = True
            conns, self._all = self._all, []
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for conn in conns:
            if conn.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    conn.close()
                finally:
                    conn.lock.release()

    def _closed_error(self) -> BackendError:
        return closed_error(self.describe)

    # -- errors --------------------------------------------------------------------------
    def _translate(self, exc: sqlite3.Error) -> NoReturn:
        raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error, *, opening: bool = False) -> AicmoError:
        """The ``aicmo.errors`` exception for a driver error: what is wrong, what to do."""
        message = str(exc)
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        where = self.describe
        if isinstance(exc, sqlite3.IntegrityError):
            return ConflictError(f"{where} refused the write: {message}")
        if _SCHEMA_MISMATCH.search(message):
            return schema_mismatch(self, message)
        if code in (5, 6) or "locked" in message or "busy" in message:  # BUSY, LOCKED
            return TransientError(
                f"{where} is locked: another connection held the write lock "
                f"for longer than the busy timeout ({self.busy_timeout:g}s); retry later"
            )
        if code in (11, 26) or "not a database" in message or "malformed" in message:
            return BackendError(
                f"{where} is not a SQLite database, or it is damaged ({message}). Restore "
                "it from a backup, or point AICMO_DATABASE_URL (or --database) at another file"
            )
        if code == 13 or "disk is full" in message:  # SQLITE_FULL
            return BackendError(
                f"{where}: the disk is full ({message}); the failed transaction was rolled "
                "back and what was committed before is intact. Free some space and retry"
            )
        if code == 8 or "readonly" in message:  # SQLITE_READONLY
            return _read_only(where, message)
        if code == 14 or (opening and "unable to open" in message):  # SQLITE_CANTOPEN
            return BackendError(
                f"cannot open {where} ({message}): check that its folder exists, that it is "
                "a file (not a folder), and that the folder is readable and writable"
            )
        if code == 10:  # SQLITE_IOERR
            return BackendError(
                f"{where}: the operating system reported an I/O error ({message}); the "
                "failed transaction was rolled back. Check the disk (space, health, mount)"
            )
        return BackendError(f"{'cannot open ' if opening else ''}{where}: {message}")

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            self._translate(exc)

    def _run(self, conn: _Conn, sql: str, params: Any, many: bool = False) -> Any:
        """Run one statement on ``conn`` (the caller holds ``conn.lock``)."""
        if self._closed:
            conn.close()  # a statement running when close() gave up waiting has ended
            raise self._closed_error()
        raw = conn.raw
        state = self._state
        if state.depth and not state.unbegun and not raw.in_transaction:
            # SQLite already rolled this transaction back (a full disk, an I/O error) and
            # the caller caught the error: running on would write outside any transaction.
            raise BackendError(
                f"{self.describe} rolled this transaction back after an earlier error inside "
                "it, so this statement was not run. Let database errors leave "
                "app.transaction() instead of catching them inside it"
            )
        try:
            return raw.executemany(sql, params) if many else raw.execute(sql, params)
        except sqlite3.Error as exc:
            return self._wait_for_lock(raw, exc, sql, params, many)

    def _wait_for_lock(
        self, raw: sqlite3.Connection, exc: sqlite3.Error, sql: str, params: Any, many: bool
    ) -> Any:
        """After SQLITE_BUSY at the short first wait (:data:`NOTICE_AFTER` seconds): log
        what the statement waits for, once, and run it again with the rest of the busy
        timeout. Any other error is translated."""
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        waited = min(NOTICE_AFTER, self.busy_timeout)
        if code != _BUSY or self.busy_timeout <= waited:
            self._translate(exc)
        # SQLITE_BUSY: the statement did nothing (a transaction stays as it was), so running
        # it again is safe.
        log.warning(
            "%s: waiting for the write lock, which another connection has held for %gs (a "
            "long write transaction); waiting up to %gs more (AICMO_SQLITE_BUSY_TIMEOUT)",
            self.describe,
            waited,
            self.busy_timeout - waited,
        )
        raw.execute(busy_timeout_pragma(self.busy_timeout - waited))
        try:
            return raw.executemany(sql, params) if many else raw.execute(sql, params)
        except sqlite3.Error as again:
            self._translate(again)
        finally:
            raw.execute(busy_timeout_pragma(waited))

    # -- statements ----------------------------------------------------------------------
    def _execute(self, stmt: Sql, params: Params | None) -> int:
        with self._serial:
            conn = self._conn()
            if self._state.unbegun:
                self._begin(conn)
            with conn.lock:
                return int(self._run(conn, stmt.sqlite, params or {}).rowcount)

    def _execute_many(self, stmt: Sql, params: Sequence[Params]) -> int:
        with self._serial:
            conn = self._conn()
            if self._state.unbegun:
                self._begin(conn)
            with conn.lock:
                return int(self._run(conn, stmt.sqlite, params, many=True).rowcount)

    def _fetch_rows(
        self, stmt: Sql, params: Params | None
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        with self._serial:
            conn = self._conn()
            if self._state.unbegun and not stmt.read_only:
                self._begin(conn)  # UPDATE ... RETURNING
            with conn.lock:
                cursor = self._run(conn, stmt.sqlite, params or {})
                rows: list[tuple[Any, ...]] = self._call(cursor.fetchall)
                if not rows:
                    return (), rows
                # A statement's result columns are the same every time: read them from
                # the result once (cursor.description builds a tuple per column).
                names = stmt.sqlite_names
                if names is None or len(names) != len(rows[0]):
                    names = stmt.sqlite_names = tuple(d[0] for d in cursor.description)
        return names, rows

    def raw_fetch_all(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """A query that skips the schema check (used by the schema check itself)."""
        with self._serial:
            conn = self._conn()
            with conn.lock:
                rows: list[tuple[Any, ...]] = self._call(
                    self._run(conn, sql, params or {}).fetchall
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
    def _control(self, conn: _Conn, sql: str) -> None:
        """A transaction-control statement (BEGIN, SAVEPOINT, RELEASE ...)."""
        with conn.lock:
            self._run(conn, sql, ())

    def _begin(self, conn: _Conn) -> None:
        """Send the ``BEGIN IMMEDIATE`` a ``defer_lock`` transaction put off."""
        self._control(conn, "BEGIN IMMEDIATE")
        self._state.unbegun = False

    def _end(self, state: _ThreadState) -> None:
        state.depth = 0
        state.flat = state.unbegun = False
        state.precommit.clear()

    @contextmanager
    def _transaction(self, savepoints: bool = True, defer_lock: bool = False) -> Iterator[None]:
        with self._serial:
            conn = self._conn()
            state = self._state
            if state.depth == 0:
                if defer_lock:
                    state.unbegun = True
                else:
                    self._control(conn, "BEGIN IMMEDIATE")
                state.depth = 1
                state.flat = not savepoints
                try:
                    yield
                    self._run_last(state.precommit, self._run_precommit(state.precommit))
                except BaseException:
                    begun = not state.unbegun
                    self._end(state)
                    if begun:
                        conn.rollback()
                    raise
                begun = not state.unbegun
                self._end(state)
                if begun:
                    self._commit(conn)
                elif self._closed:
                    raise self._closed_error()
            elif state.flat or not savepoints:
                if state.unbegun:
                    self._begin(conn)  # a nested block is a repository's write
                state.depth += 1
                try:
                    yield
                finally:
                    state.depth -= 1
            else:
                if state.unbegun:
                    self._begin(conn)
                name = f"aicmo_sp{state.depth}"
                self._control(conn, f"SAVEPOINT {name}")
                state.depth += 1
                mark = len(state.precommit)
                try:
                    yield
                except BaseException:
                    state.depth -= 1
                    del state.precommit[mark:]
                    # After some errors (a full disk, an I/O error) SQLite has already rolled
                    # back the whole transaction, savepoints included: then re-raise the
                    # error itself, not "no such savepoint". A closed app rolls back whole.
                    with conn.lock:
                        if conn.open and not self._closed and conn.raw.in_transaction:
                            self._call(conn.raw.execute, f"ROLLBACK TO SAVEPOINT {name}")
                            self._call(conn.raw.execute, f"RELEASE SAVEPOINT {name}")
                    raise
                state.depth -= 1
                self._control(conn, f"RELEASE SAVEPOINT {name}")

    def _commit(self, conn: _Conn) -> None:
        with conn.lock:
            if self._closed:
                conn.close()  # rolls the transaction back
                raise self._closed_error()
            raw = conn.raw
            if not raw.in_transaction:
                raise BackendError(
                    f"{self.describe} rolled this transaction back when an error occurred "
                    "inside it (a full disk, an I/O error), and the block carried on after "
                    "catching that error: nothing it wrote before the error was kept. Let "
                    "database errors leave app.transaction() instead of catching them inside"
                )
            try:
                raw.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                self._translate(exc)

    def in_transaction(self) -> bool:
        return self._state.depth > 0 and self._state.pid == os.getpid()

    def _precommit_queue(self) -> list[Callable[[], object]] | None:
        return self._state.precommit if self.in_transaction() else None

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        with self._serial:
            conn = self._conn()
            state = self._state
            if state.depth:
                yield
                return
            self._control(conn, "BEGIN")
            state.depth = 1
            try:
                yield
            finally:
                state.depth = 0
                with conn.lock:
                    if conn.open:
                        with contextlib.suppress(sqlite3.Error):
                            conn.raw.execute("COMMIT")

    def encode_datetime(self, value: datetime) -> str:
        return value.isoformat(timespec="microseconds")
