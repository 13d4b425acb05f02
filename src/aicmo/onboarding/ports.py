"""The onboarding repository port. Every backend implements it with identical behaviour."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aicmo.onboarding.dtos import IntakeFormDTO, NormalizedBriefDTO

__all__ = ["BriefRepository"]


class BriefRepository(Protocol):
    """Stores normalized briefs and, for each brief, its latest intake form.

    Writes are atomic; inside ``app.transaction()`` they join the transaction. Every
    method raises only ``aicmo.errors`` exceptions.
    """

    def save_brief(self, brief: NormalizedBriefDTO) -> None:
        """Insert or replace the brief with ``brief.brief_id`` (latest wins on every field)."""
        ...

    def save_briefs(self, briefs: Iterable[NormalizedBriefDTO]) -> None:
        """Save many briefs in one transaction: all of them, or (on any error) none.

        Every item is checked before anything is written: one that is not a
        ``NormalizedBriefDTO`` raises ``ValidationError`` naming its index. A brief id given
        more than once ends with the last of its briefs, exactly as consecutive
        ``save_brief`` calls would leave it. SQL backends send the batch with
        ``executemany`` (pipelined on PostgreSQL): use it for bulk loads.
        """
        ...

    def get_brief(self, brief_id: str) -> NormalizedBriefDTO | None:
        """The brief, or ``None`` when there is none with that id."""
        ...

    def list_by_client(self, client_id: str) -> list[NormalizedBriefDTO]:
        """The client's briefs ordered by ``normalized_at``, then ``brief_id`` (code points)."""
        ...

    def delete_brief(self, brief_id: str) -> bool:
        """Remove the brief and its intake; ``True`` if a brief was removed."""
        ...

    def save_intake(self, brief_id: str, intake: IntakeFormDTO) -> None:
        """Keep ``intake`` as the brief's intake form, replacing any earlier one.

        Raises ``NotFoundError`` when no brief ``brief_id`` exists (save the brief first).
        """
        ...

    def get_intake(self, brief_id: str) -> IntakeFormDTO | None:
        """The brief's latest intake form, or ``None``."""
        ...
