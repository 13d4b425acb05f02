"""Schema migrations: yoyo SQL files, one folder per dialect, shipped inside the wheel.

Each migration ``NNNN_name.sql`` has a ``NNNN_name.rollback.sql`` sibling, and both
dialect folders hold the same ids. Migrations run under yoyo's ``backend.lock()``, so two
processes migrating one database at once apply each migration exactly once.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import attrs

from aicmo.db.base import SqlDatabase
from aicmo.errors import BackendError, ConfigurationError, SchemaError

__all__ = [
    "MIGRATION_TABLE",
    "MigrationStatus",
    "break_lock",
    "check_schema",
    "downgrade",
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
    if not db.table_exists(MIGRATION_TABLE):
        return {}
    rows: Any = db.raw_fetch_all(  # type: ignore[attr-defined]
        f"SELECT migration_id, applied_at_utc FROM {MIGRATION_TABLE}"  # noqa: S608
    )
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
    from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
    from yoyo.backends.core.sqlite3 import SQLiteBackend
    from yoyo.connections import DatabaseURI

    base: Any = SQLiteBackend if db.dialect == "sqlite" else PostgresqlPsycopgBackend

    class Backend(base):  # type: ignore[misc]
        def connect(self, dburi: Any) -> Any:
            return db.open_raw_connection()

        def copy(self) -> Any:
            return Backend(self.uri, self.migration_table)

    backend = Backend(
        DatabaseURI(db.dialect, None, None, None, None, db.describe, {}), MIGRATION_TABLE
    )
    backend.init_database()
    return backend


@contextlib.contextmanager
def _locked(db: SqlDatabase, lock_timeout: float) -> Iterator[tuple[Any, Any]]:
    """A yoyo backend holding yoyo's migration lock, and the dialect's migrations."""
    from yoyo import exceptions, read_migrations

    with db.migration_guard(), migrations_dir(db.dialect) as folder:
        try:
            with _yoyo_backend(db) as backend, backend.lock(timeout=lock_timeout):
                yield backend, read_migrations(str(folder))
        except exceptions.LockTimeout as exc:
            raise BackendError(
                f"{db.describe}: timed out after {lock_timeout:g}s waiting for the migration "
                f"lock ({exc}). If no migration is running, `aicmo db break-lock` clears it"
            ) from None
        except db_errors(db) as exc:
            raise BackendError(f"{db.describe}: migration failed: {exc}") from exc
        finally:
            db.schema_changed()


def db_errors(db: SqlDatabase) -> tuple[type[BaseException], ...]:
    if db.dialect == "sqlite":
        import sqlite3

        return (sqlite3.Error,)
    import psycopg

    return (psycopg.Error,)


def upgrade(db: SqlDatabase, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[str]:
    """Apply every pending migration; return the ids applied (none if up to date).

    Refuses (``SchemaError``) a database that has migrations this code does not know.
    """
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
    known = known_migration_ids(db.dialect)
    if to is not None and to != "base" and to not in known:
        raise ConfigurationError(
            f"downgrade target {to!r} is not a migration id; use one of "
            f"{', '.join(known)} or 'base'"
        )
    with _locked(db, lock_timeout) as (backend, migrations):
        unknown = sorted(set(_applied(db)) - set(known))
        if unknown:
            raise _newer_error(db, unknown)
        applied = list(backend.to_rollback(migrations))  # newest first
        if to is None:
            chosen = applied[:1]
        elif to == "base":
            chosen = applied
        else:
            chosen = [m for m in applied if m.id > to]
        todo = migrations.__class__(chosen)
        backend.rollback_migrations(todo)
        return [m.id for m in chosen]


def break_lock(db: SqlDatabase) -> None:
    """Remove a migration lock left by a process that died while migrating."""
    with db.migration_guard(), _yoyo_backend(db) as backend:
        backend.break_lock()
