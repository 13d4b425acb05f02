"""SQL ``ProductionRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

from aicmo.db.base import SqlDatabase
from aicmo.db.children import Children
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import InKeys, InsertRows, Sql, on_conflict, select, upsert
from aicmo.production.dtos import AssetDTO, ContentDraftDTO, DraftBundleDTO
from aicmo.production.rules import (
    asset_conflict,
    bundle_arg,
    bundles_arg,
    draft_arg,
    draft_not_found,
    drafts_arg,
)
from aicmo.values import key_params

__all__ = ["SqlProductionRepository"]

_META = {"metadata": "meta"}  # the DTOs' ``metadata`` is the column ``meta``
_DRAFT = columns(ContentDraftDTO)

_STAMP = ("updated_at",)
SAVE_DRAFT = upsert("production_drafts", _DRAFT, key="draft_id", stamps=_STAMP, renamed=_META)
SAVE_DRAFTS = InsertRows(
    "production_drafts",
    _DRAFT,
    renamed=_META,
    stamps=_STAMP,
    rest=on_conflict(_DRAFT, key="draft_id", renamed=_META, stamps=_STAMP),
)
FIND_DRAFTS = InKeys(
    "SELECT draft_id FROM production_drafts WHERE draft_id IN ({keys})", "draft_id"
)

GET_DRAFT = select(_DRAFT, "FROM production_drafts WHERE draft_id = :draft_id", renamed=_META)

LIST_DRAFTS = select(
    _DRAFT,
    "FROM production_drafts WHERE strategy_id = :strategy_id ORDER BY created_at, draft_id",
    renamed=_META,
)

# Its bundles and their assets go with it: ON DELETE CASCADE.
DELETE_DRAFT = Sql("DELETE FROM production_drafts WHERE draft_id = :draft_id")

_BUNDLE = columns(DraftBundleDTO, without=("assets",))

# Writes nothing (0 rows) when the draft does not exist.
SAVE_BUNDLE = upsert(
    "production_bundles",
    _BUNDLE,
    key="bundle_id",
    stamps=("created_at", "updated_at"),
    where="EXISTS (SELECT 1 FROM production_drafts WHERE draft_id = :draft_id)",
)

# An asset id held by another bundle is skipped by the insert; the rows inserted tell.
ASSETS = Children(
    "production_bundles",
    "production_bundle_assets",
    AssetDTO,
    key="bundle_id",
    field="assets",
    present="asset_id",
    renamed=_META,
    rest="ON CONFLICT (asset_id) DO NOTHING",
)

# The bulk path's: bundles of drafts known to exist, many a statement; their assets' holders.
_BUNDLE_STAMPS = ("created_at", "updated_at")
SAVE_BUNDLES = InsertRows(
    "production_bundles",
    _BUNDLE,
    stamps=_BUNDLE_STAMPS,
    rest=on_conflict(_BUNDLE, key="bundle_id", stamps=_BUNDLE_STAMPS),
)
FIND_ASSET_HOLDERS = InKeys(
    "SELECT asset_id, bundle_id FROM production_bundle_assets WHERE asset_id IN ({keys})",
    "asset_id",
)

GET_ASSET_HOLDER = Sql("""
SELECT bundle_id FROM production_bundle_assets WHERE asset_id = :asset_id
""")

GET_BUNDLE = ASSETS.joined(_BUNDLE, where="p.bundle_id = :bundle_id")
LIST_BUNDLES = ASSETS.joined(
    _BUNDLE, where="p.draft_id = :draft_id", order="p.assembled_at, p.bundle_id"
)


class SqlProductionRepository:
    """``ProductionRepository`` over a :class:`~aicmo.db.base.SqlDatabase`.

    A bundle and its assets are read with one joined query (assets by ``position``), so
    a read never sees a bundle half-replaced.
    """

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._drafts = RowMapper(ContentDraftDTO, db.dialect, json=("metadata",))
        self._bundles = RowMapper(DraftBundleDTO, db.dialect, json=("assets.metadata",))

    # -- drafts --------------------------------------------------------------------------
    def save_draft(self, draft: ContentDraftDTO) -> None:
        self._db.write(SAVE_DRAFT, self._drafts.to_row(draft_arg(draft), now=self._db.now()))

    def save_drafts(self, drafts: Iterable[ContentDraftDTO]) -> None:
        batch = drafts_arg(drafts)
        if batch:
            rows = self._drafts.to_rows(batch, now=self._db.now())
            with self._db.transaction():
                SAVE_DRAFTS.execute(self._db, rows)

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        return self._db.load_one(GET_DRAFT, key_params(draft_id=draft_id), self._drafts)

    def list_drafts(self, strategy_id: str) -> list[ContentDraftDTO]:
        return self._db.load_all(LIST_DRAFTS, key_params(strategy_id=strategy_id), self._drafts)

    def delete_draft(self, draft_id: str) -> bool:
        return self._db.write(DELETE_DRAFT, key_params(draft_id=draft_id)) > 0

    # -- bundles -------------------------------------------------------------------------
    def save_bundle(self, bundle: DraftBundleDTO) -> None:
        bundle = bundle_arg(bundle)
        row = self._bundles.to_row(bundle, now=self._db.now())
        assets = ASSETS.split(row)
        with self._db.transaction():
            if self._db.execute(SAVE_BUNDLE, row) == 0:
                raise draft_not_found(bundle)
            if ASSETS.replace(self._db, bundle.bundle_id, assets) == len(assets):
                return  # every asset inserted: none is held by another bundle
            taken = []
            for asset in bundle.assets:
                held = self._db.fetch_one(GET_ASSET_HOLDER, {"asset_id": asset.asset_id})
                if held is not None and held["bundle_id"] != bundle.bundle_id:
                    taken.append((asset.asset_id, str(held["bundle_id"])))
            raise asset_conflict(bundle.bundle_id, taken)

    def save_bundles(self, bundles: Iterable[DraftBundleDTO]) -> None:
        batch = bundles_arg(bundles)
        if not batch:
            return
        with self._db.transaction():
            if self._each_clean(batch):
                rows = self._bundles.to_rows(batch, now=self._db.now())
                assets = [a for row in rows for a in ASSETS.split(row)]
                SAVE_BUNDLES.execute(self._db, rows)
                if ASSETS.replace_many(self._db, rows, assets) == len(assets):
                    return
            # Not clean (or an asset taken meanwhile): one after another, exactly as
            # save_bundle, whose error undoes the batch.
            for bundle in batch:
                self.save_bundle(bundle)

    def _each_clean(self, batch: tuple[DraftBundleDTO, ...]) -> bool:
        """Whether the bundles of ``batch`` and their assets are distinct, every draft
        exists and every asset is free or its own bundle's (so all can be written at once)."""
        owner = {a.asset_id: b.bundle_id for b in batch for a in b.assets}
        if len({b.bundle_id for b in batch}) < len(batch):
            return False
        if len(owner) < sum(len(b.assets) for b in batch):
            return False
        drafts = list(dict.fromkeys(b.draft_id for b in batch))
        found: set[str] = set()
        for stmt, params in FIND_DRAFTS.chunks(drafts):
            found.update(row["draft_id"] for row in self._db.fetch_all(stmt, params))
        if len(found) < len(drafts):
            return False
        for stmt, params in FIND_ASSET_HOLDERS.chunks(list(owner)):
            for row in self._db.fetch_all(stmt, params):
                if owner[row["asset_id"]] != row["bundle_id"]:
                    return False
        return True

    def get_bundle(self, bundle_id: str) -> DraftBundleDTO | None:
        found = self._db.fetch_rows(GET_BUNDLE, key_params(bundle_id=bundle_id))
        return ASSETS.load_one(self._bundles, found)

    def list_bundles(self, draft_id: str) -> list[DraftBundleDTO]:
        found = self._db.fetch_rows(LIST_BUNDLES, key_params(draft_id=draft_id))
        return ASSETS.load(self._bundles, found)
