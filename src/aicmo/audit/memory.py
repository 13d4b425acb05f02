"""In-memory ``AuditRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from aicmo.audit.dtos import AuditEntryDTO
from aicmo.audit.ports import AuditQuery, ListsByQuery, entries_arg, entry_taken, key_arg
from aicmo.db.memstore import MemoryDatabase

__all__ = ["InMemoryAuditRepository"]


class InMemoryAuditRepository(ListsByQuery):
    """Keeps frozen entries keyed by ``entry_id`` in the app's memory database, in the
    order they were recorded (the table keeps insertion order; entries are never
    replaced, so an entry never moves)."""

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._entries = db.table("audit_entries")

    def record(self, entries: Sequence[AuditEntryDTO]) -> None:
        checked = entries_arg(entries)
        with self._db.transaction():
            for entry in checked:
                if self._entries.get(entry.entry_id) is not None:
                    raise entry_taken(entry.entry_id)
                self._entries.put(entry.entry_id, entry)

    def append(self, entries: Sequence[AuditEntryDTO]) -> None:
        with self._db.transaction():  # the caller's
            for entry in entries:
                self._entries.put(entry.entry_id, entry)

    def get(self, entry_id: str) -> AuditEntryDTO | None:
        return self._entries.find(key_arg(entry_id, "entry_id"))

    def select(self, q: AuditQuery) -> builtins.list[AuditEntryDTO]:
        with self._db.read():
            entries = self._entries.values()
        if q.newest_first:
            entries.reverse()
        chosen = [
            e
            for e in entries
            if (q.run_id is None or e.run_id == q.run_id)
            and (q.entity_id is None or e.entity_id == q.entity_id)
            and (q.since is None or e.at >= q.since)
        ]
        return chosen if q.limit is None else chosen[: q.limit]
