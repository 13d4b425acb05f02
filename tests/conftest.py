"""Backends for the contract suites, PostgreSQL isolation, and hypothesis profiles.

PostgreSQL cases use ``AICMO_TEST_POSTGRES_URL``; each test session works in its own
schema (dropped at the end), never in shared tables. Without the variable those cases
skip with the reason, unless ``AICMO_REQUIRE_POSTGRES=1``, which makes them fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import TestCase
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, settings

import aicmo

# The shared suites' plain asserts say what they compared when they fail.
pytest.register_assert_rewrite("aicmo.testing")

from aicmo.testing.base import reversed_unordered_selects  # noqa: E402
from aicmo.testing.parity import ParityMachine  # noqa: E402

_suppress = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "dev", max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=_suppress
)
# CI (.ci/run, 12 minutes on 2 cores): fewer, shorter parity examples; thorough has the long ones.
settings.register_profile(
    "ci",
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=_suppress,
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=_suppress,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

BACKENDS = ["memory", "sqlite", "postgresql"]

# Every SQLite connection of the test session returns rows an ORDER BY leaves tied in
# reverse order, so a multi-row read without a total order fails its test.
_reversed = reversed_unordered_selects()
_reversed.__enter__()

_schemas: list[str] = []


def postgres_base_url() -> str:
    """The server URL from the environment, or skip (fail under AICMO_REQUIRE_POSTGRES=1)."""
    url = os.environ.get("AICMO_TEST_POSTGRES_URL", "").strip()
    if url:
        return url
    reason = "AICMO_TEST_POSTGRES_URL is not set; PostgreSQL cases need a server"
    if os.environ.get("AICMO_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (AICMO_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


def with_schema(url: str, schema: str) -> str:
    option = quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={option}"


def new_postgres_schema() -> str:
    """A URL on a new, empty schema, dropped when the test session ends."""
    base = postgres_base_url()
    schema = f"aicmo_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    except psycopg.OperationalError as exc:
        if os.environ.get("AICMO_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at AICMO_TEST_POSTGRES_URL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL at AICMO_TEST_POSTGRES_URL is unreachable: {exc}")
    _schemas.append(schema)
    return with_schema(base, schema)


_session_url: str | None = None
_session_tables: list[str] = []
"""This session's tables, every table before the tables it references (the order to
empty them in)."""
_session_conn: psycopg.Connection | None = None


def session_postgres_url() -> str:
    """This session's migrated schema, emptied of data on every call."""
    global _session_url
    if _session_url is None:
        url = new_postgres_schema()
        with aicmo.connect(url) as app:
            app.migrate()
        _session_url = url
        _session_tables[:] = _referencing_first(url)
    empty_session_schema()
    return _session_url


