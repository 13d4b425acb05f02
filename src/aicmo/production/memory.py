"""In-memory ``ProductionRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

from aicmo.db.memstore import MemoryDatabase
from aicmo.production.dtos import ContentDraftDTO, DraftBundleDTO
from aicmo.production.rules import (
    asset_conflict,
    bundle_arg,
    draft_arg,
    draft_not_found,
    key_arg,
)

__all__ = ["InMemoryProductionRepository"]


def _draft_order(draft: ContentDraftDTO) -> tuple[object, ...]:
    return (draft.created_at, draft.draft_id)


def _bundle_order(bundle: DraftBundleDTO) -> tuple[object, ...]:
    return (bundle.assembled_at, bundle.bundle_id)


class InMemoryProductionRepository:
    """Stores frozen DTOs in the app's memory database (atomic with ``app.transaction()``).

    Bundles are stored whole (their assets in order); a separate table maps every
    asset id to the bundle holding it, which keeps asset ids unique across bundles.
    """

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._drafts = db.table("production_drafts", indexes={"strategy": lambda d: d.strategy_id})
        self._bundles = db.table("production_bundles", indexes={"draft": lambda b: b.draft_id})
        # asset_id -> bundle_id of the bundle holding it
        self._asset_holders = db.table("production_bundle_assets")

    def save_draft(self, draft: ContentDraftDTO) -> None:
        draft = draft_arg(draft)
        with self._db.transaction():
            self._drafts.put(draft.draft_id, draft)

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        draft_id = key_arg(draft_id, "draft_id")
        with self._db.read():
            return self._drafts.get(draft_id)

    def list_drafts(self, strategy_id: str) -> list[ContentDraftDTO]:
        strategy_id = key_arg(strategy_id, "strategy_id")
        with self._db.read():
            return sorted(self._drafts.lookup("strategy", strategy_id), key=_draft_order)

    def delete_draft(self, draft_id: str) -> bool:
        draft_id = key_arg(draft_id, "draft_id")
        with self._db.transaction():
            for bundle in self._bundles.lookup("draft", draft_id):
                self._drop_bundle(bundle)
            return self._drafts.delete(draft_id)

    def save_bundle(self, bundle: DraftBundleDTO) -> None:
        bundle = bundle_arg(bundle)
        with self._db.transaction():
            if self._drafts.get(bundle.draft_id) is None:
                raise draft_not_found(bundle)
            taken = [
                (asset.asset_id, holder)
                for asset in bundle.assets
                if (holder := self._asset_holders.get(asset.asset_id)) is not None
                and holder != bundle.bundle_id
            ]
            if taken:
                raise asset_conflict(bundle.bundle_id, taken)
            # A re-save touches only the assets that changed hands (the common re-save
            # of the same assets writes one row, not a delete and insert of each).
            old = self._bundles.get(bundle.bundle_id)
            if old is not None:
                kept = {asset.asset_id for asset in bundle.assets}
                for asset in old.assets:
                    if asset.asset_id not in kept:
                        self._asset_holders.delete(asset.asset_id)
            for asset in bundle.assets:
                if self._asset_holders.get(asset.asset_id) != bundle.bundle_id:
                    self._asset_holders.put(asset.asset_id, bundle.bundle_id)
            self._bundles.put(bundle.bundle_id, bundle)

    def get_bundle(self, bundle_id: str) -> DraftBundleDTO | None:
        bundle_id = key_arg(bundle_id, "bundle_id")
        with self._db.read():
            return self._bundles.get(bundle_id)

    def list_bundles(self, draft_id: str) -> list[DraftBundleDTO]:
        draft_id = key_arg(draft_id, "draft_id")
        with self._db.read():
            return sorted(self._bundles.lookup("draft", draft_id), key=_bundle_order)

    def _drop_bundle(self, bundle: DraftBundleDTO) -> None:
        for asset in bundle.assets:
            self._asset_holders.delete(asset.asset_id)
        self._bundles.delete(bundle.bundle_id)
