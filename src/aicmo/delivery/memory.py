"""In-memory ``DeliveryRepository`` (stub)."""

from __future__ import annotations

from aicmo.db.memstore import MemoryDatabase

__all__ = ["InMemoryDeliveryRepository"]


class InMemoryDeliveryRepository:
    def __init__(self, db: MemoryDatabase):
        self._db = db
