"""In-memory ``ProductionRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from aicmo.db.memstore import MemoryDatabase
from aicmo.errors import ConflictError
from aicmo.production import rules
from aicmo.production.dtos import ContentDraftDTO, DraftBundleDTO

__all__ = ["InMemoryProductionRepository"]


_draft_order = attrgetter("created_at", "draft_id")
_bundle_order = attrgetter("assembled_at", "bundle_id")


class InMemoryProductionRepository:
    """Stores frozen DTOs in the app's memory database (atomic with ``app.transaction()``).

    Bundles are stored whole (their assets in order); the table keeps every asset id
    unique across bundles (``unique_each``), as the SQL child table's key does.
    """

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._drafts = db.table("production_drafts", indexes={"strategy": lambda d: d.strategy_id})
        self._bundles = db.table(
            "production_bundles",
            indexes={"draft": lambda b: b.draft_id},
            unique_each={"asset_id": lambda b: [a.asset_id for a in b.assets]},
        )

    def save_draft(self, draft: ContentDraftDTO) -> None:
        draft = rules.draft_arg(draft)
        self._drafts.store(draft.draft_id, draft)

    def save_drafts(self, drafts: Iterable[ContentDraftDTO]) -> None:
        self._drafts.store_all(rules.drafts_arg(drafts), key=attrgetter("draft_id"))

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        return self._drafts.find(rules.key_arg(draft_id, "draft_id"))

    def list_drafts(self, strategy_id: str) -> list[ContentDraftDTO]:
        return self._drafts.listed(
            "strategy", rules.key_arg(strategy_id, "strategy_id"), _draft_order
        )

    def delete_draft(self, draft_id: str) -> bool:
        draft_id = rules.key_arg(draft_id, "draft_id")
        with self._db.transaction():
            for bundle in self._bundles.lookup("draft", draft_id):
                self._bundles.delete(bundle.bundle_id)
            return self._drafts.delete(draft_id)

    def save_bundle(self, bundle: DraftBundleDTO) -> None:
        bundle = rules.bundle_arg(bundle)
        with self._db.transaction():
            if self._drafts.get(bundle.draft_id) is None:
                raise rules.draft_not_found(bundle)
            try:
                self._bundles.put(bundle.bundle_id, bundle)
            except ConflictError:
                taken = [
                    (asset.asset_id, holder)
                    for asset in bundle.assets
                    if (holder := self._bundles.holder("asset_id", asset.asset_id)) is not None
                    and holder != bundle.bundle_id
                ]
                raise rules.asset_conflict(bundle.bundle_id, taken) from None

    def save_bundles(self, bundles: Iterable[DraftBundleDTO]) -> None:
        batch = rules.bundles_arg(bundles)
        with self._db.transaction():
            for bundle in batch:
                self.save_bundle(bundle)

    def get_bundle(self, bundle_id: str) -> DraftBundleDTO | None:
        return self._bundles.find(rules.key_arg(bundle_id, "bundle_id"))

    def list_bundles(self, draft_id: str) -> list[DraftBundleDTO]:
        return self._bundles.listed("draft", rules.key_arg(draft_id, "draft_id"), _bundle_order)
