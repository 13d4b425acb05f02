"""Migration 0011/0012 (issue 15): workflow_runs refuses unknown statuses and steps on
both dialects, every child table's position has one type, and the rebuild of SQLite's
table keeps its columns, indexes and rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

import aicmo
from aicmo.testing.workflow import make_run

from .conftest import new_postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return new_postgres_schema()


def _execute(url: str, sql: str) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                conn.execute(sql)
        finally:
            conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(sql.encode())


def _integrity_error(url: str) -> type[Exception]:
    return sqlite3.IntegrityError if url.startswith("sqlite") else psycopg.errors.CheckViolation


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("status", "'completed'"),
        ("status", "'DONE'"),
        ("step", "'deliver'"),
        ("failed_step", "'QC'"),
    ],
)
def test_workflow_runs_refuse_unknown_statuses_and_steps(
    fresh_url: str, column: str, value: str
) -> None:
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        app.repos.workflow.create(make_run("r"))
    with pytest.raises(_integrity_error(fresh_url)):
        _execute(fresh_url, f"UPDATE workflow_runs SET {column} = {value}")
    _execute(fresh_url, "UPDATE workflow_runs SET step = NULL, failed_step = NULL")
    _execute(fresh_url, "UPDATE workflow_runs SET step = 'qc', status = 'FAILED'")


def test_positions_have_one_type_on_postgresql() -> None:
    url = new_postgres_schema()
    with aicmo.connect(url) as app:
        app.migrate()
    with psycopg.connect(url) as pg:
        types = pg.execute(
            "SELECT table_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'position' "
            "ORDER BY table_name"
        ).fetchall()
    assert types == [
        ("audit_entries", "bigint"),
        ("delivery_artifacts", "bigint"),
        ("production_bundle_assets", "bigint"),
        ("qc_issues", "bigint"),
    ]


def _sqlite_shape(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        columns = conn.execute("PRAGMA table_info(workflow_runs)").fetchall()
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'workflow_runs' ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return columns, indexes


def test_the_sqlite_rebuild_keeps_columns_indexes_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    run = make_run("r", intake_fingerprint="a" * 64, artifact_root="/srv/artifacts")
    with aicmo.connect(f"sqlite:///{path}", auto_upgrade=False) as app:
        app.migrate()
        app.repos.workflow.create(run)
        # The shape 0011 and 0012 leave (later migrations add columns of their own).
        app.downgrade("0012_workflow_checks_validated")
        after = _sqlite_shape(path)
        assert app.downgrade("0010_workflow_intake_and_root") == [
            "0012_workflow_checks_validated",
            "0011_workflow_checks_and_positions",
        ]
        before = _sqlite_shape(path)
        assert app.migrate()[:2] == [
            "0011_workflow_checks_and_positions",
            "0012_workflow_checks_validated",
        ]
        assert app.repos.workflow.get("r") == run
        app.downgrade("0012_workflow_checks_validated")
        again = _sqlite_shape(path)
    assert after == before == again
    assert len(after[1]) == 5  # status, created, lease; the primary key, idempotency_key
