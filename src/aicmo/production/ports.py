"""The production repository port. Every backend implements it with identical behaviour."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aicmo.production.dtos import ContentDraftDTO, DraftBundleDTO

__all__ = ["ProductionRepository"]


class ProductionRepository(Protocol):
    """Stores content drafts and, for each draft, its bundles of assets.

    A bundle belongs to one draft of this repository; an asset belongs to one bundle
    (asset ids are unique across all bundles). Writes are atomic; inside
    ``app.transaction()`` they join the transaction. A write that raises writes nothing.
    Every method raises only ``aicmo.errors`` exceptions (``ValidationError`` naming the
    argument for bad input). Ids order by code point, whatever the database's collation.
    """

    def save_draft(self, draft: ContentDraftDTO) -> None:
        """Insert or replace the draft with ``draft.draft_id``.

        The latest save wins on every field, ``created_at`` included. The draft's bundles
        are kept.
        """
        ...

    def save_drafts(self, drafts: Iterable[ContentDraftDTO]) -> None:
        """:meth:`save_draft` each of ``drafts``, in one transaction: every item is checked
        first (``ValidationError`` naming its index); a ``draft_id`` given twice ends with
        its last draft. SQL backends write up to 32 drafts a statement."""
        ...

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        """The draft, or ``None`` when there is none with that id."""
        ...

    def list_drafts(self, strategy_id: str) -> list[ContentDraftDTO]:
        """The strategy's drafts ordered by ``created_at``, then ``draft_id`` (code points)."""
        ...

    def delete_draft(self, draft_id: str) -> bool:
        """Remove the draft with its bundles and their assets; ``True`` if a draft was removed."""
        ...

    def save_bundle(self, bundle: DraftBundleDTO) -> None:
        """Insert or replace the bundle with ``bundle.bundle_id``, with exactly its assets.

        The bundle's asset set is replaced as a whole, in the order given; assets it no
        longer lists are removed (their ids become free). Saving it under another
        ``draft_id`` moves it to that draft. Raises ``NotFoundError`` when no draft
        ``bundle.draft_id`` exists (save the draft first), and ``ConflictError`` when one
        of its asset ids belongs to another bundle; either way nothing is written.
        """
        ...

    def save_bundles(self, bundles: Iterable[DraftBundleDTO]) -> None:
        """:meth:`save_bundle` each of ``bundles``, one after another, in one transaction:
        every item is checked first (``ValidationError`` naming its index), and the error
        of any (its draft missing, an asset id another bundle's when its turn comes)
        writes none of them. Distinct bundles whose drafts exist and whose assets are free
        or their own cost a few statements in all on SQL backends."""
        ...

    def get_bundle(self, bundle_id: str) -> DraftBundleDTO | None:
        """The bundle with its assets in the order saved, or ``None``."""
        ...

    def list_bundles(self, draft_id: str) -> list[DraftBundleDTO]:
        """The draft's bundles ordered by ``assembled_at``, then ``bundle_id`` (code points),
        each with its assets in the order saved."""
        ...
