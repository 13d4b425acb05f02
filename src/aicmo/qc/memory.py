"""In-memory ``QcRepository`` (stub)."""

from __future__ import annotations

from aicmo.db.memstore import MemoryDatabase

__all__ = ["InMemoryQcRepository"]


class InMemoryQcRepository:
    def __init__(self, db: MemoryDatabase):
        self._db = db
