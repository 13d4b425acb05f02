"""The QC repository port. Every backend implements it with identical behaviour."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aicmo.qc.dtos import QcResultDTO

__all__ = ["QcRepository"]


class QcRepository(Protocol):
    """Stores one QC result per draft (the latest evaluation), with its issues in order.

    ``draft_id`` refers to a production draft by plain text: it is neither checked nor
    tied to production's tables. Writes are atomic; inside ``app.transaction()`` they
    join the transaction. Every method raises only ``aicmo.errors`` exceptions.
    """

    def save_result(self, result: QcResultDTO) -> None:
        """Keep ``result`` as the result of ``result.draft_id``; latest evaluation wins.

        Any result stored for that draft is replaced, issues included, even when it had
        another ``result_id`` (that id is then free). Result ids are unique: raises
        ``ConflictError``, writing nothing, when ``result.result_id`` already belongs to
        the result of another draft.
        """
        ...

    def save_results(self, results: Iterable[QcResultDTO]) -> None:
        """Save ``results`` as :meth:`save_result` would, one after another, in one
        transaction: every result is checked before any is written, and a conflict of
        any (its ``result_id`` another draft's when its turn comes) writes none of them.
        The bulk path: a batch of results of distinct drafts, whose ids no other draft
        holds, costs a few statements whatever its size, not a few per result."""
        ...

    def get_result(self, draft_id: str) -> QcResultDTO | None:
        """The draft's result with its issues in the order saved, or ``None``."""
        ...

    def get_by_id(self, result_id: str) -> QcResultDTO | None:
        """The result with that id, with its issues in the order saved, or ``None``."""
        ...

    def delete_for_draft(self, draft_id: str) -> bool:
        """Remove the draft's result and its issues; ``True`` if there was one."""
        ...
