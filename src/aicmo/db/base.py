"""The shape every SQL backend shares: statements, transactions, schema checks, errors."""

from __future__ import annotations

import functools
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aicmo.db.statement import Sql
from aicmo.errors import BackendError, SchemaError

if TYPE_CHECKING:
    from aicmo.db.mapping import RowMapper

T = TypeVar("T")

__all__ = [
    "NOTICE_AFTER",
    "LockWait",
    "Params",
    "Row",
    "SqlDatabase",
    "closed_error",
    "log",
    "run_last",
    "run_precommit",
]

log = logging.getLogger("aicmo.db")
"""What the kernel tells an operator (a wait on a lock, a pooler that lost a prepared
statement). The library never prints: the CLI shows these records on stderr; an
application attaches its own handler."""
log.addHandler(logging.NullHandler())

NOTICE_AFTER = 2.0
"""Seconds a wait for a lock lasts before the kernel logs (once per wait) what it waits for."""

Params = Mapping[str, Any]
Row = dict[str, Any]
LockWait = Callable[[Callable[[], tuple[str, str]]], None]
"""Called by a migration after each failed try for a lock, with what tells what it waits
for and what to do (``(what, todo)``); sleeps before the next try, raises at the deadline."""


class Batched:
    """One item of a :meth:`SqlDatabase.batch_before_commit` batch, as queued."""

    __slots__ = ("fn", "item", "last")

    def __init__(self, fn: Callable[[list[Any]], object], item: object, last: bool = False):
        self.fn = fn
        self.item = item
        self.last = last

    def __call__(self) -> None:
        self.fn([self.item])


def run_precommit(queue: list[Callable[[], object]]) -> list[Callable[[], object]]:
    """Run and empty a transaction's :meth:`~SqlDatabase.before_commit` ``queue``
    (callbacks may add to it while it runs); the :class:`Batched` items of one function
    go to one call of it, at the place of the first (every backend runs its queue here).
    The batches asked ``last`` are not run: they come back as one call per function (in
    the order first asked), for :func:`run_last` just before the commit."""
    last: dict[Callable[[list[Any]], object], list[Any]] = {}
    while queue:
        first = queue.pop(0)
        if type(first) is not Batched:
            first()
            continue
        if first.last:
            last.setdefault(first.fn, []).append(first.item)
            continue
        items, rest = [first.item], []
        for queued in queue:
            if type(queued) is Batched and queued.fn == first.fn and not queued.last:
                items.append(queued.item)
            else:
                rest.append(queued)
        queue[:] = rest
        first.fn(items)
    return [functools.partial(fn, items) for fn, items in last.items()]


def run_last(queue: list[Callable[[], object]], calls: list[Callable[[], object]]) -> None:
    """Call the ``last`` batches' ``calls`` (from :func:`run_precommit`), which may ask for
    no more work: ``RuntimeError`` if one did (it would be lost, or on PostgreSQL sent
    where no result can be read)."""
    for call in calls:
        call()
    if queue:
        raise RuntimeError(
            "a batch_before_commit(..., last=True) function asked for more before-commit "
            "work; a last batch must only write"
        )


