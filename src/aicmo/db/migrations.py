"""Schema migrations: yoyo SQL files, one folder per dialect, shipped inside the wheel.

Each migration ``NNNN_name.sql`` has a ``NNNN_name.rollback.sql`` sibling, and both
dialect folders hold the same ids.

Safety against concurrent and interrupted migrations:

* Migrations run under yoyo's lock row (table ``yoyo_lock``), so two processes migrating
  one database at once apply each migration exactly once. On PostgreSQL a session-level
  advisory lock (one per schema) is taken first: the server drops it with the session of a
  process that dies, so a lock row found while holding it was left by a dead process.
* Each migration's statements **and** its ``_yoyo_migration`` mark commit in one
  transaction (yoyo itself commits them separately, so a kill in between would leave a
  schema change recorded nowhere and a re-run failing on "table already exists").
* A database that is up to date is found so by a read: only pending migrations take the
  lock (a write), so read-only commands never wait behind another connection's write lock.
* A wait for the lock that lasts more than :data:`~aicmo.db.base.NOTICE_AFTER` seconds is
  logged once under ``aicmo.db``, naming what it waits for (another process migrating, or
  another connection's SQLite write lock); a timeout names the same cause.
* A lock row left by a dead process (on SQLite: a process id no longer running on this
  machine, which WAL requires all users of the file to share; on PostgreSQL: see above) is
  reported at once as a ``SchemaError`` that says how to clear it (``aicmo db break-lock``),
  instead of waiting out the lock timeout.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import attrs

from aicmo.db.base import NOTICE_AFTER, SqlDatabase, log
from aicmo.db.pids import process_gone
from aicmo.errors import BackendError, ConfigurationError, SchemaError

__all__ = [
    "MIGRATION_TABLE",
    "MigrationStatus",
    "break_lock",
    "check_schema",
    "downgrade",
    "downgrade_losses",
    "known_migration_ids",
    "status",
    "upgrade",
]

MIGRATION_TABLE = "_yoyo_migration"
DEFAULT_LOCK_TIMEOUT = 60.0


@attrs.frozen
class MigrationStatus:
    """One migration and where the database stands with it."""

    id: str
    state: Literal["applied", "pending", "unknown"]
    applied_at: datetime | None = None


@contextlib.contextmanager
def migrations_dir(dialect: str) -> Iterator[Path]:
    """The folder of ``dialect``'s migrations: inside the installed package, else the
    source tree's top-level ``migrations/`` (an editable install)."""
    shipped = importlib.resources.files("aicmo").joinpath("migrations", dialect)
    if shipped.is_dir():
        with importlib.resources.as_file(shipped) as path:
            yield Path(path)
        return
    source = Path(__file__).resolve().parents[3] / "migrations" / dialect
    if not source.is_dir():
        raise SchemaError(f"aicmo's {dialect} migrations are missing (looked in {source})")
    yield source


def known_migration_ids(dialect: str) -> list[str]:
    with migrations_dir(dialect) as folder:
        return sorted(
            p.name.removesuffix(".sql")
            for p in folder.glob("*.sql")
            if not p.name.endswith(".rollback.sql")
        )


def _applied(db: SqlDatabase) -> dict[str, datetime | None]:
    db.refuse_foreign()
    if not db.table_exists(MIGRATION_TABLE):
        return {}
    rows = db.raw_fetch_all(f"SELECT migration_id, applied_at_utc FROM {MIGRATION_TABLE}")  # noqa: S608
    applied: dict[str, datetime | None] = {}
    for migration_id, applied_at in rows:
        when = applied_at
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        if isinstance(when, datetime) and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        applied[str(migration_id)] = when
    return applied


def status(db: SqlDatabase) -> list[MigrationStatus]:
    """Every migration this aicmo knows, in order, then any the database has that it does not."""
    applied = _applied(db)
    known = known_migration_ids(db.dialect)
    result = [
        MigrationStatus(id=m, state="applied", applied_at=applied[m])
        if m in applied
        else MigrationStatus(id=m, state="pending")
        for m in known
    ]
    result += [
        MigrationStatus(id=m, state="unknown", applied_at=applied[m])
        for m in sorted(applied)
        if m not in known
    ]
    return result


def _newer_error(db: SqlDatabase, unknown: list[str]) -> SchemaError:
    return SchemaError(
        f"{db.describe} is newer than this aicmo: it has migrations this version does not "
        f"know ({', '.join(unknown)}). Upgrade aicmo (pip install -U aicmo) instead of "
        "using an older version on this database"
    )


