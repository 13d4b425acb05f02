"""The strategy repository port. Every backend implements it with identical behaviour."""

from __future__ import annotations

from typing import Protocol

from aicmo.strategy.dtos import StrategyDocDTO, StrategyVersionDTO

__all__ = ["StrategyRepository"]


class StrategyRepository(Protocol):
    """Stores strategy documents; each ``(brief_id, version)`` names at most one of them.

    Writes are atomic; inside ``app.transaction()`` they join the transaction. Every
    method raises only ``aicmo.errors`` exceptions (``ValidationError`` for a bad
    argument, naming it).
    """

    def save(self, doc: StrategyDocDTO) -> None:
        """Insert or replace the document with ``doc.strategy_id`` (latest wins on every field).

        A re-save may change ``brief_id`` (the document then belongs to the new brief
        only) or ``version`` (the old ``(brief_id, version)`` becomes free). Raises
        ``ConflictError``, writing nothing, when another strategy already holds
        ``(doc.brief_id, doc.version)``.
        """
        ...

    def get(self, strategy_id: str) -> StrategyDocDTO | None:
        """The document, or ``None`` when there is none with that id."""
        ...

    def list_by_brief(self, brief_id: str) -> list[StrategyDocDTO]:
        """The brief's documents ordered by ``version`` (then ``strategy_id``, code points);
        ``[]`` when it has none."""
        ...

    def list_versions(self, brief_id: str) -> list[StrategyVersionDTO]:
        """One summary per document of the brief, in the order of :meth:`list_by_brief`."""
        ...

    def delete(self, strategy_id: str) -> bool:
        """Remove the document, freeing its ``(brief_id, version)``.

        ``True`` if a document was removed, ``False`` if there was none.
        """
        ...
