"""SQL ``BriefRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

from aicmo.db.base import SqlDatabase
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import Sql, select, upsert
from aicmo.onboarding.dtos import IntakeFormDTO, NormalizedBriefDTO
from aicmo.onboarding.rules import (
    brief_arg,
    brief_id_arg,
    brief_not_found,
    briefs_arg,
    intake_arg,
)
from aicmo.values import key_params

__all__ = ["SqlBriefRepository"]

_BRIEF = columns(NormalizedBriefDTO, flatten=("scope",))

SAVE_BRIEF = upsert("onboarding_brief", _BRIEF, key="brief_id", stamps=("created_at", "updated_at"))

GET_BRIEF = select(_BRIEF, "FROM onboarding_brief WHERE brief_id = :brief_id")

LIST_BRIEFS_BY_CLIENT = select(
    _BRIEF,
    "FROM onboarding_brief WHERE client_id = :client_id ORDER BY normalized_at, brief_id",
)

# The intake goes with its brief: ON DELETE CASCADE.
DELETE_BRIEF = Sql("DELETE FROM onboarding_brief WHERE brief_id = :brief_id")

_INTAKE = columns(IntakeFormDTO)

# Writes nothing (0 rows) when the brief does not exist.
SAVE_INTAKE = upsert(
    "onboarding_intake",
    ("brief_id", *_INTAKE),
    key="brief_id",
    stamps=("created_at", "updated_at"),
    where="EXISTS (SELECT 1 FROM onboarding_brief WHERE brief_id = :brief_id)",
)

GET_INTAKE = select(_INTAKE, "FROM onboarding_intake WHERE brief_id = :brief_id")


class SqlBriefRepository:
    """``BriefRepository`` over a :class:`~aicmo.db.base.SqlDatabase`."""

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._briefs = RowMapper(
            NormalizedBriefDTO,
            db.dialect,
            json=(
                "objectives",
                "brand_guidelines",
                "channels",
                "scope.deliverables",
                "scope.exclusions",
            ),
            flatten=("scope",),
        )
        self._intakes = RowMapper(IntakeFormDTO, db.dialect, json=("responses",))

    def save_brief(self, brief: NormalizedBriefDTO) -> None:
        self._db.write(SAVE_BRIEF, self._briefs.to_row(brief_arg(brief), now=self._db.now()))

    def save_briefs(self, briefs: Iterable[NormalizedBriefDTO]) -> None:
        batch = briefs_arg(briefs)
        if not batch:
            return
        rows = self._briefs.to_rows(batch, now=self._db.now())
        with self._db.transaction():
            # One statement, many parameter sets: sqlite3's executemany, psycopg's
            # pipelined executemany. Ids are distinct (briefs_arg keeps the last).
            self._db.execute_many(SAVE_BRIEF, rows)

    def get_brief(self, brief_id: str) -> NormalizedBriefDTO | None:
        return self._db.load_one(GET_BRIEF, key_params(brief_id=brief_id), self._briefs)

    def list_by_client(self, client_id: str) -> list[NormalizedBriefDTO]:
        params = key_params(client_id=client_id)
        return self._db.load_all(LIST_BRIEFS_BY_CLIENT, params, self._briefs)

    def delete_brief(self, brief_id: str) -> bool:
        return self._db.write(DELETE_BRIEF, key_params(brief_id=brief_id)) > 0

    def save_intake(self, brief_id: str, intake: IntakeFormDTO) -> None:
        brief_id = brief_id_arg(brief_id)
        row = self._intakes.to_row(intake_arg(intake), brief_id=brief_id, now=self._db.now())
        if self._db.write(SAVE_INTAKE, row) == 0:
            raise brief_not_found(brief_id)

    def get_intake(self, brief_id: str) -> IntakeFormDTO | None:
        return self._db.load_one(GET_INTAKE, key_params(brief_id=brief_id), self._intakes)
