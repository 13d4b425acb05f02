"""The QcRepository contract, run against every backend, and the QC schema's own rules."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import aicmo
from aicmo.errors import ValidationError
from aicmo.qc import QcInputDTO, QcIssueDTO
from aicmo.testing.qc import QcRepositoryContract, make_issue, make_result

from .conftest import session_postgres_url


class TestQcRepository(QcRepositoryContract):
    pass


# -- the schema itself (what a raw SQL writer would meet) ------------------------------


class RawSql:
    """A raw driver connection next to an app on the same database."""

    def __init__(self, dialect: str, conn: Any):
        self.dialect = dialect
        self.conn = conn

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def errors(self) -> type[Exception]:
        return psycopg.IntegrityError if self.dialect == "postgresql" else sqlite3.IntegrityError


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[aicmo.App, RawSql]]:
    if request.param == "sqlite":
        path = tmp_path / "qc.db"
        with aicmo.connect(f"sqlite:///{path}") as app:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA foreign_keys=ON")
            try:
                yield app, RawSql("sqlite", conn)
            finally:
                conn.close()
        return
    url = session_postgres_url()
    with aicmo.connect(url) as app, psycopg.connect(url, autocommit=True) as conn:
        yield app, RawSql("postgresql", conn)


def test_deleting_a_result_row_cascades_to_its_issues(sql_app: tuple[aicmo.App, RawSql]) -> None:
    app, raw = sql_app
    app.repos.qc.save_result(make_result("r1", "d1"))
    app.repos.qc.save_result(make_result("r2", "d2"))
    assert raw.run("SELECT COUNT(*) FROM qc_issues") == [(4,)]
    raw.run("DELETE FROM qc_results WHERE result_id = ?", ("r1",))
    assert raw.run("SELECT draft_id, position FROM qc_issues ORDER BY draft_id, position") == [
        ("d2", 0),
        ("d2", 1),
    ]
    assert app.repos.qc.get_result("d1") is None


def test_replacing_and_deleting_leave_no_orphan_issues(sql_app: tuple[aicmo.App, RawSql]) -> None:
    app, raw = sql_app
    repo = app.repos.qc
    repo.save_result(make_result("r1", "d1", issues=[make_issue(reason=str(n)) for n in range(5)]))
    repo.save_result(make_result("r2", "d1", issues=[make_issue("minor")]))
    assert raw.run("SELECT draft_id, position, severity FROM qc_issues") == [("d1", 0, "minor")]
    assert raw.run("SELECT result_id, draft_id FROM qc_results") == [("r2", "d1")]
    assert repo.delete_for_draft("d1") is True
    assert raw.run("SELECT COUNT(*) FROM qc_issues") == [(0,)]
    assert raw.run("SELECT COUNT(*) FROM qc_results") == [(0,)]


def test_created_at_is_the_first_evaluation_and_updated_at_the_latest(
    sql_app: tuple[aicmo.App, RawSql],
) -> None:
    app, raw = sql_app
    app.repos.qc.save_result(make_result("r1", "d1"))
    [(created, updated)] = raw.run("SELECT created_at, updated_at FROM qc_results")
    assert created == updated
    app.repos.qc.save_result(make_result("r2", "d1"))
    [(created_2, updated_2)] = raw.run("SELECT created_at, updated_at FROM qc_results")
    assert created_2 == created
    assert updated_2 > updated


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("INSERT INTO qc_issues VALUES (?, 0, 'minor', 's', 'r')", ("no-such-draft",)),
        ("INSERT INTO qc_issues VALUES (?, -1, 'minor', 's', 'r')", ("d1",)),
        ("INSERT INTO qc_issues VALUES (?, 0, 'minor', 's', 'r')", ("d1",)),
        ("INSERT INTO qc_issues VALUES (?, 5, 'blocker', 's', 'r')", ("d1",)),
        ("UPDATE qc_results SET score = 1.5 WHERE draft_id = ?", ("d1",)),
        ("UPDATE qc_results SET score = -0.5 WHERE draft_id = ?", ("d1",)),
        ("UPDATE qc_results SET draft_id = 'd2' WHERE draft_id = ?", ("d1",)),
        ("INSERT INTO qc_results SELECT 'r9', draft_id, passed, score, evaluated_at, "
         "created_at, updated_at FROM qc_results WHERE draft_id = ?", ("d1",)),
    ],
)  # fmt: skip
def test_the_schema_refuses_what_the_repository_never_writes(
    sql_app: tuple[aicmo.App, RawSql], sql: str, params: tuple[Any, ...]
) -> None:
    app, raw = sql_app
    app.repos.qc.save_result(make_result("r1", "d1"))
    with pytest.raises(raw.errors()):
        raw.run(sql, params)
    assert app.repos.qc.get_result("d1") == make_result("r1", "d1")


class TestQcDtos:
    """The DTOs' own rules (no repository involved)."""

    @pytest.mark.parametrize(
        ("changes", "path", "message"),
        [
            ({"score": 1.0000001}, "score", "between 0 and 1"),
            ({"score": -0.01}, "score", "between 0 and 1"),
            ({"score": 2}, "score", "between 0 and 1"),
            ({"score": math.nan}, "score", "finite"),
            ({"score": math.inf}, "score", "finite"),
            ({"score": True}, "score", "expected a number"),
            ({"score": "0.5"}, "score", "expected a number"),
            ({"passed": 1}, "passed", "expected a bool"),
            ({"passed": "yes"}, "passed", "expected a bool"),
            ({"passed": None}, "passed", "expected a bool"),
            ({"result_id": ""}, "result_id", "must not be empty"),
            ({"draft_id": "a\x00b"}, "draft_id", "NUL"),
            ({"issues": "critical"}, "issues", "expected a sequence"),
            (
                {"issues": [{"severity": "blocker", "section": "s", "reason": "r"}]},
                "issues[0].severity",
                "'critical', 'major', 'minor'",
            ),
            (
                {"issues": [make_issue(), {"severity": "Critical", "section": "s", "reason": "r"}]},
                "issues[1].severity",
                "must be one of 'critical', 'major', 'minor', got 'Critical'",
            ),
            (
                {"issues": [{"severity": "minor", "section": 1, "reason": "r"}]},
                "issues[0].section",
                "expected text",
            ),
            ({"evaluated_at": datetime(2025, 1, 1)}, "evaluated_at", "naive"),
        ],
    )
    def test_invalid_results_are_refused_naming_the_field(
        self, changes: dict[str, Any], path: str, message: str
    ) -> None:
        with pytest.raises(ValidationError) as info:
            make_result(**changes)
        assert [p for p, _ in info.value.errors] == [path]
        assert message in str(info.value)

    def test_severity_error_names_the_allowed_values(self) -> None:
        with pytest.raises(ValidationError, match=r"critical.*major.*minor.*got 'high'"):
            QcIssueDTO(severity="high", section="s", reason="r")

    def test_score_bounds_are_inclusive_and_ints_convert(self) -> None:
        assert make_result(score=0).score == 0.0
        assert repr(make_result(score=1).score) == "1.0"
        assert make_result(score=1.0).score == 1.0

    def test_issue_mappings_are_accepted_and_sequences_become_tuples(self) -> None:
        result = make_result(issues=[{"severity": "minor", "section": "s", "reason": "r"}])
        assert result.issues == (make_issue("minor", "s", reason="r"),)

    def test_qc_input_defaults(self) -> None:
        qc_input = QcInputDTO(draft_id="draft-1")
        assert qc_input.benchmark_ids == ()
        forced = QcInputDTO(draft_id="draft-1", benchmark_ids=["FORCE_FAIL"])  # type: ignore[arg-type]
        assert forced.benchmark_ids == ("FORCE_FAIL",)
        with pytest.raises(ValidationError, match=r"benchmark_ids\[0\]"):
            QcInputDTO(draft_id="draft-1", benchmark_ids=[""])  # type: ignore[arg-type]
