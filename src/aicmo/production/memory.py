"""In-memory ``ProductionRepository`` (stub)."""

from __future__ import annotations

from aicmo.db.memstore import MemoryDatabase

__all__ = ["InMemoryProductionRepository"]


class InMemoryProductionRepository:
    def __init__(self, db: MemoryDatabase):
        self._db = db
