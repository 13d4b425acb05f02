"""SQL ``AuditRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from aicmo.audit.dtos import AuditEntryDTO
from aicmo.audit.ports import AuditQuery, ListsByQuery, entries_arg
from aicmo.db.base import SqlDatabase
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import InsertRows, select
from aicmo.errors import ConflictError
from aicmo.values import key_params

__all__ = ["SqlAuditRepository"]

_ENTRY = columns(AuditEntryDTO)

# position is the database's (SQLite's rowid, PostgreSQL's identity): the order of recording.
RECORD = InsertRows("audit_entries", _ENTRY)
"""A transaction's entries in one multi-row ``INSERT`` per :data:`~aicmo.db.statement.BATCH`
(their ``VALUES`` in recording order, so ``position`` follows it)."""

GET = select(_ENTRY, "FROM audit_entries WHERE entry_id = :entry_id")

_FILTERED = """FROM audit_entries
WHERE (:any_run = 1 OR run_id = :run_id)
    AND (:any_entity = 1 OR entity_id = :entity_id)
    AND (:any_since = 1 OR at >= :since)
"""
LIST = select(_ENTRY, _FILTERED + "ORDER BY position\nLIMIT :limit")
LIST_NEWEST = select(_ENTRY, _FILTERED + "ORDER BY position DESC\nLIMIT :limit")

_NO_LIMIT = 2**62


class SqlAuditRepository(ListsByQuery):
    """``AuditRepository`` over a :class:`~aicmo.db.base.SqlDatabase`: the entries of a
    ``record`` (or of a transaction's ``append``) in one multi-row ``INSERT`` per
    :data:`~aicmo.db.statement.BATCH`."""

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._entries = RowMapper(AuditEntryDTO, db.dialect)

    def record(self, entries: Sequence[AuditEntryDTO]) -> None:
        checked = entries_arg(entries)
        if not checked:
            return
        try:
            with self._db.transaction():
                self.append(checked)
        except ConflictError as exc:
            raise ConflictError(
                "an audit entry of this batch is recorded already; entries are never "
                f"replaced, give each new one its own entry_id ({exc})"
            ) from exc

    def append(self, entries: Sequence[AuditEntryDTO]) -> None:
        RECORD.execute(self._db, [self._entries.to_row(e) for e in entries])

    def get(self, entry_id: str) -> AuditEntryDTO | None:
        row = self._db.fetch_one(GET, key_params(entry_id=entry_id))
        return self._entries.maybe(row)

    def select(self, q: AuditQuery) -> builtins.list[AuditEntryDTO]:
        params = {
            "any_run": 1 if q.run_id is None else 0,
            "run_id": q.run_id,
            "any_entity": 1 if q.entity_id is None else 0,
            "entity_id": q.entity_id,
            "any_since": 1 if q.since is None else 0,
            "since": None if q.since is None else self._db.encode_datetime(q.since),
            "limit": _NO_LIMIT if q.limit is None else q.limit,
        }
        rows = self._db.fetch_all(LIST_NEWEST if q.newest_first else LIST, params)
        return self._entries.from_rows(rows)