def _referencing_first(url: str) -> list[str]:
    """The schema's tables (its migration journal aside), each before the ones it references."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename NOT LIKE '%yoyo%' ORDER BY tablename"
            )
        ]
        references: dict[str, set[str]] = {table: set() for table in tables}
        for child, parent in conn.execute(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text "
            "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE c.contype = 'f' AND n.nspname = current_schema()"
        ):
            child, parent = child.strip('"'), parent.strip('"')
            if child in references and parent in references and child != parent:
                references[child].add(parent)
    # A table goes after every table that references it.
    ordered: list[str] = []
    left = set(tables)
    while left:
        ready = sorted(t for t in left if not any(t in references[o] for o in left))
        if not ready:
            raise RuntimeError(f"foreign keys form a cycle among {sorted(left)}")
        ordered += ready
        left -= set(ready)
    return ordered


def empty_session_schema() -> None:
    """Delete every row of this session's schema.

    ``DELETE`` on the few rows an example leaves costs far less than ``TRUNCATE`` (which
    creates new files for every table and its indexes, and takes an exclusive lock on each),
    and one round trip on a connection kept for the session costs less than a new one.
    """
    global _session_conn
    assert _session_url is not None
    statements = "; ".join(f'DELETE FROM "{table}"' for table in _session_tables)
    for attempt in (1, 2):
        if _session_conn is None or _session_conn.closed:
            _session_conn = psycopg.connect(_session_url, autocommit=True)
        try:
            _session_conn.execute(statements.encode())
            return
        except psycopg.OperationalError:
            # The kept connection is gone (a test restarted or cut off the server): the
            # statements ran on none or all tables (autocommit, one implicit transaction);
            # run them again on a new connection.
            _session_conn.close()
            _session_conn = None
            if attempt == 2:
                raise


_sqlite_template: Path | None = None


def new_sqlite_file(path: Path) -> Path:
    """An SQLite database at ``path``, migrated: a copy of one file this session migrated
    once (running the migrations costs far more than copying their result)."""
    global _sqlite_template
    if _sqlite_template is None:
        template = Path(tempfile.mkdtemp(prefix="aicmo-sqlite-template-")) / "template.db"
        aicmo.connect(f"sqlite:///{template}").close()
        # Closed last, the database checkpointed its WAL into the file and removed it.
        assert not template.with_name("template.db-wal").exists(), "template WAL left behind"
        _sqlite_template = template
    shutil.copyfile(_sqlite_template, path)
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "aicmo_backends(*names): the test means something on these backends only"
    )


def _long_first(item: pytest.Item) -> int:
    """0 for a parity machine (the longest tests), 1 for a test marked ``slow`` (it spawns
    processes or builds a wheel), 2 for the rest."""
    if item.name == "runTest" and "Parity" in (item.parent.name if item.parent else ""):
        return 0
    return 1 if item.get_closest_marker("slow") else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip a test marked ``aicmo_backends`` on other backends before its fixtures are
    built (on PostgreSQL building ``app`` costs emptying every table). Then the longest
    tests go first (a stable sort: each group keeps its order), so that they start early
    and the session ends on short tests that ``--dist worksteal`` spreads over the cores."""
    items.sort(key=_long_first)
    for item in items:
        marker = item.get_closest_marker("aicmo_backends")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if marker is not None and backend is not None and backend not in marker.args:
            item.add_marker(pytest.mark.skip(reason=f"{backend}: means something on {marker.args}"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    global _session_conn
    if _session_conn is not None:
        _session_conn.close()
        _session_conn = None
    base = os.environ.get("AICMO_TEST_POSTGRES_URL", "").strip()
    if not base or not _schemas:
        return
    with psycopg.connect(base, autocommit=True) as conn:
        for schema in _schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def open_app(backend: str, tmp_path: Path) -> aicmo.App:
    """A connected app on an empty, migrated database of ``backend``, with its artifact
    root in ``tmp_path``."""
    artifacts = tmp_path / "artifacts"
    if backend == "memory":
        return aicmo.connect("memory://", artifact_dir=artifacts)
    if backend == "sqlite":
        db = new_sqlite_file(tmp_path / "aicmo.db")
        return aicmo.connect(f"sqlite:///{db}", artifact_dir=artifacts)
    return aicmo.connect(session_postgres_url(), artifact_dir=artifacts)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(backend: str, tmp_path: Path) -> Iterator[aicmo.App]:
    with open_app(backend, tmp_path) as opened:
        yield opened


@pytest.fixture
def postgres_url() -> str:
    """A fresh, empty (unmigrated) schema for this test."""
    return new_postgres_schema()


def parity_test_cases(machine: type[ParityMachine]) -> tuple[type[TestCase], type[TestCase]]:
    """``machine`` run against a fresh SQLite file and this session's PostgreSQL schema."""

    class OnSQLite(machine):  # type: ignore[valid-type, misc]
        def make_sql_app(self) -> aicmo.App:
            self._dir = Path(tempfile.mkdtemp(prefix="aicmo-parity-"))
            return aicmo.connect(f"sqlite:///{new_sqlite_file(self._dir / 'parity.db')}")

        def teardown(self) -> None:
            super().teardown()
            shutil.rmtree(self._dir, ignore_errors=True)

    class OnPostgres(machine):  # type: ignore[valid-type, misc]
        def make_sql_app(self) -> aicmo.App:
            return aicmo.connect(session_postgres_url())

    OnSQLite.__name__ = f"{machine.__name__}OnSQLite"
    OnPostgres.__name__ = f"{machine.__name__}OnPostgres"
    return OnSQLite.TestCase, OnPostgres.TestCase
