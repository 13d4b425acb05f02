"""SQL ``StrategyRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from aicmo.db.base import SqlDatabase
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import Sql, select, upsert
from aicmo.errors import ConflictError
from aicmo.strategy.dtos import StrategyDocDTO, StrategyVersionDTO
from aicmo.strategy.rules import doc_arg, version_taken
from aicmo.values import key_params

__all__ = ["SqlStrategyRepository"]

# Who holds (brief_id, version) now: read only when SAVE wrote nothing, to name the
# conflict precisely.
VERSION_HOLDER = Sql("""
SELECT strategy_id FROM strategy_document
WHERE brief_id = :brief_id AND version = :version
""")

_DOC = columns(StrategyDocDTO, flatten=("timeline",))

# Writes nothing (0 rows) when another document holds the version, so the check costs no
# statement of its own (the unique index stays the safety net against a concurrent writer).
SAVE = upsert(
    "strategy_document",
    _DOC,
    key="strategy_id",
    stamps=("updated_at",),
    where="NOT EXISTS (SELECT 1 FROM strategy_document WHERE brief_id = :brief_id "
    "AND version = :version AND strategy_id <> :strategy_id)",
)

GET = select(_DOC, "FROM strategy_document WHERE strategy_id = :strategy_id")

LIST_BY_BRIEF = select(
    _DOC, "FROM strategy_document WHERE brief_id = :brief_id ORDER BY version, strategy_id"
)

LIST_VERSIONS = select(
    columns(StrategyVersionDTO),
    "FROM strategy_document WHERE brief_id = :brief_id ORDER BY version, strategy_id",
)

DELETE = Sql("DELETE FROM strategy_document WHERE strategy_id = :strategy_id")


class SqlStrategyRepository:
    """``StrategyRepository`` over a :class:`~aicmo.db.base.SqlDatabase`.

    KPIs, channels and milestones are JSON text (order and floats round-trip exactly);
    the timeline's ``duration_weeks`` is a column of its own.
    """

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._docs = RowMapper(
            StrategyDocDTO,
            db.dialect,
            json=("kpis", "channels", "timeline.milestones"),
            flatten=("timeline",),
        )
        self._versions = RowMapper(StrategyVersionDTO, db.dialect)

    def save(self, doc: StrategyDocDTO) -> None:
        doc = doc_arg(doc)
        row = self._docs.to_row(doc, now=self._db.now())
        with self._db.transaction():
            if self._db.execute(SAVE, row):
                return
            holder = self._db.fetch_one(
                VERSION_HOLDER, {"brief_id": doc.brief_id, "version": doc.version}
            )
            if holder is None:  # released between the two statements (READ COMMITTED)
                raise ConflictError(
                    f"strategy {doc.strategy_id!r}: version {doc.version} of brief "
                    f"{doc.brief_id!r} was held by another strategy while it was saved; "
                    "nothing was written: try again"
                )
            raise version_taken(doc, holder["strategy_id"])

    def get(self, strategy_id: str) -> StrategyDocDTO | None:
        return self._db.load_one(GET, key_params(strategy_id=strategy_id), self._docs)

    def list_by_brief(self, brief_id: str) -> list[StrategyDocDTO]:
        return self._db.load_all(LIST_BY_BRIEF, key_params(brief_id=brief_id), self._docs)

    def list_versions(self, brief_id: str) -> list[StrategyVersionDTO]:
        return self._db.load_all(LIST_VERSIONS, key_params(brief_id=brief_id), self._versions)

    def delete(self, strategy_id: str) -> bool:
        return self._db.write(DELETE, key_params(strategy_id=strategy_id)) > 0
