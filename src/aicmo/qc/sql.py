"""SQL ``QcRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

from aicmo.db.base import SqlDatabase
from aicmo.db.children import Children
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import InKeys, InsertRows, Sql, on_conflict, upsert
from aicmo.qc.dtos import QcIssueDTO, QcResultDTO
from aicmo.qc.rules import result_arg, result_id_taken, results_arg
from aicmo.values import key_params

__all__ = ["SqlQcRepository"]

FIND_RESULT_ID = Sql("SELECT draft_id FROM qc_results WHERE result_id = :result_id")

_RESULT = columns(QcResultDTO, without=("issues",))

# One row per draft: a re-evaluation updates the draft's row in place, under its new
# result_id. created_at stays the draft's first evaluation; updated_at is the latest.
_STAMPS = ("created_at", "updated_at")
UPSERT_RESULT = upsert("qc_results", _RESULT, key="draft_id", stamps=_STAMPS)
# The bulk path's: many results (of distinct drafts) a statement.
UPSERT_RESULTS = InsertRows(
    "qc_results", _RESULT, stamps=_STAMPS, rest=on_conflict(_RESULT, key="draft_id", stamps=_STAMPS)
)


# The drafts holding many result ids at once (the bulk path's check).
FIND_RESULT_IDS = InKeys(
    "SELECT result_id, draft_id FROM qc_results WHERE result_id IN ({keys})", "result_id"
)


ISSUES = Children(
    "qc_results", "qc_issues", QcIssueDTO, key="draft_id", field="issues", present="severity"
)

# One statement reads a result and its issues together (consistent without a snapshot).
GET_BY_DRAFT = ISSUES.joined(_RESULT, where="p.draft_id = :draft_id")
GET_BY_ID = ISSUES.joined(_RESULT, where="p.result_id = :result_id")

# The issues go with their result: ON DELETE CASCADE.
DELETE_RESULT = Sql("DELETE FROM qc_results WHERE draft_id = :draft_id")


class SqlQcRepository:
    """``QcRepository`` over a :class:`~aicmo.db.base.SqlDatabase`."""

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._results = RowMapper(QcResultDTO, db.dialect)

    def save_result(self, result: QcResultDTO) -> None:
        result = result_arg(result)
        row = self._results.to_row(result, now=self._db.now())
        issues = ISSUES.split(row)
        with self._db.transaction():
            holder = self._db.fetch_one(FIND_RESULT_ID, {"result_id": result.result_id})
            if holder is not None and holder["draft_id"] != result.draft_id:
                raise result_id_taken(result, holder["draft_id"])
            self._db.execute(UPSERT_RESULT, row)
            ISSUES.replace(self._db, result.draft_id, issues)

    def save_results(self, results: Iterable[QcResultDTO]) -> None:
        batch = results_arg(results)
        if not batch:
            return
        with self._db.transaction():
            if not self._each_new_or_its_drafts(batch):
                # Repeated drafts or ids, or an id another draft holds: one after another,
                # exactly as save_result (the conflict it raises undoes the batch).
                for result in batch:
                    self.save_result(result)
                return
            rows = self._results.to_rows(batch, now=self._db.now())
            issues = [issue for row in rows for issue in ISSUES.split(row)]
            UPSERT_RESULTS.execute(self._db, rows)
            ISSUES.replace_many(self._db, rows, issues)

    def _each_new_or_its_drafts(self, batch: tuple[QcResultDTO, ...]) -> bool:
        """Whether the drafts and the result ids of ``batch`` are distinct and each id is
        free or its own draft's (so the results can be written in any order at once)."""
        if len({r.draft_id for r in batch}) < len(batch):
            return False
        if len({r.result_id for r in batch}) < len(batch):
            return False
        holders: dict[str, str] = {}
        for stmt, params in FIND_RESULT_IDS.chunks([r.result_id for r in batch]):
            holders.update(
                (row["result_id"], row["draft_id"]) for row in self._db.fetch_all(stmt, params)
            )
        return all(holders.get(r.result_id, r.draft_id) == r.draft_id for r in batch)

    def get_result(self, draft_id: str) -> QcResultDTO | None:
        found = self._db.fetch_rows(GET_BY_DRAFT, key_params(draft_id=draft_id))
        return ISSUES.load_one(self._results, found)

    def get_by_id(self, result_id: str) -> QcResultDTO | None:
        found = self._db.fetch_rows(GET_BY_ID, key_params(result_id=result_id))
        return ISSUES.load_one(self._results, found)

    def delete_for_draft(self, draft_id: str) -> bool:
        return self._db.write(DELETE_RESULT, key_params(draft_id=draft_id)) > 0
