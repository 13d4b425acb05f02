"""In-memory ``QcRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

from collections.abc import Iterable

from aicmo.db.memstore import MemoryDatabase
from aicmo.qc.dtos import QcResultDTO
from aicmo.qc.rules import key_arg, result_arg, result_id_taken, results_arg

__all__ = ["InMemoryQcRepository"]


class InMemoryQcRepository:
    """Stores frozen results (issues included) keyed by draft, with a unique index on
    ``result_id``, in the app's memory database (atomic with ``app.transaction()``)."""

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._results = db.table("qc_results", unique={"result_id": lambda r: r.result_id})

    def save_result(self, result: QcResultDTO) -> None:
        result = result_arg(result)
        with self._db.transaction():
            holder = self._results.holder("result_id", result.result_id)
            if holder is not None and holder != result.draft_id:
                raise result_id_taken(result, holder)
            self._results.put(result.draft_id, result)

    def save_results(self, results: Iterable[QcResultDTO]) -> None:
        batch = results_arg(results)
        with self._db.transaction():
            for result in batch:
                self.save_result(result)

    def get_result(self, draft_id: str) -> QcResultDTO | None:
        return self._results.find(key_arg(draft_id, "draft_id"))

    def get_by_id(self, result_id: str) -> QcResultDTO | None:
        return self._results.held("result_id", key_arg(result_id, "result_id"))

    def delete_for_draft(self, draft_id: str) -> bool:
        return self._results.remove(key_arg(draft_id, "draft_id"))
