"""In-memory ``StrategyRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

from operator import attrgetter

from aicmo.db.memstore import MemoryDatabase
from aicmo.strategy.dtos import StrategyDocDTO, StrategyVersionDTO
from aicmo.strategy.rules import doc_arg, key_arg, version_of, version_taken

__all__ = ["InMemoryStrategyRepository"]


_doc_order = attrgetter("version", "strategy_id")


class InMemoryStrategyRepository:
    """Stores frozen DTOs in the app's memory database (atomic with ``app.transaction()``).

    The brief index always follows the stored document, so a document re-saved under
    another brief is listed under that brief only.
    """

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._docs = db.table(
            "strategy_document",
            indexes={"brief": lambda d: d.brief_id},
            unique={"brief_version": lambda d: (d.brief_id, d.version)},
        )

    def save(self, doc: StrategyDocDTO) -> None:
        doc = doc_arg(doc)
        with self._db.transaction():
            holder = self._docs.holder("brief_version", (doc.brief_id, doc.version))
            if holder is not None and holder != doc.strategy_id:
                raise version_taken(doc, holder)
            self._docs.put(doc.strategy_id, doc)

    def get(self, strategy_id: str) -> StrategyDocDTO | None:
        return self._docs.find(key_arg(strategy_id, "strategy_id"))

    def list_by_brief(self, brief_id: str) -> list[StrategyDocDTO]:
        return self._docs.listed("brief", key_arg(brief_id, "brief_id"), _doc_order)

    def list_versions(self, brief_id: str) -> list[StrategyVersionDTO]:
        return [version_of(doc) for doc in self.list_by_brief(brief_id)]

    def delete(self, strategy_id: str) -> bool:
        return self._docs.remove(key_arg(strategy_id, "strategy_id"))