def check_schema(db: SqlDatabase) -> None:
    """Raise ``SchemaError`` when the database is behind or ahead of the code."""
    st = status(db)
    unknown = [m.id for m in st if m.state == "unknown"]
    if unknown:
        raise _newer_error(db, unknown)
    pending = [m.id for m in st if m.state == "pending"]
    if pending:
        raise SchemaError(
            f"{db.describe} is behind this aicmo: {len(pending)} pending migration(s) "
            f"({', '.join(pending)}). Run `aicmo db upgrade` or call app.migrate()"
        )


def _yoyo_backend(db: SqlDatabase) -> Any:
    """A yoyo backend whose connections are new raw connections of ``db``."""
    from yoyo.connections import DatabaseURI

    base: Any = db.yoyo_backend_class()

    class Backend(base):  # type: ignore[misc]
        def connect(self, dburi: Any) -> Any:
            return db.open_raw_connection()

        def copy(self) -> Any:
            return Backend(self.uri, self.migration_table)

        # yoyo runs a migration's statements on a copy of the backend and commits them,
        # then marks the migration applied in a second transaction: a process killed in
        # between leaves the schema changed but the migration pending, and every later
        # upgrade fails on "already exists". Here both are one transaction.
        def apply_one(self, migration: Any, force: bool = False, mark: bool = True) -> None:
            self.ensure_internal_schema_updated()
            with self.transaction():
                migration.process_steps(self, "apply", force=force)
                self.log_migration(migration, "apply")
                if mark:
                    self.mark_one(migration, log=False)

        # yoyo's own set-up creates its lock table and probes for transactional DDL by
        # creating a table: writes that would wait, unreported, for another connection's
        # write lock (and the probe would then answer "no"). Both dialects roll DDL back;
        # the lock table is created where the lock is taken (``_lock_row``).
        def init_database(self) -> None:
            self.has_transactional_ddl = True

        def rollback_one(self, migration: Any, force: bool = False) -> None:
            self.ensure_internal_schema_updated()
            with self.transaction():
                migration.process_steps(self, "rollback", force=force)
                self.log_migration(migration, "rollback")
                self.unmark_one(migration, log=False)

    backend = Backend(
        DatabaseURI(db.dialect, None, None, None, None, db.describe, {}), MIGRATION_TABLE
    )
    backend.init_database()
    return backend


LOCK_TABLE = "yoyo_lock"
_POLL = 0.2


def _ensure_lock_table(db: SqlDatabase, backend: Any) -> None:
    if not db.table_exists(LOCK_TABLE):
        backend.execute(backend.format_sql(backend.create_lock_table_sql))


def _lock_holder(db: SqlDatabase, backend: Any) -> tuple[int, Any] | None:
    """The process id and time of the migration lock row, or ``None`` if there is none."""
    if not db.table_exists(LOCK_TABLE):
        return None
    row = backend.execute(f"SELECT pid, ctime FROM {LOCK_TABLE}").fetchone()  # noqa: S608
    return None if row is None else (int(row[0]), row[1])


_HELD: Counter[str] = Counter()
"""Threads of this process taking or holding each database's migration lock."""
_HELD_LOCK = threading.Lock()


def _process_alive(pid: int, db: SqlDatabase) -> bool:
    """Whether ``pid`` runs on this machine and may hold ``db``'s lock (``True`` when that
    cannot be told); called by a thread taking the lock. Our own pid holds it only if
    another thread of ours is taking or holding it: else a process that died and was
    started again with the same pid (PID 1 of a container) left it stale."""
    if pid == os.getpid():
        with _HELD_LOCK:
            return _HELD[db.lock_key()] > 1
    return not process_gone(pid)


def _stale_lock_error(db: SqlDatabase, holder: tuple[int, Any], why: str) -> SchemaError:
    pid, since = holder
    return SchemaError(
        f"{db.describe}: a migration was interrupted: process {pid} took the migration lock "
        f"at {since} UTC and {why}. Each migration commits as a whole, so none is half "
        "applied. If no other process is migrating this database, clear the stale lock with "
        "`aicmo db break-lock` (or app.break_migration_lock()), then run `aicmo db upgrade` "
        "(or app.migrate())"
    )


