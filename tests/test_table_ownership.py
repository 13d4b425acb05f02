"""Each module's SQL names only its own tables (replaces the original's line scans).

Every statement a module's ``sql.py`` defines is compiled by SQLite against the full
schema with an authorizer that records each table it reads or writes; all of them must
carry the module's prefix. Statements are found by introspection, so one left out of
``STATEMENTS`` fails the test too.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
from pathlib import Path

import pytest

import aicmo
from aicmo.db.statement import Sql

MODULES = ["onboarding", "strategy", "production", "qc", "delivery", "workflow"]

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


@pytest.mark.parametrize("module", MODULES)
def test_module_sql_touches_only_its_own_tables(module: str, schema: Path) -> None:
    sql_module = importlib.import_module(f"aicmo.{module}.sql")
    statements = sql_module.STATEMENTS
    assert statements, f"aicmo.{module}.sql.STATEMENTS is empty"
    for stmt in statements:
        touched = tables_touched(schema, stmt)
        assert touched, f"{stmt!r} touches no table"
        foreign = {table for _, table in touched if not table.startswith(f"{module}_")}
        assert not foreign, f"aicmo.{module}.sql touches {sorted(foreign)} in {stmt!r}"


@pytest.mark.parametrize("module", MODULES)
def test_statements_lists_every_statement_of_the_module(module: str) -> None:
    sql_module = importlib.import_module(f"aicmo.{module}.sql")
    defined = [v for v in vars(sql_module).values() if isinstance(v, Sql)]
    assert set(map(id, defined)) == set(map(id, sql_module.STATEMENTS))
    source = Path(sql_module.__file__).read_text(encoding="utf-8")
    assert source.count("Sql(") == len(defined), "build statements at module level only"


def test_the_authorizer_sees_foreign_tables(schema: Path) -> None:
    touched = tables_touched(schema, Sql("SELECT brief_id FROM onboarding_brief WHERE 1 = :x"))
    assert touched == {("read", "onboarding_brief")}
