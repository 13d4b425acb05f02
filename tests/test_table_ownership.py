"""Each module's SQL names only its own tables (replaces the original's line scans).

Every statement a module's ``sql.py`` holds (found by introspection: its module-level
``Sql`` values and the statements of its ``Children`` helpers) is compiled by SQLite against
the full schema with an authorizer that records each table it reads or writes; all of them
must be tables the module owns in the registry (``aicmo.app.MODULES``), and every table of
the schema must belong to exactly one module.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sqlite3
from pathlib import Path
from types import ModuleType

import attrs
import pytest

import aicmo
from aicmo.app import MODULES, Module
from aicmo.db.children import Children
from aicmo.db.memstore import MemoryDatabase
from aicmo.db.statement import InKeys, InsertRows, Sql

_ACTIONS = {
    sqlite3.SQLITE_READ: "read",
    sqlite3.SQLITE_INSERT: "insert",
    sqlite3.SQLITE_UPDATE: "update",
    sqlite3.SQLITE_DELETE: "delete",
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ownership") / "schema.db"
    with aicmo.connect(f"sqlite:///{path}"):
        pass
    return path


def tables_touched(path: Path, stmt: Sql) -> set[tuple[str, str]]:
    touched: set[tuple[str, str]] = set()

    def authorize(action: int, arg1: str | None, *_: object) -> int:
        if action in _ACTIONS and arg1 and not arg1.startswith("sqlite_"):
            touched.add((_ACTIONS[action], arg1))
        return sqlite3.SQLITE_OK

    text = stmt.sqlite  # as SQLite runs it (without PostgreSQL's row-locking clause)
    conn = sqlite3.connect(path)
    try:
        conn.set_authorizer(authorize)
        names = set(re.findall(r"(?<!:):([A-Za-z_]\w*)", text))
        conn.execute(f"EXPLAIN {text}", dict.fromkeys(names))
    finally:
        conn.close()
    return touched


def statements_of(module: ModuleType) -> list[Sql]:
    """Every statement ``module`` holds at module level, directly or in a helper."""
    found: list[Sql] = []
    for value in vars(module).values():
        if isinstance(value, Sql):
            found.append(value)
        elif isinstance(value, Children | InsertRows | InKeys):
            found += value.statements
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_module_sql_touches_only_its_own_tables(module: Module[object], schema: Path) -> None:
    statements = statements_of(importlib.import_module(f"aicmo.{module.name}.sql"))
    assert statements, f"aicmo.{module.name}.sql holds no statement"
    for stmt in statements:
        touched = tables_touched(schema, stmt)
        assert touched, f"{stmt!r} touches no table"
        foreign = {table for _, table in touched if table not in module.tables}
        assert not foreign, f"aicmo.{module.name}.sql touches {sorted(foreign)} in {stmt!r}"


def test_every_table_belongs_to_one_module(schema: Path) -> None:
    conn = sqlite3.connect(schema)
    try:
        tables = {
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite%' AND name NOT LIKE '%yoyo%'"
            )
        }
    finally:
        conn.close()
    owned = [table for m in MODULES for table in m.tables]
    assert sorted(owned) == sorted(tables)  # each exactly once, none missing
    for m in MODULES:
        assert all(table.startswith(f"{m.name}_") for table in m.tables), m


def test_memory_tables_are_tables_of_their_module() -> None:
    db = MemoryDatabase()
    for m in MODULES:
        before = set(db._tables)
        m.memory(db)
        assert set(db._tables) - before <= set(m.tables), m.name


def test_the_registry_is_the_apps_wiring() -> None:
    with aicmo.connect("memory://") as app:
        for m in MODULES:
            # The audit trail wraps the repositories of the modules that write (__wrapped__).
            repo = inspect.unwrap(getattr(app.repos, m.name))
            assert type(repo).__module__ == f"aicmo.{m.name}.memory"
    assert [f.name for f in attrs.fields(aicmo.Repositories)] == [m.name for m in MODULES]


def test_statements_are_found_by_introspection(schema: Path) -> None:
    """A statement built inside a function (out of the test's sight) shows as a module
    that issues fewer statements than it holds helpers for: every ``Sql(`` and every
    generated statement of the module is a module-level value."""
    for m in MODULES:
        sql_module = importlib.import_module(f"aicmo.{m.name}.sql")
        source = Path(str(sql_module.__file__)).read_text(encoding="utf-8")
        direct = [v for v in vars(sql_module).values() if isinstance(v, Sql)]
        assert source.count("Sql(") <= len(direct), f"aicmo.{m.name}.sql builds Sql in a function"


def test_the_authorizer_sees_foreign_tables(schema: Path) -> None:
    touched = tables_touched(schema, Sql("SELECT brief_id FROM onboarding_brief WHERE 1 = :x"))
    assert touched == {("read", "onboarding_brief")}


def test_every_statement_a_run_issues_is_found_by_introspection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statements are recorded as the kernel runs them (a whole workflow run, one that
    fails QC and is compensated, a queued run worked off, reads of everything): each is
    one of the module-level statements the ownership test checks, so none is built at call
    time out of its sight."""
    from aicmo.db.sqlite import SQLiteDatabase

    from .test_workflow import FAILING_QC, PASSING

    known = {
        id(s)
        for m in MODULES
        for s in statements_of(importlib.import_module(f"aicmo.{m.name}.sql"))
    }
    ran: dict[int, Sql] = {}
    for name in ("_execute", "_execute_many", "_fetch_rows"):
        original = getattr(SQLiteDatabase, name)

        def record(
            self: SQLiteDatabase, stmt: Sql, params: object, _run: object = original
        ) -> object:
            ran[id(stmt)] = stmt
            return _run(self, stmt, params)  # type: ignore[operator]

        monkeypatch.setattr(SQLiteDatabase, name, record)
    with aicmo.connect(f"sqlite:///{tmp_path / 'run.db'}", artifact_dir=tmp_path / "out") as app:
        done = app.run_workflow(PASSING)
        app.run_workflow(FAILING_QC)
        app.submit(PASSING, idempotency_key="queued")
        app.work(stop_when_idle=True, heartbeat=False)
        assert done.brief_id is not None
        brief = app.repos.onboarding.get_brief(done.brief_id)
        assert brief is not None
        app.repos.onboarding.list_by_client(brief.client_id)
        app.repos.strategy.list_versions(done.brief_id)
        for draft_id in done.draft_ids:
            app.repos.production.list_bundles(draft_id)
            app.repos.qc.get_result(draft_id)
            app.repos.delivery.list_by_draft(draft_id)
        app.list_runs()
        app.queue_depth()
    assert len(ran) >= 20
    unknown = [stmt for key, stmt in ran.items() if key not in known]
    assert not unknown, unknown