class SqlDatabase(ABC):
    """A database reached through hand-written SQL (SQLite or PostgreSQL).

    Outside :meth:`transaction` every statement is its own transaction. Inside it, every
    statement of the calling thread joins the one transaction; a nested block is a
    savepoint. Driver errors come out as ``aicmo.errors`` exceptions.
    """

    dialect: str
    #: ``True`` when the application owns the database and may upgrade it on connect.
    self_upgrading: bool = False
    #: The driver's exception classes (a migration that raises one fails as BackendError).
    driver_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, describe: str):
        self.describe = describe
        self._schema_checked = False
        self._schema_lock = threading.Lock()
        self.schema_check: Callable[[SqlDatabase], None] | None = None

    # -- statements ----------------------------------------------------------------------
    # The public calls check the schema (:meth:`check_schema`: once, then a flag test) and
    # hand over to the backend's ``_``-prefixed form.
    def execute(self, stmt: Sql, params: Params | None = None) -> int:
        """Run one statement; return the number of rows it changed."""
        self.check_schema()
        return self._execute(stmt, params)

    def execute_many(self, stmt: Sql, params: Sequence[Params]) -> int:
        """Run one statement once per parameter set; return the rows changed in all."""
        self.check_schema()
        return self._execute_many(stmt, params)

    def fetch_all(self, stmt: Sql, params: Params | None = None) -> list[Row]:
        """Run a query; return its rows as dicts keyed by column name."""
        self.check_schema()
        names, rows = self._fetch_rows(stmt, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetch_rows(
        self, stmt: Sql, params: Params | None = None
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """Run a query; return its column names and its rows as tuples (no dict per row:
        the read path of the repositories, see :meth:`load_all`)."""
        self.check_schema()
        return self._fetch_rows(stmt, params)

    def load_all(self, stmt: Sql, params: Params | None, mapper: RowMapper[T]) -> list[T]:
        """The DTOs ``mapper`` builds from the rows of a query (``mapper.positional``:
        each value read at its column's position, compiled once per statement)."""
        self.check_schema()
        names, rows = self._fetch_rows(stmt, params)
        if not rows:
            return []
        load = mapper.positional(names)
        return [load(row) for row in rows]

    def load_one(self, stmt: Sql, params: Params | None, mapper: RowMapper[T]) -> T | None:
        """The DTO of the first row of a query, or ``None``."""
        self.check_schema()
        names, rows = self._fetch_rows(stmt, params)
        return mapper.positional(names)(rows[0]) if rows else None

    def write(self, stmt: Sql, params: Params) -> int:
        """:meth:`execute` in a transaction of its own (or the caller's)."""
        with self.transaction():
            return self.execute(stmt, params)

    def fetch_one(self, stmt: Sql, params: Params | None = None) -> Row | None:
        """The first row of a query, or ``None``."""
        rows = self.fetch_all(stmt, params)
        return rows[0] if rows else None

    @abstractmethod
    def _execute(self, stmt: Sql, params: Params | None) -> int: ...

    @abstractmethod
    def _execute_many(self, stmt: Sql, params: Sequence[Params]) -> int: ...

    @abstractmethod
    def _fetch_rows(
        self, stmt: Sql, params: Params | None
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The column names (``()`` when there are no rows) and the rows of a query."""

    @abstractmethod
    def raw_fetch_all(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """A query in the driver's own parameter style that skips the schema check (the
        schema check and the migration runner use it)."""

    # -- transactions --------------------------------------------------------------------
    def transaction(
        self, *, savepoints: bool = True, defer_lock: bool = False
    ) -> AbstractContextManager[None]:
        """A write transaction (a savepoint when nested).

        ``savepoints=False`` on the outermost block: every block nested in it joins it
        without a savepoint (two statements fewer each). Only for a block that lets every
        exception raised inside leave it (then the whole transaction rolls back, as with
        savepoints); a caller that catches an error inside and carries on needs the
        savepoints (the saga's step transactions never do).

        ``defer_lock=True`` on the outermost block (SQLite): ``BEGIN IMMEDIATE``, which
        takes the database's one write lock, is sent at the block's first write or first
        nested block (a repository's write), not at its start, so what the block reads
        and computes before that runs without holding other writers back. Those reads
        are then each on their own, not in the transaction's snapshot: only for a block
        whose writes do not depend on them being consistent with each other (the saga's
        steps: their writes are fenced by the lease, and a repository's own
        read-then-write runs inside its nested block). PostgreSQL takes row locks only
        as statements need them: there it changes nothing."""
        self.check_schema()
        return self._transaction(savepoints, defer_lock)

    def before_commit(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` inside the open transaction just before it commits, after every
        statement of the block, in the order asked (a callback may ask for more); if
        ``fn`` raises, the transaction rolls back. Asked inside a savepoint that rolls
        back, it is dropped with it. Outside a transaction ``fn`` runs now, in one of its
        own. For writes that are cheaper batched at the end of a transaction (one
        ``executemany`` of everything the block gathered) than sent one by one."""
        queue = self._precommit_queue()
        if queue is None:
            with self.transaction():
                fn()
        else:
            queue.append(fn)

    def batch_before_commit(
        self, fn: Callable[[list[Any]], object], item: object, *, last: bool = False
    ) -> None:
        """:meth:`before_commit` for one ``item`` of a batch: ``fn`` is called once, with
        every item asked for it in the transaction (in the order asked), at the place of
        the first; an item asked inside a savepoint that rolls back is dropped with it.
        Outside a transaction ``fn([item])`` runs now, in one of its own. For one
        ``executemany`` of what a block gathered (the audit trail's entries).

        ``last=True``: ``fn`` only writes (it reads no result of its statements and asks
        for no more before-commit work): it is called after every other callback, right
        before the commit, and PostgreSQL sends its statements and the ``COMMIT`` together
        (pipeline mode: one round trip instead of two). Its errors still fail the
        transaction."""
        self.before_commit(Batched(fn, item, last))

    @abstractmethod
    def _precommit_queue(self) -> list[Callable[[], object]] | None:
        """The open transaction's :meth:`before_commit` callbacks (``None``: none open)."""

    @staticmethod
    def _run_precommit(queue: list[Callable[[], object]]) -> list[Callable[[], object]]:
        return run_precommit(queue)

    _run_last = staticmethod(run_last)

    def snapshot(self) -> AbstractContextManager[None]:
        """A consistent read of several statements (joins an open transaction)."""
        self.check_schema()
        return self._snapshot()

    @abstractmethod
    def _transaction(self, savepoints: bool, defer_lock: bool) -> AbstractContextManager[None]: ...

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[None]: ...

    @abstractmethod
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction` or :meth:`snapshot`."""

    # -- values --------------------------------------------------------------------------
    @abstractmethod
    def encode_datetime(self, value: datetime) -> Any:
        """A UTC datetime as this dialect's driver stores it."""

    def now(self) -> Any:
        """The current UTC time as this dialect's driver stores it (``created_at`` and
        ``updated_at`` bookkeeping columns)."""
        return self.encode_datetime(datetime.now(UTC))

    def clock(self) -> datetime:
        """The database's current time (UTC), the one clock every process sharing the
        database agrees on (the workflow's leases expire by it). SQLite: this machine's
        clock, which every user of the file shares."""
        return datetime.now(UTC)

    # -- schema --------------------------------------------------------------------------
    def check_schema(self) -> None:
        """Raise ``SchemaError`` unless the schema matches the code (checked once; every
        statement and transaction calls it first, so later calls are one flag test)."""
        if self._schema_checked:
            return
        self.refuse_foreign()
        with self._schema_lock:
            if self._schema_checked or self.schema_check is None:
                return
            self.schema_check(self)
            self._schema_checked = True

    def refuse_foreign(self) -> None:
        """Raise ``SchemaError`` if the database holds another application's data (aicmo
        then neither reads its migration history nor migrates it). SQLite tells by the
        file's tables; a PostgreSQL schema is the operator's to give."""
        return

    def schema_changed(self) -> None:
        """Forget the last schema check (after migrating)."""
        self._schema_checked = False

    # -- migrations: what differs between the dialects ----------------------------------
    def lock_key(self) -> str:
        """The name under which this process counts its own holders of this database's
        migration lock (a file's real path, or the description)."""
        return self.describe

    @abstractmethod
    def yoyo_backend_class(self) -> Any:
        """The yoyo backend class for this dialect (the migration runner subclasses it)."""

    def migration_session_lock(self, backend: Any, wait: LockWait) -> AbstractContextManager[None]:
        """A lock the migration connection's session holds around the lock row, dropped by
        the server if the process dies (none by default)."""
        return nullcontext()

    def polling_writes(self, backend: Any, poll: float) -> AbstractContextManager[None]:
        """Make the migration connection's writes give up after ``poll`` seconds instead of
        waiting out a lock, for the block (so a long wait is reported while it lasts)."""
        return nullcontext()

    @abstractmethod
    def stale_lock_reason(self, pid: int, alive: Callable[[int], bool]) -> str | None:
        """Why a migration lock row of process ``pid`` is stale (``alive`` tells whether a
        process of this machine runs), or ``None`` when its holder may be migrating."""

    @abstractmethod
    def open_raw_connection(self) -> Any:
        """A new driver connection in autocommit mode, for the migration tool."""

    @abstractmethod
    def migration_guard(self) -> AbstractContextManager[None]:
        """Held while migrations run on this process (serializes private databases)."""

    @abstractmethod
    def table_exists(self, name: str) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...


def schema_mismatch(db: SqlDatabase, detail: str) -> SchemaError:
    """The error for a statement that found a table, column or constraint missing: the
    schema is not the one this code was written for (never migrated, migrated down by
    another process since the check, or changed by hand). The next call checks the schema
    again, and says which migrations are pending."""
    db.schema_changed()
    return SchemaError(
        f"{db.describe} does not have the schema this aicmo needs ({detail}): it was never "
        "migrated, was migrated down since, or was changed by hand. Run `aicmo db upgrade` "
        "(or app.migrate()); `aicmo db status` shows what is pending"
    )


def closed_error(describe: str) -> BackendError:
    """The error every call on a closed app raises, on every backend."""
    return BackendError(
        f"{describe}: the app is closed (app.close(), or the end of its `with` block); "
        "open a new one with aicmo.connect()"
    )
