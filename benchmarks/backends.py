"""Backends for the benchmarks: per backend one aicmo app and, on the same database, what
every contender needs: a raw driver connection, one long-lived SQLAlchemy engine (Core, and
the ORM classes mapped onto aicmo's tables), one long-lived ORM session, and on SQLite a
sqlite-utils ``Database``. The database is a temp SQLite file in WAL, or a fresh
PostgreSQL schema dropped at the end."""

from __future__ import annotations

import inspect
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aicmo

__all__ = [
    "PG_BASE_URL",
    "Backend",
    "open_backend",
    "postgres_unreachable",
    "with_schema",
]

PG_BASE_URL = os.environ.get(
    "AICMO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

AUDIT = os.environ.get("AICMO_AUDIT", "off").strip().lower() in ("1", "on", "true", "yes")
"""Whether the harness's apps keep the audit trail: off unless ``AICMO_AUDIT=on``. The
harness compares aicmo's repository calls with the raw driver (and the other libraries)
running the same statements; the trail adds statements of its own, whose cost
``benchmarks/observability.py`` measures (docs/performance.md)."""


def _connect(url: str, **options: Any) -> aicmo.App:
    """``aicmo.connect`` with the trail as :data:`AUDIT` says, where the aicmo imported has
    a trail to turn off (a ``--baseline`` checkout from before it has none)."""
    if "audit" in inspect.signature(aicmo.connect).parameters:
        options["audit"] = AUDIT
    return aicmo.connect(url, **options)


def with_schema(url: str, schema: str) -> str:
    option = quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={option}"


def postgres_unreachable(url: str = PG_BASE_URL) -> str | None:
    """``None`` when the server answers, else the reason it is skipped."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'aicmo[postgres]')"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {url} is unreachable: {str(exc).strip().splitlines()[0]}"
    return None


@dataclass
class Backend:
    """Everything one backend's contenders need; ``close()`` removes what it created.

    Without ``contenders`` (see :func:`open_backend`) only ``app`` and ``raw`` are set.
    """

    name: str
    app: aicmo.App
    url: str
    artifact_dir: str
    raw: Any = None
    """``sqlite3.Connection`` or ``psycopg.Connection`` (autocommit); ``None`` for memory."""
    engine: Any = None
    """One long-lived SQLAlchemy ``Engine`` (its own pool) on the same database."""
    tables: dict[str, Any] = field(default_factory=dict)
    """SQLAlchemy ``Table`` objects of aicmo's tables, reflected (for Core)."""
    orm_session: Callable[[], Any] | None = None
    """A ``sessionmaker``: a new ``Session`` per call (the original's pattern)."""
    orm_long: Any = None
    """One long-lived ORM ``Session`` (commit per call)."""
    orm_classes: dict[str, Any] = field(default_factory=dict)
    sqlite_utils: Any = None
    """A ``sqlite_utils.Database`` on its own connection (SQLite only)."""
    encode_dt: Callable[[datetime], Any] = lambda d: d
    server_version: str | None = None
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def marker(self) -> str:
        """The raw driver's positional parameter marker."""
        return "?" if self.name == "sqlite" else "%s"

    def stored(
        self, table: str, column: str, value: Any, *, skip: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Every row of ``table`` whose ``column`` is ``value``, as dicts without the
        ``skip`` columns, sorted: what a check compares between two contenders."""
        sql = f"SELECT * FROM {table} WHERE {column} = {self.marker}"  # noqa: S608 - names are constants
        cursor = self.raw.execute(sql.encode() if self.name != "sqlite" else sql, (value,))
        names = [d[0] for d in cursor.description]
        rows = [
            {k: v for k, v in zip(names, row, strict=True) if k not in skip}
            for row in cursor.fetchall()
        ]
        return sorted(rows, key=repr)

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            try:
                fn()
            except Exception as exc:  # keep cleaning up; say what failed
                print(f"warning: cleanup of {self.name} failed: {exc}")


def _sqlalchemy(backend: Backend, url: str, engine_options: dict[str, Any]) -> None:
    """The engine, the reflected tables, the ORM classes (automap: mapped onto the same
    tables), a session factory and one long-lived session."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.ext.automap import automap_base
    from sqlalchemy.orm import Session, sessionmaker

    engine = create_engine(url, **engine_options)
    backend._cleanup.append(engine.dispose)
    if backend.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")

    base: Any = automap_base()
    base.prepare(autoload_with=engine)
    backend.engine = engine
    backend.tables = dict(base.metadata.tables)
    backend.orm_classes = {name: getattr(base.classes, name) for name in base.classes.keys()}  # noqa: SIM118
    backend.orm_session = sessionmaker(engine, expire_on_commit=False)
    long_lived = Session(engine)
    backend.orm_long = long_lived
    backend._cleanup.append(long_lived.close)


def open_backend(name: str, *, contenders: bool = True) -> Backend:
    """A fresh database of ``name`` (``memory``, ``sqlite`` or ``postgresql``) with an
    aicmo app on it and, with ``contenders``, every other contender's handle."""
    artifact_dir = tempfile.mkdtemp(prefix="aicmo-bench-artifacts-")
    if name == "memory":
        app = _connect("memory://", artifact_dir=artifact_dir)
        backend = Backend(name, app, "memory://", artifact_dir)
        backend._cleanup.append(lambda: shutil.rmtree(artifact_dir, ignore_errors=True))
        backend._cleanup.append(app.close)
        return backend
    if name == "sqlite":
        return _open_sqlite(artifact_dir, contenders)
    if name == "postgresql":
        return _open_postgres(artifact_dir, contenders)
    raise ValueError(f"unknown backend {name!r}")


def _open_sqlite(artifact_dir: str, contenders: bool) -> Backend:
    folder = tempfile.mkdtemp(prefix="aicmo-bench-")
    path = os.path.join(folder, "bench.db")
    url = f"sqlite:///{path}"
    backend = Backend(
        "sqlite",
        None,  # type: ignore[arg-type]
        url,
        artifact_dir,
        encode_dt=lambda d: d.isoformat(timespec="microseconds"),
    )
    backend._cleanup += [
        lambda: shutil.rmtree(folder, ignore_errors=True),
        lambda: shutil.rmtree(artifact_dir, ignore_errors=True),
    ]
    try:
        # upgrades, turns WAL on
        backend.app = _connect(url, artifact_dir=artifact_dir)
        backend._cleanup.append(backend.app.close)
        raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        backend._cleanup.append(raw.close)
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("PRAGMA synchronous=NORMAL")
        backend.raw = raw
        if contenders:
            _sqlalchemy(backend, url, {})
            import sqlite_utils

            su = sqlite_utils.Database(path)
            backend._cleanup.append(su.close)
            su.execute("PRAGMA foreign_keys=ON")
            su.execute("PRAGMA synchronous=NORMAL")
            backend.sqlite_utils = su
    except BaseException:
        backend.close()
        raise
    return backend


def _open_postgres(artifact_dir: str, contenders: bool) -> Backend:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(PG_BASE_URL, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"'.encode())
    server_version = str(admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    backend = Backend("postgresql", None, "", artifact_dir)  # type: ignore[arg-type]
    backend.server_version = server_version

    def drop() -> None:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
        admin.close()

    backend._cleanup.append(drop)
    backend._cleanup.append(lambda: shutil.rmtree(artifact_dir, ignore_errors=True))
    try:
        url = with_schema(PG_BASE_URL, schema)
        backend.url = url
        backend.app = _connect(url, artifact_dir=artifact_dir)
        backend._cleanup.append(backend.app.close)
        backend.app.migrate()
        raw = psycopg.connect(url, autocommit=True)
        raw.execute("SET TIME ZONE 'UTC'")
        backend.raw = raw
        backend._cleanup.append(raw.close)
        if contenders:
            _sqlalchemy(backend, url.replace("postgresql://", "postgresql+psycopg://", 1), {})
    except BaseException:
        backend.close()
        raise
    return backend
