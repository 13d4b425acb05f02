"""Moving every record from one backend to another: copy, export, import and backup.

``copy(source, target)`` reads every aicmo table of the source and writes it into the
target, SQLite to PostgreSQL, PostgreSQL to SQLite (or SQLite to SQLite). What it copies
is not a hand-kept list: the tables, their columns, primary keys and the order in which
they can be written (parents before children) come from the **live schema** of the source
(``sqlite_master``/``PRAGMA foreign_key_list`` on SQLite, ``information_schema`` and
``pg_constraint`` on PostgreSQL), minus yoyo's bookkeeping. A table a migration adds is
copied without a change here. The target is first migrated to the schema version of the
source (both must be at this aicmo's version: a source that is behind is refused with the
command that upgrades it, one that is newer on either side is refused).

Why rows and not DTOs: reading every record through the repositories would need a
hand-kept list of "list everything" calls per module (the ports have none) and would
rebuild every DTO for nothing. The rows are what the repositories' row mappers
(:mod:`aicmo.db.mapping`) wrote, in the encodings the mappers define, and they are written
back in those encodings; ``tests/test_transfer.py`` proves it by comparing every
repository read of the source and the target after a workload of real runs.

Values are moved in one **canonical form** that does not depend on the dialect, the one
aicmo's SQLite rows already have: datetimes as ISO-8601 UTC text with microseconds,
booleans as 0/1, JSON-valued columns as the JSON text the row mappers wrote (aicmo stores
JSON as text on both dialects), numbers and text as they are. Writing to PostgreSQL turns
text back into ``timestamptz`` and 0/1 into ``boolean`` where the target's column has that
type. Export files hold exactly that form, one JSON object per line.

Safety:

* The records are written in **one transaction** on the target, after the schema step
  (migrations commit on their own, as ``aicmo db upgrade`` would): an interrupted copy
  (an error, Ctrl-C, ``kill -9``, a lost connection) leaves every record of the target as
  it was. It is not resumable: run it again.
* Before committing, every table of the target is read back and its row count and
  checksum compared with what was meant to be written; a difference rolls everything
  back (``BackendError`` naming the tables).
* The checksum of a table is the sum (mod 2**128) of the SHA-256 of each row in the
  canonical form, so it is the same on every dialect and independent of row order.
* ``if_exists``: ``"fail"`` (default) refuses a target that holds any record; ``"skip"``
  keeps the target's rows and adds only the source's rows whose keys (primary or unique)
  are free; ``"replace"`` deletes every record of the target first (same transaction).
* Unfinished runs are copied as they are, with their leases cleared (``claimed_by`` and
  ``lease_expires_at`` set to NULL on runs that were held), since the workers holding them
  do not work on the target: a worker there takes such a run over once it is stale
  (see ``UNLEASED_STALE_AFTER``), and ``app.recover()`` at once.
* Artifact files (the package folders under the artifact root, ``artifact_dirs`` of each
  run) are **not** moved: they are files, not records. Copy the artifact root yourself
  (``rsync -a OLD_ROOT/ NEW_ROOT/``) to the same path on the new machines, or to a shared
  folder mounted at that path; runs record the root they wrote under.

Open ``memory://`` apps (tests) take part too: their records go through the repositories'
reads and saves into a private ``sqlite://`` database, then as above (records copied out
of memory get new ``created_at``/``updated_at`` bookkeeping columns, which no DTO holds);
a memory target is filled the other way round and read back record by record. A
``memory://`` URL is refused (there is nothing in it outside its process).

``backup(source, path)`` is SQLite's online backup API: a consistent copy of a live file
while workers write to it. PostgreSQL is backed up with ``pg_dump``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import attrs

from aicmo.app import MODULES, App, Repositories, Through, connect
from aicmo.db import migrations
from aicmo.db.base import SqlDatabase
from aicmo.db.statement import Sql
from aicmo.errors import (
    AicmoError,
    BackendError,
    ConfigurationError,
    ConflictError,
    SchemaError,
    ValidationError,
)
from aicmo.settings import redact, resolve_settings

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXPORT_FORMAT",
    "IF_EXISTS",
    "PG_DUMP_HINT",
    "BackupReport",
    "IfExists",
    "Progress",
    "Table",
    "TableReport",
    "TransferReport",
    "backup",
    "copy",
    "export",
    "import_from",
    "inventory",
    "live_tables",
]

log = logging.getLogger("aicmo.transfer")
log.addHandler(logging.NullHandler())

IfExists = Literal["fail", "skip", "replace"]
IF_EXISTS: tuple[str, ...] = ("fail", "skip", "replace")
"""What ``if_exists`` may be (see :func:`copy`)."""
DEFAULT_BATCH_SIZE = 500
EXPORT_FORMAT = "aicmo-export/1"
MANIFEST = "manifest.json"

Progress = Callable[[str, int, int], None]
"""``progress(table, rows_done, rows_total)``, called after each batch written."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BOOKKEEPING = ("_yoyo", "yoyo")
_MASK = (1 << 128) - 1


# -- reports -------------------------------------------------------------------------------
@attrs.frozen
class TableReport:
    """One table after a copy, export or import."""

    table: str
    source_rows: int
    target_rows: int
    #: Rows this transfer wrote (fewer than ``source_rows`` with ``if_exists="skip"``).
    written: int
    #: Checksum of the rows as they were meant to be written (leases cleared); with
    #: ``if_exists="skip"`` of the rows written only.
    source_checksum: str
    #: Checksum of the same rows read back from the target before the commit.
    target_checksum: str

    @property
    def ok(self) -> bool:
        """Whether the target holds exactly what was written (always true in a report:
        a difference rolls the transfer back)."""
        return self.source_checksum == self.target_checksum


@attrs.frozen
class TransferReport:
    """What a copy, export or import did: one :class:`TableReport` per table, in the
    order written (parents first)."""

    source: str
    target: str
    schema_version: str
    tables: tuple[TableReport, ...]
    #: Leases of unfinished runs that were cleared on the way.
    leases_cleared: int = 0
    #: Migrations applied to the target before the records were written.
    migrated: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """Rows written, all tables together."""
        return sum(t.written for t in self.tables)


