"""In-memory ``StrategyRepository`` (stub)."""

from __future__ import annotations

from aicmo.db.memstore import MemoryDatabase

__all__ = ["InMemoryStrategyRepository"]


class InMemoryStrategyRepository:
    def __init__(self, db: MemoryDatabase):
        self._db = db
