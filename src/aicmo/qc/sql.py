"""SQL ``QcRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

from aicmo.db.base import Row, SqlDatabase
from aicmo.db.mapping import RowMapper
from aicmo.db.statement import Sql
from aicmo.qc.dtos import QcResultDTO
from aicmo.qc.rules import key_arg, result_arg, result_id_taken

__all__ = ["STATEMENTS", "SqlQcRepository"]

FIND_RESULT_ID = Sql("SELECT draft_id FROM qc_results WHERE result_id = :result_id")

# One row per draft: a re-evaluation updates the draft's row in place, under its new
# result_id. created_at stays the draft's first evaluation; updated_at is the latest.
UPSERT_RESULT = Sql("""
INSERT INTO qc_results (
    result_id, draft_id, passed, score, evaluated_at, created_at, updated_at
) VALUES (
    :result_id, :draft_id, :passed, :score, :evaluated_at, :now, :now
)
ON CONFLICT (draft_id) DO UPDATE SET
    result_id = excluded.result_id,
    passed = excluded.passed,
    score = excluded.score,
    evaluated_at = excluded.evaluated_at,
    updated_at = excluded.updated_at
""")

DELETE_ISSUES = Sql("DELETE FROM qc_issues WHERE draft_id = :draft_id")

INSERT_ISSUE = Sql("""
INSERT INTO qc_issues (draft_id, position, severity, section, reason)
VALUES (:draft_id, :position, :severity, :section, :reason)
""")

# One statement reads a result and its issues together (consistent without a snapshot).
# A result without issues comes back as one row whose issue columns are NULL.
GET_BY_DRAFT = Sql("""
SELECT r.result_id, r.draft_id, r.passed, r.score, r.evaluated_at,
       i.severity, i.section, i.reason
FROM qc_results r
LEFT JOIN qc_issues i ON i.draft_id = r.draft_id
WHERE r.draft_id = :draft_id
ORDER BY i.position
""")

GET_BY_ID = Sql("""
SELECT r.result_id, r.draft_id, r.passed, r.score, r.evaluated_at,
       i.severity, i.section, i.reason
FROM qc_results r
LEFT JOIN qc_issues i ON i.draft_id = r.draft_id
WHERE r.result_id = :result_id
ORDER BY i.position
""")

# The issues go with their result: ON DELETE CASCADE.
DELETE_RESULT = Sql("DELETE FROM qc_results WHERE draft_id = :draft_id")

STATEMENTS = (
    FIND_RESULT_ID,
    UPSERT_RESULT,
    DELETE_ISSUES,
    INSERT_ISSUE,
    GET_BY_DRAFT,
    GET_BY_ID,
    DELETE_RESULT,
)
"""Every statement this module issues (the table-ownership test reads them)."""


class SqlQcRepository:
    """``QcRepository`` over a :class:`~aicmo.db.base.SqlDatabase`."""

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._results = RowMapper(QcResultDTO, db.dialect)

    def _from_rows(self, rows: Sequence[Row]) -> QcResultDTO | None:
        if not rows:
            return None
        # The first row stands for the result and each row for its issue (the mapper
        # reads only the columns it needs).
        first = dict(rows[0])
        first["issues"] = [row for row in rows if row["severity"] is not None]
        return self._results.from_row(first)

    def save_result(self, result: QcResultDTO) -> None:
        result = result_arg(result)
        row = self._results.to_row(result)
        issues = [
            {"draft_id": result.draft_id, "position": position, **issue}
            for position, issue in enumerate(row.pop("issues"))
        ]
        row["now"] = self._db.now()
        with self._db.transaction():
            holder = self._db.fetch_one(FIND_RESULT_ID, {"result_id": result.result_id})
            if holder is not None and holder["draft_id"] != result.draft_id:
                raise result_id_taken(result, holder["draft_id"])
            self._db.execute(UPSERT_RESULT, row)
            self._db.execute(DELETE_ISSUES, {"draft_id": result.draft_id})
            if issues:
                self._db.execute_many(INSERT_ISSUE, issues)

    def get_result(self, draft_id: str) -> QcResultDTO | None:
        draft_id = key_arg(draft_id, "draft_id")
        return self._from_rows(self._db.fetch_all(GET_BY_DRAFT, {"draft_id": draft_id}))

    def get_by_id(self, result_id: str) -> QcResultDTO | None:
        result_id = key_arg(result_id, "result_id")
        return self._from_rows(self._db.fetch_all(GET_BY_ID, {"result_id": result_id}))

    def delete_for_draft(self, draft_id: str) -> bool:
        draft_id = key_arg(draft_id, "draft_id")
        with self._db.transaction():
            return self._db.execute(DELETE_RESULT, {"draft_id": draft_id}) > 0