def _waiting_for(holder: tuple[int, Any] | None) -> tuple[str, str]:
    """What a wait for the migration lock waits for, and what to do about it: another
    process migrating (it holds yoyo's lock row), or, on SQLite with no lock row, another
    connection holding the write lock (no migration is running, so ``break-lock`` is no
    help)."""
    if holder is not None:
        return (
            f"the migration lock (process {holder[0]} took it at {holder[1]} UTC)",
            "Another process is migrating this database: try again when it is done. If "
            "that process is gone, `aicmo db break-lock` clears the lock",
        )
    return (
        "the write lock (another connection holds it: a long write transaction, not a migration)",
        "No migration is running: try again when that transaction is done, or find and "
        "stop the process that keeps it open",
    )


class _Wait:
    """A wait for a lock: logs once, after ``NOTICE_AFTER`` seconds, what it waits for; at
    the deadline, raises ``BackendError`` naming the same cause."""

    def __init__(self, db: SqlDatabase, timeout: float):
        self.db = db
        self.timeout = timeout
        self.started = time.monotonic()
        self.noticed = False

    def tick(self, why: Callable[[], tuple[str, str]]) -> None:
        """Called after each failed attempt; sleeps before the next one."""
        waited = time.monotonic() - self.started
        if waited > self.timeout:
            what, todo = why()
            raise BackendError(
                f"{self.db.describe}: timed out after {self.timeout:g}s waiting for {what}. {todo}"
            )
        if not self.noticed and waited >= NOTICE_AFTER:
            self.noticed = True
            log.warning(
                "%s: waiting for %s (for up to %gs)", self.db.describe, why()[0], self.timeout
            )
        time.sleep(_POLL)


@contextlib.contextmanager
def _migration_lock(db: SqlDatabase, backend: Any, timeout: float) -> Iterator[None]:
    """Hold the migration lock for the block (see the module's docstring).

    A lock row of a dead process raises ``SchemaError`` at once; a live holder is waited
    for up to ``timeout`` seconds, then ``BackendError``.
    """
    wait = _Wait(db, timeout)
    key = db.lock_key()
    with _HELD_LOCK:
        _HELD[key] += 1  # from now until the row is gone, a row with our pid is alive
    try:
        with db.migration_session_lock(backend, wait.tick), _lock_row(db, backend, wait):
            yield
    finally:
        with _HELD_LOCK:
            _HELD[key] -= 1


@contextlib.contextmanager
def _lock_row(db: SqlDatabase, backend: Any, wait: _Wait) -> Iterator[None]:
    """yoyo's lock row, inserted for the block (waiting for a live holder), then deleted."""
    pid = os.getpid()
    # Polls, so that a long wait for a write lock is reported while it lasts.
    with db.polling_writes(backend, _POLL):
        while True:
            try:
                with backend.transaction():
                    _ensure_lock_table(db, backend)
                    backend.execute(
                        f"INSERT INTO {LOCK_TABLE} (locked, ctime, pid) "  # noqa: S608
                        "VALUES (1, :when, :pid)",
                        {"when": datetime.now(UTC).replace(tzinfo=None), "pid": pid},
                    )
                break
            except backend.DatabaseError:
                holder = _lock_holder(db, backend)
                if holder is not None:
                    alive = functools.partial(_process_alive, db=db)
                    stale = db.stale_lock_reason(holder[0], alive)
                    if stale is not None:
                        raise _stale_lock_error(db, holder, stale) from None
                wait.tick(functools.partial(_waiting_for, holder))
    backend._is_locked = True  # yoyo's own lock() calls inside see the lock as held
    try:
        yield
    finally:
        backend._is_locked = False
        backend._delete_lock_row(pid)


@contextlib.contextmanager
def _locked(db: SqlDatabase, lock_timeout: float) -> Iterator[tuple[Any, Any]]:
    """A yoyo backend holding the migration lock, and the dialect's migrations."""
    from yoyo import read_migrations

    with db.migration_guard(), migrations_dir(db.dialect) as folder:
        try:
            with _yoyo_backend(db) as backend, _migration_lock(db, backend, lock_timeout):
                yield backend, read_migrations(str(folder))
        except db.driver_errors as exc:
            raise BackendError(f"{db.describe}: migration failed: {exc}") from exc
        finally:
            db.schema_changed()