@attrs.frozen
class BackupReport:
    """A finished backup: the file, its size, and how many runs it holds."""

    path: str
    bytes: int
    runs: int
    integrity: str


# -- the live schema -----------------------------------------------------------------------
@attrs.frozen
class Table:
    """A table as the live schema has it."""

    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    #: Column -> ``"timestamp"``, ``"boolean"`` or ``"plain"`` (PostgreSQL; SQLite: plain).
    kinds: dict[str, str]
    parents: tuple[str, ...]
    #: Whether ``primary_key`` is a declared key (else: every column, and no NULL-safe order).
    keyed: bool = True


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise SchemaError(f"{where}: table or column name {name!r} is not one aicmo creates")
    return name


def _quote(name: str) -> str:
    return f'"{name}"'


def _raw(db: SqlDatabase, sql: str) -> list[tuple[Any, ...]]:
    # Both backends have raw_fetch_all (a query that skips the schema check); the base
    # class may not declare it.
    rows: list[tuple[Any, ...]] = cast(Any, db).raw_fetch_all(sql)
    return rows


def _sqlite_tables(db: SqlDatabase) -> list[Table]:
    names = [
        str(r[0])
        for r in _raw(
            db,
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
    ]
    tables = []
    for name in names:
        if name.startswith(_BOOKKEEPING):
            continue
        _check_name(name, db.describe)
        info = _raw(db, f"PRAGMA table_info({_quote(name)})")
        columns = tuple(_check_name(str(r[1]), db.describe) for r in info)
        pk = tuple(str(r[1]) for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        parents = {str(r[2]) for r in _raw(db, f"PRAGMA foreign_key_list({_quote(name)})")}
        tables.append(
            Table(
                name=name,
                columns=columns,
                primary_key=pk or columns,
                kinds=dict.fromkeys(columns, "plain"),
                parents=tuple(sorted(parents - {name})),
                keyed=bool(pk),
            )
        )
    return tables


_PG_KINDS = {"timestamp with time zone": "timestamp", "boolean": "boolean"}


def _postgres_tables(db: SqlDatabase) -> list[Table]:
    columns: dict[str, list[tuple[int, str, str]]] = {}
    for table, column, data_type, position in _raw(
        db,
        "SELECT table_name, column_name, data_type, ordinal_position "
        "FROM information_schema.columns WHERE table_schema = current_schema()",
    ):
        columns.setdefault(str(table), []).append((int(position), str(column), str(data_type)))
    base = {
        str(r[0])
        for r in _raw(
            db,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
    }
    keys: dict[str, list[tuple[int, str]]] = {}
    for table, column, position in _raw(
        db,
        "SELECT c.relname, a.attname, k.n FROM pg_constraint AS p "
        "JOIN pg_class AS c ON c.oid = p.conrelid "
        "JOIN pg_namespace AS s ON s.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE p.contype = 'p' AND s.nspname = current_schema()",
    ):
        keys.setdefault(str(table), []).append((int(position), str(column)))
    parents: dict[str, set[str]] = {}
    for child, parent in _raw(
        db,
        "SELECT c.relname, f.relname FROM pg_constraint AS p "
        "JOIN pg_class AS c ON c.oid = p.conrelid JOIN pg_class AS f ON f.oid = p.confrelid "
        "JOIN pg_namespace AS s ON s.oid = c.relnamespace "
        "WHERE p.contype = 'f' AND s.nspname = current_schema()",
    ):
        parents.setdefault(str(child), set()).add(str(parent))
    tables = []
    for name in sorted(base):
        if name.startswith(_BOOKKEEPING):
            continue
        _check_name(name, db.describe)
        cols = sorted(columns.get(name, []))
        names = tuple(_check_name(c, db.describe) for _, c, _ in cols)
        tables.append(
            Table(
                name=name,
                columns=names,
                primary_key=tuple(c for _, c in sorted(keys.get(name, []))) or names,
                kinds={c: _PG_KINDS.get(t, "plain") for _, c, t in cols},
                parents=tuple(sorted(parents.get(name, set()) - {name})),
                keyed=name in keys,
            )
        )
    return tables


def live_tables(db: SqlDatabase) -> list[Table]:
    """Every aicmo table of ``db`` (yoyo's bookkeeping left out), parents before children
    (by foreign key; ties by name)."""
    found = _sqlite_tables(db) if db.dialect == "sqlite" else _postgres_tables(db)
    by_name = {t.name: t for t in found}
    ordered: list[Table] = []
    done: set[str] = set()
    pending = sorted(by_name)
    while pending:
        # The first table (by name) whose parents are all written: a module's tables stay
        # together, each after its parents.
        ready = next(
            (n for n in pending if all(p in done or p not in by_name for p in by_name[n].parents)),
            None,
        )
        if ready is None:
            raise SchemaError(f"{db.describe}: the foreign keys of {pending} form a cycle")
        ordered.append(by_name[ready])
        done.add(ready)
        pending.remove(ready)
    return ordered


# -- canonical values --------------------------------------------------------------------
def _canonical(value: Any) -> Any:
    """A column value in the dialect-independent form (see the module docstring)."""
    kind = type(value)
    if kind is datetime:
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if kind is bool:
        return int(value)
    return value


def _to_target(value: Any, kind: str, dialect: str) -> Any:
    """A canonical value as the target's driver stores it in a column of ``kind``."""
    if value is None or dialect == "sqlite":
        return value
    if kind == "timestamp" and isinstance(value, str):
        return datetime.fromisoformat(value).astimezone(UTC)
    if kind == "boolean" and type(value) is int:
        return bool(value)
    return value


_encode_values = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_sha256 = hashlib.sha256


def _row_hash(row: dict[str, Any]) -> int:
    """A row's hash: the first 16 bytes of the SHA-256 of its values (in column-name
    order) as compact JSON."""
    text = _encode_values([row[c] for c in sorted(row)])
    return int.from_bytes(_sha256(text.encode("utf-8", "surrogatepass")).digest()[:16])


def _hex(total: int) -> str:
    return f"{total & _MASK:032x}"


def _clear_lease(table: str, row: dict[str, Any]) -> bool:
    """Clear the lease of a held run (see the module docstring); whether it was held."""
    if table == "workflow_runs" and row.get("claimed_by") is not None:
        row["claimed_by"] = None
        if "lease_expires_at" in row:
            row["lease_expires_at"] = None
        return True
    return False


# -- reading and writing -------------------------------------------------------------------
def _rows(db: SqlDatabase, table: Table, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``table`` in canonical form, in batches of its primary key's order
    (keyset pages: each starts after the last key of the one before, so every page costs
    the same however far in). Call inside a snapshot or a transaction: the pages are then
    of one state."""
    cols = ", ".join(_quote(c) for c in table.columns)
    key = table.primary_key
    order = ", ".join(_quote(c) for c in key)
    select = f"SELECT {cols} FROM {_quote(table.name)}"  # noqa: S608 - names from the catalogue, checked
    first = Sql(f"{select} ORDER BY {order} LIMIT :limit")
    if table.keyed:
        after = ", ".join(f":k{i}" for i in range(len(key)))
        following = Sql(f"{select} WHERE ({order}) > ({after}) ORDER BY {order} LIMIT :limit")
    else:  # no primary key (aicmo creates none such): pages by offset
        following = Sql(f"{select} ORDER BY {order} LIMIT :limit OFFSET :offset")
    params: dict[str, Any] = {"limit": batch_size}
    stmt, offset = first, 0
    sqlite = db.dialect == "sqlite"
    while True:
        batch = db.fetch_all(stmt, params)
        if not batch:
            return
        # sqlite3 gives text, numbers and None only: those rows are canonical already.
        yield batch if sqlite else [{c: _canonical(v) for c, v in row.items()} for row in batch]
        if len(batch) < batch_size:
            return
        offset += len(batch)
        stmt = following
        last = batch[-1]
        params = {"limit": batch_size, "offset": offset}
        if table.keyed:
            params.update({f"k{i}": last[c] for i, c in enumerate(key)})


def _count(db: SqlDatabase, table: str) -> int:
    rows = _raw(db, f"SELECT COUNT(*) FROM {_quote(table)}")  # noqa: S608 - checked name
    return int(rows[0][0])


def _summary(db: SqlDatabase, table: Table, batch_size: int) -> tuple[int, int]:
    count = total = 0
    for batch in _rows(db, table, batch_size):
        count += len(batch)
        total += sum(_row_hash(r) for r in batch)
    return count, total


def inventory(
    database: App | str, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, tuple[int, str]]:
    """Every aicmo table of ``database`` with its row count and checksum (the figures a
    copy compares), in dependency order. Reads only."""
    with _opened(database, "database", must_exist=True) as (db, _), db.snapshot():
        return {t.name: _fmt(_summary(db, t, batch_size)) for t in live_tables(db)}


def _fmt(summary: tuple[int, int]) -> tuple[int, str]:
    return summary[0], _hex(summary[1])


# -- memory apps (for tests) --------------------------------------------------------------
# A memory:// app keeps DTOs, not rows: its records go through the repositories' own
# reads and saves, one table at a time, into (or out of) a private sqlite:// database,
# and the row-level copy does the rest. Each module names, with each table it owns, how
# its records move (aicmo.app.Module.tables); a table no module owns is refused (never
# silently left out); tests/test_transfer.py copies every table through memory.
@attrs.frozen
class _Through:
    """How one table's records move: ``through`` the repository ``app.repos.<module>``."""

    module: str
    through: Through

    @property
    def key(self) -> str:
        return self.through.key

    def load(self, app: App, key: Any) -> Any:
        return self.through.load(getattr(app.repos, self.module), key)

    def store(self, app: App, key: Any, value: Any) -> None:
        self.through.store(getattr(app.repos, self.module), key, value)


_THROUGH_REPOSITORIES: dict[str, _Through | None] = {
    table: None if through is None else _Through(m.name, through)
    for m in MODULES
    for table, through in m.tables.items()
}


class _Unaudited:
    """An app whose ``repos`` are its repositories without the audit trail's wrapper: a
    copy moves the source's audit entries; it adds none of its own."""

    def __init__(self, app: App):
        self.repos = app.repos.replace(
            **{
                f.name: inspect.unwrap(getattr(app.repos, f.name))
                for f in attrs.fields(Repositories)
            }
        )


def _unaudited(app: App) -> App:
    return cast(App, _Unaudited(app))


def _sql_of(app: App) -> SqlDatabase:
    db = app._sql
    assert db is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
    return db


def _repository_io(tables: Sequence[Table]) -> list[tuple[Table, _Through]]:
    """The tables moved through repositories, in dependency order."""
    unknown = [t.name for t in tables if t.name not in _THROUGH_REPOSITORIES]
    if unknown:
        raise SchemaError(
            f"copying to or from memory:// does not know the tables {', '.join(unknown)}; "
            "name them in their module's tables in aicmo.app.MODULES (or use sqlite://)"
        )
    return [(t, io) for t in tables if (io := _THROUGH_REPOSITORIES[t.name]) is not None]


def _stage_memory(app: App) -> App:
    """A private ``sqlite://`` app holding every record of the memory app ``app``."""
    memory = app._memory
    assert memory is not None  # noqa: S101 - narrows a type for mypy
    staging = connect("sqlite://", audit=False)  # a copy is no new write of the records
    try:
        staged = _repository_io(live_tables(_sql_of(staging)))
        with memory.transaction():  # one consistent view (the memory lock)
            tables = dict(memory._tables)
            left = sorted(n for n, t in tables.items() if len(t) and n not in _THROUGH_REPOSITORIES)
            if left:
                raise SchemaError(
                    f"memory:// holds records in {', '.join(left)}, which a copy does not "
                    "know how to move"
                )
            with staging.transaction():
                for table, through in staged:
                    held = tables.get(table.name)
                    for key in [] if held is None else list(held._rows):
                        value = through.load(app, key)
                        if value is not None:
                            through.store(staging, key, value)
    except BaseException:
        staging.close()
        raise
    return staging


def _into_memory(
    fill: Callable[[App], TransferReport], target: App | str, if_exists: str
) -> TransferReport | None:
    """When ``target`` is a memory app: ``fill`` a private ``sqlite://`` app (a copy or an
    import, with all their checks), then move its records into ``target`` through the
    repositories, in one transaction, check that it then holds the same records and
    return the report. Any other target: ``None`` (the caller writes it directly)."""
    if not isinstance(target, App) or target.backend != "memory":
        return None
    memory = target._memory
    assert memory is not None  # noqa: S101 - narrows a type for mypy
    if if_exists == "replace":
        raise ConfigurationError(
            f"target {target.url}: a memory:// target is not replaced (its repositories "
            "cannot delete every record); copy into a new memory:// app"
        )
    held = {n: len(t) for n, t in memory._tables.items() if len(t)}
    if held and if_exists == "fail":
        raise _holds_records(target.url, held)
    with connect("sqlite://", audit=False) as staging:
        report = fill(staging)
        db = _sql_of(staging)
        with target.transaction():
            for table, through in _repository_io(live_tables(db)):
                written = []
                for batch in _rows(db, table, DEFAULT_BATCH_SIZE):
                    for row in batch:
                        key = row[through.key]
                        if if_exists == "skip" and through.load(target, key) is not None:
                            continue
                        value = through.load(staging, key)
                        through.store(_unaudited(target), key, value)
                        written.append((key, value))
                # Read back through the repositories (row bookkeeping such as created_at
                # is no part of a memory record).
                wrong = [key for key, value in written if through.load(target, key) != value]
                if wrong:
                    raise BackendError(
                        f"target {target.url}: {len(wrong)} record(s) of {table.name} read "
                        f"back from memory differ from the ones copied (first: {wrong[0]!r}); "
                        "nothing was kept"
                    )
    return attrs.evolve(report, target=target.url)


# -- opening both sides --------------------------------------------------------------------
def _side_error(side: str, url: str, exc: AicmoError) -> AicmoError:
    """``exc`` again, its message naming the side (source or target)."""
    message = f"{side} {redact(url)}: {exc}"
    if isinstance(exc, ValidationError):
        return ValidationError(exc.errors, subject=f"{side} {redact(url)}")
    try:
        return type(exc)(message)  # every other aicmo error takes its message alone
    except TypeError:
        return AicmoError(message)


def _same(source: App | str, target: App | str) -> bool:
    """Whether both name one database (an app and its URL, two spellings of one path)."""
    if source is target:
        return True
    ids = []
    for side in (source, target):
        if isinstance(side, App):
            private = side.backend == "memory" or (
                side.backend == "sqlite" and side.settings.sqlite_path is None
            )
            ids.append(("app", id(side)) if private else _identity(side.settings.url))
        else:
            try:
                ids.append(_identity(side))
            except ConfigurationError:
                return False  # a bad URL: opening it says so, naming its side
    return ids[0] == ids[1]


def _identity(url: str) -> tuple[str, ...]:
    """What tells two URLs apart as databases: a SQLite file's real path, a PostgreSQL
    server, database, user and options (the schema); never the password."""
    settings = resolve_settings(url)
    if settings.kind == "sqlite":
        if settings.sqlite_path is None:
            return ("sqlite-private", url)
        return ("sqlite", os.path.realpath(settings.sqlite_path))
    if settings.kind == "memory":
        return ("memory", url)
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(settings.url)
    except Exception:  # an unparsable URL is reported when it is opened
        return ("postgresql", settings.url)
    info.pop("password", None)
    info.setdefault("host", "localhost")
    info.setdefault("port", "5432")
    return ("postgresql", *(f"{k}={info[k]}" for k in sorted(info)))


@contextlib.contextmanager
def _opened(
    database: App | str, side: str, *, must_exist: bool
) -> Iterator[tuple[SqlDatabase, str]]:
    """The SQL database of ``database`` (an open app, or a URL opened here without
    upgrading it, closed at the end), and its shown URL."""
    if isinstance(database, App):
        url = database.url
        if database.backend == "memory":
            with _side(side, url), _stage_memory(database) as staging:
                yield _sql_of(staging), url
            return
        db = database._sql
        assert db is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
        with _side(side, url):
            yield db, url
        return
    url = database
    try:
        settings = resolve_settings(url)
    except ConfigurationError as exc:
        raise _side_error(side, url, exc) from None
    if settings.kind == "memory":
        raise ConfigurationError(
            f"{side} {redact(url)}: memory:// keeps nothing between processes, so there is "
            "nothing to copy from or to; pass open memory:// apps to aicmo.transfer in tests"
        )
    if settings.kind == "sqlite" and settings.sqlite_path is None:
        raise ConfigurationError(
            f"{side} {redact(url)}: sqlite:// is a private in-memory database that is gone "
            "when this command ends; name a file (sqlite:///path.db)"
        )
    if must_exist and settings.kind == "sqlite":
        path = settings.sqlite_path or ""
        if not os.path.isfile(path):
            raise BackendError(
                f"{side} {redact(url)}: there is no SQLite file at {path!r}; check the path"
            )
    try:
        app = connect(url, auto_upgrade=False)
    except AicmoError as exc:
        raise _side_error(side, url, exc) from None
    with app:
        assert app._sql is not None  # noqa: S101 - narrows a type for mypy
        with _side(side, app.url):
            yield app._sql, app.url


@contextlib.contextmanager
def _side(side: str, url: str) -> Iterator[None]:
    """Errors of the block that do not say which side they come from say ``side``."""
    try:
        yield
    except ValidationError:
        raise  # names its subject
    except AicmoError as exc:
        if str(exc).startswith(("source ", "target ")):
            raise
        raise _side_error(side, url, exc) from exc


def _schema_version(db: SqlDatabase, side: str, url: str, *, source: bool) -> list[str]:
    """The ids of the migrations ``db`` lacks (empty: at this aicmo's version). Refuses a
    database that is not aicmo's, is newer, or (a source) is behind or has no schema."""
    db.refuse_foreign()
    states = migrations.status(db)
    unknown = [m.id for m in states if m.state == "unknown"]
    if unknown:
        raise SchemaError(
            f"{side} {url} is newer than this aicmo: it has migrations this version does not "
            f"know ({', '.join(unknown)}). Use the aicmo version that wrote it (pip install -U "
            "aicmo) on both sides"
        )
    pending = [m.id for m in states if m.state == "pending"]
    applied = [m.id for m in states if m.state == "applied"]
    if source and not applied:
        raise SchemaError(
            f"source {url} is not an aicmo database: it has no aicmo migration history "
            "(never created by aicmo, or an empty file); check the URL"
        )
    if source and pending:
        raise SchemaError(
            f"source {url} is at an older schema ({applied[-1]}) than this aicmo "
            f"({states[len(applied) + len(pending) - 1].id}): upgrade it first with "
            f"`aicmo db upgrade --database {url}`, or copy with the aicmo version that "
            "wrote it"
        )
    return pending


def _current_version(dialect: str) -> str:
    return migrations.known_migration_ids(dialect)[-1]


# -- the transfer itself -------------------------------------------------------------------
class _Reader:
    """Where records come from: a database, or an export folder."""

    describe: str
    tables: list[Table]

    def count(self, table: Table) -> int:
        raise NotImplementedError

    def batches(self, table: Table, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        raise NotImplementedError


class _DbReader(_Reader):
    def __init__(self, db: SqlDatabase, url: str):
        self.db = db
        self.url = url
        self.describe = f"source {url}"
        with _side("source", url):
            self.tables = live_tables(db)

    def count(self, table: Table) -> int:
        with _side("source", self.url):
            return _count(self.db, table.name)

    def batches(self, table: Table, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        with _side("source", self.url):
            yield from _rows(self.db, table, batch_size)


def _target_rows(db: SqlDatabase, tables: Sequence[Table]) -> dict[str, int]:
    return {t.name: _count(db, t.name) for t in tables if db.table_exists(t.name)}


def _check_same_tables(reader: _Reader, target: list[Table], url: str) -> dict[str, Table]:
    """The target's tables by name; ``SchemaError`` unless they are the reader's, with the
    same columns."""
    theirs = {t.name: t for t in target}
    ours = {t.name: t for t in reader.tables}
    problems = []
    for name in sorted(set(ours) | set(theirs)):
        if name not in theirs:
            problems.append(f"it has no table {name}")
        elif name not in ours:
            problems.append(f"the {reader.describe} has no table {name}")
        elif set(ours[name].columns) != set(theirs[name].columns):
            diff = sorted(set(ours[name].columns) ^ set(theirs[name].columns))
            problems.append(f"table {name} differs in columns {', '.join(diff)}")
    if problems:
        raise SchemaError(
            f"target {url}: its schema is not the one of the {reader.describe} "
            f"({'; '.join(problems)}): one of them was changed by hand, by another program, "
            "or is incomplete; nothing was written"
        )
    return theirs


def _transfer(
    reader: _Reader,
    target_db: SqlDatabase,
    target_url: str,
    *,
    if_exists: str,
    batch_size: int,
    progress: Progress | None,
    expected: dict[str, tuple[int, int]] | None = None,
) -> tuple[list[TableReport], int]:
    """Write every table of ``reader`` into ``target_db`` in one transaction, compared
    before the commit. ``expected``: the (count, checksum) each table's rows must have
    as read (an export's manifest)."""
    tables = _check_same_tables(reader, live_tables(target_db), target_url)
    dialect = target_db.dialect
    reports: list[TableReport] = []
    cleared = 0
    with target_db.transaction():
        _keep_session(target_db)
        held = {n: c for n, c in _target_rows(target_db, reader.tables).items() if c}
        if held and if_exists == "fail":
            raise _holds_records(target_url, held)
        if if_exists == "replace":
            for table in reversed(reader.tables):
                target_db.execute(Sql(f"DELETE FROM {_quote(table.name)}"))  # noqa: S608
        for table in reader.tables:
            target = tables[table.name]
            before = (0, 0) if if_exists == "replace" else _summary(target_db, target, batch_size)
            total_rows = reader.count(table)
            names = list(target.columns)
            cols = ", ".join(_quote(c) for c in names)
            values = ", ".join(f":{c}" for c in names)
            conflict = " ON CONFLICT DO NOTHING" if if_exists == "skip" else ""
            insert = Sql(
                f"INSERT INTO {_quote(table.name)} ({cols}) VALUES ({values}){conflict}"  # noqa: S608
            )
            read = read_sum = written = written_sum = 0
            converted = {c: k for c, k in target.kinds.items() if k != "plain"}
            for batch in reader.batches(table, batch_size):
                read += len(batch)
                hashes = [_row_hash(r) for r in batch]
                read_sum += sum(hashes)
                for i, row in enumerate(batch):
                    if _clear_lease(table.name, row):
                        cleared += 1
                        hashes[i] = _row_hash(row)  # as written
                params: list[dict[str, Any]] = batch
                if converted and dialect != "sqlite":
                    params = [dict(row) for row in batch]
                    for param in params:
                        for c, kind in converted.items():
                            param[c] = _to_target(param[c], kind, dialect)
                if if_exists == "skip":
                    for param, row_hash in zip(params, hashes, strict=True):
                        if target_db.execute(insert, param):
                            written += 1
                            written_sum += row_hash
                else:
                    target_db.execute_many(insert, params)
                    written += len(batch)
                    written_sum += sum(hashes)
                if progress is not None:
                    progress(table.name, read, total_rows)
            if expected is not None:
                want = expected[table.name]
                if (read, read_sum & _MASK) != (want[0], want[1] & _MASK):
                    problem = (
                        f"holds {read} rows with checksum {_hex(read_sum)}, but the manifest "
                        f"says {want[0]} rows with checksum {_hex(want[1])}; nothing was "
                        "written to the target"
                    )
                    raise ValidationError(
                        [(_file_name(table.name), problem)], subject=reader.describe
                    )
            after = _summary(target_db, target, batch_size)
            wanted = (before[0] + written, (before[1] + written_sum) & _MASK)
            if (after[0], after[1] & _MASK) != wanted:
                raise BackendError(
                    f"target {target_url}: table {table.name} holds {after[0]} rows with "
                    f"checksum {_hex(after[1])} after the copy, expected {wanted[0]} rows with "
                    f"checksum {_hex(wanted[1])}; the copy was rolled back, nothing was written"
                )
            reports.append(
                TableReport(
                    table=table.name,
                    source_rows=read,
                    target_rows=after[0],
                    written=written,
                    source_checksum=_hex(written_sum),
                    target_checksum=_hex(after[1] - before[1] if if_exists == "skip" else after[1]),
                )
            )
            log.debug("%s: %d row(s) written to %s", table.name, written, target_url)
        _advance_identities(target_db)
    return reports, cleared


def _advance_identities(db: SqlDatabase) -> None:
    """On PostgreSQL: move each identity column's sequence past the rows copied in with
    their values (the audit trail's ``position``), so the next insert does not reuse one.
    SQLite's rowid keys carry on from the largest by themselves."""
    if db.dialect != "postgresql":
        return
    for table, column in _raw(
        db,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name",
    ):
        name, col = _quote(_check_name(str(table), db.describe)), _quote(str(column))
        _raw(
            db,
            f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), max({col})) "  # noqa: S608 - names from the catalog, checked
            f"FROM {name} HAVING max({col}) IS NOT NULL",
        )


def _keep_session(db: SqlDatabase) -> None:
    """In the open transaction of ``db``: on PostgreSQL, no idle-in-transaction timeout
    for it (the settings' default of 20 s ends a session idle inside a transaction; a
    copy's source waits while the target writes and checks each table, and the other way
    round)."""
    if db.dialect == "postgresql":
        db.execute(_NO_IDLE_TIMEOUT)


_NO_IDLE_TIMEOUT = Sql("SET LOCAL idle_in_transaction_session_timeout = 0")


def _holds_records(url: str, held: dict[str, int]) -> ConflictError:
    listed = ", ".join(f"{t} ({n})" for t, n in held.items())
    return ConflictError(
        f"target {url} already holds {sum(held.values())} record(s) in {listed}; nothing was "
        "written. Pass --if-exists skip (keep them, add the rest) or --if-exists replace "
        "(delete them first), or copy into an empty database"
    )


def _check_options(if_exists: str, batch_size: int) -> None:
    if if_exists not in IF_EXISTS:
        raise ConfigurationError(
            f"if_exists must be one of {', '.join(IF_EXISTS)}, got {if_exists!r}"
        )
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a positive integer, got {batch_size!r}")


def _fill(
    reader: _Reader,
    source: str,
    dst: SqlDatabase,
    dst_url: str,
    *,
    if_exists: str,
    batch_size: int,
    progress: Progress | None,
    expected: dict[str, tuple[int, int]] | None = None,
) -> TransferReport:
    """What :func:`copy` and :func:`import_from` do once the source is read: check and
    migrate the target (:func:`_prepare_target`), write every table in the target's
    dependency order (a source's own order, an export's manifest included, is only
    advice) in one transaction (:func:`_transfer`), and report it; errors name the
    target."""
    with _side("target", dst_url):
        migrated = _prepare_target(dst, dst_url, reader.tables, if_exists)
        order = {t.name: i for i, t in enumerate(live_tables(dst))}
        reader.tables.sort(key=lambda t: order.get(t.name, len(order)))
        reports, cleared = _transfer(
            reader,
            dst,
            dst_url,
            if_exists=if_exists,
            batch_size=batch_size,
            progress=progress,
            expected=expected,
        )
    return TransferReport(
        source=source,
        target=dst_url,
        schema_version=_current_version(dst.dialect),
        tables=tuple(reports),
        leases_cleared=cleared,
        migrated=migrated,
    )


def _prepare_target(
    db: SqlDatabase, url: str, tables: Sequence[Table], if_exists: str
) -> tuple[str, ...]:
    """Refuse a target that is newer, foreign or (with ``fail``) holds records; then
    migrate it to this aicmo's version. Returns the migrations applied."""
    if db.dialect == "postgresql" and _raw(db, "SELECT current_schema()")[0][0] is None:
        raise BackendError(
            f"target {url}: no schema of its search_path exists; create it first "
            "(CREATE SCHEMA ...) or fix the URL's options=-csearch_path=..."
        )
    pending = _schema_version(db, "target", url, source=False)
    if if_exists == "fail":
        held = {n: c for n, c in _target_rows(db, tables).items() if c}
        if held:
            raise _holds_records(url, held)
    if not pending:
        return ()
    applied = migrations.upgrade(db)
    log.debug("target %s: applied migrations %s", url, ", ".join(applied))
    return tuple(applied)


def copy(
    source: App | str,
    target: App | str,
    *,
    if_exists: IfExists = "fail",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> TransferReport:
    """Copy every record of ``source`` into ``target`` (URLs, or open apps on any backend,
    ``memory://`` included) and return what was compared; see the module docstring for
    the rules.

    Raises, writing nothing to the target: ``ConfigurationError`` for the same database on
    both sides, a ``memory://`` URL (or a memory app as a target with ``replace``) or a bad
    option; ``BackendError`` for a side that
    cannot be reached (or a SQLite source file that does not exist); ``SchemaError`` for a
    source that is not an aicmo database or is behind, or a side newer than this aicmo;
    ``ConflictError`` for a target that holds records with ``if_exists="fail"``. Every
    message names the side.
    """
    _check_options(if_exists, batch_size)
    source_id = source.url if isinstance(source, App) else source
    if _same(source, target):
        raise ConfigurationError(
            f"source and target are the same database ({redact(source_id)}); name another target"
        )
    fill = functools.partial(copy, source, batch_size=batch_size, progress=progress)
    if (done := _into_memory(fill, target, if_exists)) is not None:
        return done
    with _opened(source, "source", must_exist=True) as (src, src_url):
        with _side("source", src_url):
            _schema_version(src, "source", src_url, source=True)
        # The target is opened (a SQLite file created) only once the source is good.
        with (
            _opened(target, "target", must_exist=False) as (dst, dst_url),
            contextlib.ExitStack() as stack,
        ):
            with _side("source", src_url):
                stack.enter_context(src.snapshot())
                _keep_session(src)
                reader = _DbReader(src, src_url)
            return _fill(
                reader,
                src_url,
                dst,
                dst_url,
                if_exists=if_exists,
                batch_size=batch_size,
                progress=progress,
            )


# -- export and import ---------------------------------------------------------------------
def _file_name(table: str) -> str:
    return f"{table}.jsonl"


def export(
    source: App | str,
    folder: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> TransferReport:
    """Write every record of ``source`` into ``folder`` (created; it must be empty or new):
    one JSON Lines file per table (canonical values, see the module docstring) and
    ``manifest.json`` with the schema version, each table's columns, primary key, row
    count, checksum and the SHA-256 of its file. The files are written to a temporary
    folder beside it and moved into place last, so an interrupted export leaves no
    half-written folder. Read in one snapshot of the source."""
    _check_options("fail", batch_size)
    out = Path(folder)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigurationError(
            f"export folder {str(out)!r} exists and is not an empty folder; name a new one"
        )
    with _opened(source, "source", must_exist=True) as (db, url):
        _schema_version(db, "source", url, source=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            entries, reports = [], []
            with db.snapshot():
                _keep_session(db)
                for table in live_tables(db):
                    total = _count(db, table.name)
                    rows = checksum = 0
                    digest = hashlib.sha256()
                    with open(staging / _file_name(table.name), "wb") as fh:
                        for batch in _rows(db, table, batch_size):
                            for row in batch:
                                line = (
                                    json.dumps(
                                        row,
                                        ensure_ascii=False,
                                        separators=(",", ":"),
                                        allow_nan=False,
                                    ).encode("utf-8", "surrogatepass")
                                    + b"\n"
                                )
                                fh.write(line)
                                digest.update(line)
                                checksum += _row_hash(row)
                            rows += len(batch)
                            if progress is not None:
                                progress(table.name, rows, total)
                        fh.flush()
                        os.fsync(fh.fileno())
                    entries.append(
                        {
                            "name": table.name,
                            "file": _file_name(table.name),
                            "columns": list(table.columns),
                            "primary_key": list(table.primary_key),
                            "rows": rows,
                            "checksum": _hex(checksum),
                            "sha256": digest.hexdigest(),
                        }
                    )
                    reports.append(
                        TableReport(
                            table=table.name,
                            source_rows=rows,
                            target_rows=rows,
                            written=rows,
                            source_checksum=_hex(checksum),
                            target_checksum=_hex(checksum),
                        )
                    )
            version = _current_version(db.dialect)
            manifest = {
                "format": EXPORT_FORMAT,
                "schema_version": version,
                "migrations": migrations.known_migration_ids(db.dialect),
                "source_dialect": db.dialect,
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "tables": entries,
            }
            (staging / MANIFEST).write_text(
                json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            if out.exists():
                out.rmdir()
            os.replace(staging, out)
        except BaseException:
            for child in staging.glob("*"):
                child.unlink()
            with contextlib.suppress(OSError):
                staging.rmdir()
            raise
        return TransferReport(
            source=url, target=str(out), schema_version=version, tables=tuple(reports)
        )


class _DirReader(_Reader):
    """An export folder, checked whole (files, counts, SHA-256) before anything is read."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.describe = f"export folder {str(folder)!r}"
        manifest_path = folder / MANIFEST
        if not folder.is_dir():
            raise ConfigurationError(f"{self.describe} does not exist or is not a folder")
        if not manifest_path.is_file():
            raise ValidationError(
                [(MANIFEST, "is missing: this is not an aicmo export, or it is incomplete")],
                subject=self.describe,
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("format") != EXPORT_FORMAT:
                raise ValueError(f"format is {manifest.get('format')!r}, not {EXPORT_FORMAT!r}")
            self.schema_version = str(manifest["schema_version"])
            entries = list(manifest["tables"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValidationError(
                [(MANIFEST, f"is not a valid aicmo manifest ({exc})")], subject=self.describe
            ) from None
        problems: list[tuple[str, str]] = []
        self.expected: dict[str, tuple[int, int]] = {}
        self._files: dict[str, Path] = {}
        tables = []
        for entry in entries:
            try:
                name = _check_name(str(entry["name"]), self.describe)
                path = folder / _file_name(name)
                columns = tuple(_check_name(str(c), self.describe) for c in entry["columns"])
                rows, checksum, sha = (
                    int(entry["rows"]),
                    int(entry["checksum"], 16),
                    entry["sha256"],
                )
                pk = tuple(str(c) for c in entry.get("primary_key") or columns)
            except (KeyError, TypeError, ValueError, SchemaError) as exc:
                problems.append((MANIFEST, f"a table entry is not valid ({exc})"))
                continue
            if not path.is_file():
                problems.append((path.name, "is missing: the export is incomplete"))
                continue
            digest, lines, total, bad = hashlib.sha256(), 0, 0, ""
            with open(path, "rb") as fh:
                for line in fh:
                    digest.update(line)
                    lines += 1
                    try:
                        row = json.loads(line)
                        if not isinstance(row, dict) or set(row) != set(columns):
                            raise ValueError("its keys are not the table's columns")
                        total += _row_hash(row)
                    except ValueError as exc:
                        bad = bad or f"line {lines} is not a row of the table ({exc})"
            if digest.hexdigest() != sha:
                problems.append(
                    (path.name, f"SHA-256 {digest.hexdigest()} does not match the manifest's {sha}")
                )
            elif lines != rows:
                problems.append((path.name, f"holds {lines} rows, the manifest says {rows}"))
            elif bad:
                problems.append((path.name, bad))
            elif total & _MASK != checksum & _MASK:
                problems.append(
                    (
                        path.name,
                        f"its rows' checksum {_hex(total)} does not match the manifest's "
                        f"{_hex(checksum)}",
                    )
                )
            self.expected[name] = (rows, checksum)
            self._files[name] = path
            tables.append(
                Table(
                    name=name,
                    columns=columns,
                    primary_key=pk,
                    kinds=dict.fromkeys(columns, "plain"),
                    parents=(),
                )
            )
        if problems:
            raise ValidationError(problems, subject=self.describe)
        self.tables = tables

    def count(self, table: Table) -> int:
        return self.expected[table.name][0]

    def batches(self, table: Table, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        with open(self._files[table.name], encoding="utf-8", errors="surrogatepass") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ValidationError(
                        [(f"{table.name}.jsonl:{number}", f"is not JSON ({exc})")],
                        subject=self.describe,
                    ) from None
                if not isinstance(row, dict) or set(row) != set(table.columns):
                    raise ValidationError(
                        [(f"{table.name}.jsonl:{number}", "does not hold the table's columns")],
                        subject=self.describe,
                    )
                batch.append(row)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch


def import_from(
    folder: str | os.PathLike[str],
    target: App | str,
    *,
    if_exists: IfExists = "fail",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> TransferReport:
    """Load an export folder (see :func:`export`) into ``target`` with the same checks and
    rules as :func:`copy`: the whole folder is verified before the target is opened
    (manifest, every file, its SHA-256, row count, columns and rows' checksum), and every
    table's checksum again as it is written, all in one transaction on the target. A bad
    folder raises ``ValidationError`` naming each file and problem; nothing is written."""
    _check_options(if_exists, batch_size)
    reader = _DirReader(Path(folder))
    # Both dialects' migration folders hold the same ids (tests/test_migrations.py).
    current = _current_version("sqlite")
    if reader.schema_version != current:
        newer = reader.schema_version > current
        raise SchemaError(
            f"{reader.describe} is at schema {reader.schema_version}, this aicmo at "
            f"{current}: "
            + (
                "the export is newer; import it with the aicmo version that wrote it"
                if newer
                else "export it again after `aicmo db upgrade` on its database, or "
                "import it with the aicmo version that wrote it"
            )
            + "; nothing was written"
        )
    fill = functools.partial(import_from, folder, batch_size=batch_size, progress=progress)
    if (done := _into_memory(fill, target, if_exists)) is not None:
        return done
    with _opened(target, "target", must_exist=False) as (dst, dst_url):
        return _fill(
            reader,
            reader.describe,
            dst,
            dst_url,
            if_exists=if_exists,
            batch_size=batch_size,
            progress=progress,
            expected=reader.expected,
        )


# -- backup --------------------------------------------------------------------------------
PG_DUMP_HINT = (
    "aicmo db backup copies SQLite files; a PostgreSQL database is backed up by its own "
    "tool: `pg_dump --format=custom --schema=SCHEMA --file=FILE URL` (restore with "
    "`pg_restore --dbname=URL FILE`), which takes a consistent snapshot while workers run. "
    "`aicmo export --to DIR` writes a backend-neutral copy of the records instead"
)


def backup(
    source: App | str, path: str | os.PathLike[str], *, overwrite: bool = False
) -> BackupReport:
    """A consistent copy of a live SQLite database at ``path``, made with SQLite's online
    backup API while other processes keep writing (one step: the copy is the state of one
    moment, every transaction committed by then and nothing after). Written to a
    temporary file beside ``path``, checked with ``PRAGMA integrity_check``, then moved
    into place. PostgreSQL: ``ConfigurationError`` saying how to use ``pg_dump``."""
    url = source.url if isinstance(source, App) else source
    settings = source.settings if isinstance(source, App) else resolve_settings(source)
    if settings.kind == "postgresql":
        raise ConfigurationError(PG_DUMP_HINT)
    if settings.kind == "memory" or settings.sqlite_path is None:
        raise ConfigurationError(f"source {redact(url)} is in memory: there is no file to back up")
    src_path = settings.sqlite_path
    out = Path(path)
    if not os.path.isfile(src_path):
        raise BackendError(f"source {url}: there is no SQLite file at {src_path!r}")
    if out.exists() and os.path.samefile(out, src_path):
        raise ConfigurationError(f"backup file {str(out)!r} is the database itself")
    if out.exists() and not overwrite:
        raise ConfigurationError(
            f"backup file {str(out)!r} exists; name a new file, or pass --force to replace it"
        )
    with _opened(source, "source", must_exist=True) as (db, _):
        db.refuse_foreign()  # another program's file is not ours to copy
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        busy = int(settings.busy_timeout * 1000)
        src = sqlite3.connect(src_path, timeout=settings.busy_timeout)
        dst = sqlite3.connect(temp)
        try:
            src.execute(f"PRAGMA busy_timeout = {busy}")
            src.backup(dst)  # pages=-1: the whole database in one step, from one snapshot
            integrity = str(dst.execute("PRAGMA integrity_check").fetchone()[0])
            runs = 0
            has_runs = dst.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workflow_runs'"
            ).fetchone()
            if has_runs:
                runs = int(dst.execute("SELECT COUNT(*) FROM workflow_runs").fetchone()[0])
        except sqlite3.Error as exc:
            raise BackendError(f"source {url}: the backup failed: {exc}") from exc
        finally:
            dst.close()
            src.close()
        if integrity != "ok":
            raise BackendError(f"backup of {url} failed its integrity check: {integrity}")
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return BackupReport(path=str(out), bytes=out.stat().st_size, runs=runs, integrity=integrity)
