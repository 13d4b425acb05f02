"""The shape every SQL backend shares: statements, transactions, schema checks, errors."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from aicmo.db.statement import Sql
from aicmo.errors import SchemaError

__all__ = ["Params", "Row", "SqlDatabase"]

Params = Mapping[str, Any]
Row = dict[str, Any]


class SqlDatabase(ABC):
    """A database reached through hand-written SQL (SQLite or PostgreSQL).

    Outside :meth:`transaction` every statement is its own transaction. Inside it, every
    statement of the calling thread joins the one transaction; a nested block is a
    savepoint. Driver errors come out as ``aicmo.errors`` exceptions.
    """

    dialect: str
    #: ``True`` when the application owns the database and may upgrade it on connect.
    self_upgrading: bool = False

    def __init__(self, describe: str):
        self.describe = describe
        self._schema_checked = False
        self._schema_lock = threading.Lock()
        self.schema_check: Callable[[SqlDatabase], None] | None = None

    # -- statements ----------------------------------------------------------------------
    @abstractmethod
    def execute(self, stmt: Sql, params: Params | None = None) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    def execute_many(self, stmt: Sql, params: Sequence[Params]) -> int:
        """Run one statement once per parameter set; return the rows changed in all."""

    @abstractmethod
    def fetch_all(self, stmt: Sql, params: Params | None = None) -> list[Row]:
        """Run a query; return its rows as dicts keyed by column name."""

    def fetch_one(self, stmt: Sql, params: Params | None = None) -> Row | None:
        rows = self.fetch_all(stmt, params)
        return rows[0] if rows else None

    # -- transactions --------------------------------------------------------------------
    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction (a savepoint when nested)."""

    @abstractmethod
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction` or :meth:`snapshot`."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """A consistent read of several statements (joins an open transaction)."""

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
        """Raise ``SchemaError`` unless the schema matches the code (checked once)."""
        if self._schema_checked:
            return
        with self._schema_lock:
            if self._schema_checked or self.schema_check is None:
                return
            self.schema_check(self)
            self._schema_checked = True

    def schema_changed(self) -> None:
        """Forget the last schema check (after migrating)."""
        self._schema_checked = False

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


def schema_error_for_missing_table(describe: str, detail: str) -> SchemaError:
    return SchemaError(
        f"{describe} has no aicmo schema ({detail}); run `aicmo db upgrade` "
        "or call app.migrate() first"
    )