def upgrade(db: SqlDatabase, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[str]:
    """Apply every pending migration; return the ids applied (none if up to date).

    Refuses (``SchemaError``) a database that has migrations this code does not know. A
    database that is up to date is found so by a read, without taking the lock.
    """
    current = status(db)
    unknown = [m.id for m in current if m.state == "unknown"]
    if unknown:
        raise _newer_error(db, unknown)
    if all(m.state == "applied" for m in current):
        return []
    with _locked(db, lock_timeout) as (backend, migrations):
        known = {m.id for m in migrations}
        unknown = sorted(set(_applied(db)) - known)
        if unknown:
            raise _newer_error(db, unknown)
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
        return [m.id for m in todo]


def downgrade(
    db: SqlDatabase, to: str | None = None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> list[str]:
    """Roll back migrations; return the ids rolled back, newest first.

    ``to=None`` rolls back the newest applied migration; ``to=ID`` rolls back every
    migration after ``ID`` (which stays applied); ``to="base"`` rolls back all of them.
    """
    known = _known_target(db, to)
    with _locked(db, lock_timeout) as (backend, migrations):
        unknown = sorted(set(_applied(db)) - set(known))
        if unknown:
            raise _newer_error(db, unknown)
        applied = list(backend.to_rollback(migrations))  # newest first
        ids = _rolled_back([m.id for m in applied], to)
        chosen = [m for m in applied if m.id in ids]
        todo = migrations.__class__(chosen)
        backend.rollback_migrations(todo)
        return [m.id for m in chosen]


def _known_target(db: SqlDatabase, to: str | None) -> list[str]:
    """The known migration ids; ``ConfigurationError`` if ``to`` is none of them."""
    known = known_migration_ids(db.dialect)
    if to is not None and to != "base" and to not in known:
        raise ConfigurationError(
            f"downgrade target {to!r} is not a migration id; use one of "
            f"{', '.join(known)} or 'base'"
        )
    return known


def _rolled_back(applied: list[str], to: str | None) -> list[str]:
    """Which of the ``applied`` ids (newest first) ``downgrade(db, to)`` rolls back."""
    if to is None:
        return applied[:1]
    if to == "base":
        return applied
    return [m for m in applied if m > to]


_CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)", re.IGNORECASE)
_SQL_COMMENT = re.compile(r"--[^\n]*")
_ROW_LOSSES = re.compile(r"^-- aicmo-losses (\w+): (SELECT [^\n]+)$", re.MULTILINE)
"""A rollback that deletes rows of a table it keeps says so in a line of its own:
``-- aicmo-losses <table>: SELECT COUNT(*) ...`` (the rows it deletes)."""


def downgrade_losses(db: SqlDatabase, to: str | None = None) -> dict[str, int]:
    """The tables that ``downgrade(db, to)`` would drop and that hold rows, with their
    row counts (newest migration first); changes nothing.

    A migration's rollback drops the tables its migration created, so those are the
    tables created by the migrations to roll back that exist now (a table a migration
    only rebuilds keeps its rows through the rollback). A rollback that deletes some rows
    of a table it keeps counts them in an ``-- aicmo-losses`` line (0016: every version of
    a package but the latest).
    """
    known = _known_target(db, to)
    applied = sorted((m for m in _applied(db) if m in known), reverse=True)
    losses: dict[str, int] = {}
    with migrations_dir(db.dialect) as folder:
        rolled_back = _rolled_back(applied, to)
        dropped = [
            table
            for migration_id in rolled_back
            for table in _CREATE_TABLE.findall(
                _SQL_COMMENT.sub("", (folder / f"{migration_id}.sql").read_text())
            )
            if db.table_exists(table)
        ]
        # A table name (\w+ only) from aicmo's own migration files, never input.
        counts = [(t, f'SELECT COUNT(*) FROM "{t}"') for t in dropped]  # noqa: S608
        for migration_id in rolled_back:  # rows deleted from tables that stay (0016's)
            rollback = (folder / f"{migration_id}.rollback.sql").read_text()
            counts += [
                (table, count)
                for table, count in _ROW_LOSSES.findall(rollback)
                if table not in dropped and db.table_exists(table)
            ]
        for table, count in counts:
            rows = db.raw_fetch_all(count)
            if rows[0][0]:
                losses[table] = losses.get(table, 0) + int(rows[0][0])
    return losses


def break_lock(db: SqlDatabase) -> bool:
    """Remove a migration lock left by a process that died while migrating; return
    whether there was one."""
    with db.migration_guard(), _yoyo_backend(db) as backend:
        if _lock_holder(db, backend) is None:
            return False
        backend.break_lock()
        return True
