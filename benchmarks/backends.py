"""Backends for the benchmarks: one aicmo app, one raw driver connection and one SQLAlchemy
engine per backend, all on the same database (a temp SQLite file in WAL, or a fresh
PostgreSQL schema dropped at the end)."""

from __future__ import annotations

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

__all__ = ["PG_BASE_URL", "Backend", "open_backend", "postgres_unreachable"]

PG_BASE_URL = os.environ.get(
    "AICMO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


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
    """Everything one backend's contenders need; ``close()`` removes what it created."""

    name: str
    app: aicmo.App
    url: str
    artifact_dir: str
    raw: Any = None
    """``sqlite3.Connection`` or ``psycopg.Connection`` (autocommit); ``None`` for memory."""
    orm_session: Callable[[], Any] | None = None
    orm_classes: dict[str, Any] = field(default_factory=dict)
    encode_dt: Callable[[datetime], Any] = lambda d: d
    server_version: str | None = None
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            try:
                fn()
            except Exception as exc:  # keep cleaning up; say what failed
                print(f"warning: cleanup of {self.name} failed: {exc}")


def _orm(engine: Any) -> tuple[Callable[[], Any], dict[str, Any]]:
    """SQLAlchemy 2 ORM classes mapped onto aicmo's tables (reflected, so the same tables)."""
    from sqlalchemy.ext.automap import automap_base
    from sqlalchemy.orm import sessionmaker

    base: Any = automap_base()
    base.prepare(autoload_with=engine)
    classes = {name: getattr(base.classes, name) for name in base.classes.keys()}  # noqa: SIM118
    return sessionmaker(engine, expire_on_commit=False), classes


def open_backend(name: str) -> Backend:
    artifact_dir = tempfile.mkdtemp(prefix="aicmo-bench-artifacts-")
    if name == "memory":
        app = aicmo.connect("memory://", artifact_dir=artifact_dir)
        backend = Backend(name, app, "memory://", artifact_dir)
        backend._cleanup.append(lambda: shutil.rmtree(artifact_dir, ignore_errors=True))
        backend._cleanup.append(app.close)
        return backend
    if name == "sqlite":
        return _open_sqlite(artifact_dir)
    if name == "postgresql":
        return _open_postgres(artifact_dir)
    raise ValueError(f"unknown backend {name!r}")


def _open_sqlite(artifact_dir: str) -> Backend:
    from sqlalchemy import create_engine, event

    folder = tempfile.mkdtemp(prefix="aicmo-bench-")
    path = os.path.join(folder, "bench.db")
    url = f"sqlite:///{path}"
    try:
        app = aicmo.connect(url, artifact_dir=artifact_dir)  # upgrades the schema, turns WAL on
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(artifact_dir, ignore_errors=True)
        raise
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA synchronous=NORMAL")
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")

    session, classes = _orm(engine)
    backend = Backend(
        "sqlite",
        app,
        url,
        artifact_dir,
        raw=raw,
        orm_session=session,
        orm_classes=classes,
        encode_dt=lambda d: d.isoformat(timespec="microseconds"),
    )
    backend._cleanup += [
        lambda: shutil.rmtree(folder, ignore_errors=True),
        lambda: shutil.rmtree(artifact_dir, ignore_errors=True),
        app.close,
        raw.close,
        engine.dispose,
    ]
    return backend


def _open_postgres(artifact_dir: str) -> Backend:
    import psycopg
    from sqlalchemy import create_engine

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
        backend.app = aicmo.connect(url, artifact_dir=artifact_dir)
        backend._cleanup.append(backend.app.close)
        backend.app.migrate()
        raw = psycopg.connect(url, autocommit=True)
        raw.execute("SET TIME ZONE 'UTC'")
        backend.raw = raw
        backend._cleanup.append(raw.close)
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        backend._cleanup.append(engine.dispose)
        backend.orm_session, backend.orm_classes = _orm(engine)
    except BaseException:
        backend.close()
        raise
    return backend
