"""In-memory ``BriefRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from aicmo.db.memstore import MemoryDatabase
from aicmo.onboarding import rules
from aicmo.onboarding.dtos import IntakeFormDTO, NormalizedBriefDTO

__all__ = ["InMemoryBriefRepository"]


_brief_order = attrgetter("normalized_at", "brief_id")


class InMemoryBriefRepository:
    """Stores frozen DTOs in the app's memory database (atomic with ``app.transaction()``)."""

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._briefs = db.table("onboarding_brief", indexes={"client": lambda b: b.client_id})
        self._intakes = db.table("onboarding_intake")

    def save_brief(self, brief: NormalizedBriefDTO) -> None:
        brief = rules.brief_arg(brief)
        self._briefs.store(brief.brief_id, brief)

    def save_briefs(self, briefs: Iterable[NormalizedBriefDTO]) -> None:
        self._briefs.store_all(rules.briefs_arg(briefs), key=attrgetter("brief_id"))

    def get_brief(self, brief_id: str) -> NormalizedBriefDTO | None:
        return self._briefs.find(rules.key_arg(brief_id, "brief_id"))

    def list_by_client(self, client_id: str) -> list[NormalizedBriefDTO]:
        return self._briefs.listed("client", rules.key_arg(client_id, "client_id"), _brief_order)

    def delete_brief(self, brief_id: str) -> bool:
        brief_id = rules.key_arg(brief_id, "brief_id")
        with self._db.transaction():
            self._intakes.delete(brief_id)
            return self._briefs.delete(brief_id)

    def save_intake(self, brief_id: str, intake: IntakeFormDTO) -> None:
        brief_id = rules.brief_id_arg(brief_id)
        intake = rules.intake_arg(intake)
        with self._db.transaction():
            if self._briefs.get(brief_id) is None:
                raise rules.brief_not_found(brief_id)
            self._intakes.put(brief_id, intake)

    def get_intake(self, brief_id: str) -> IntakeFormDTO | None:
        return self._intakes.find(rules.key_arg(brief_id, "brief_id"))
