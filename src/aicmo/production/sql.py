"""SQL ``ProductionRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from aicmo.db.base import SqlDatabase
from aicmo.db.children import Children
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import Sql, select, upsert
from aicmo.production.dtos import AssetDTO, ContentDraftDTO, DraftBundleDTO
from aicmo.production.rules import (
    asset_conflict,
    bundle_arg,
    draft_arg,
    draft_not_found,
    key_arg,
)

__all__ = ["SqlProductionRepository"]

_META = {"metadata": "meta"}  # the DTOs' ``metadata`` is the column ``meta``
_DRAFT = columns(ContentDraftDTO)

SAVE_DRAFT = upsert(
    "production_drafts", _DRAFT, key="draft_id", stamps=("updated_at",), renamed=_META
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

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        params = {"draft_id": key_arg(draft_id, "draft_id")}
        return self._db.load_one(GET_DRAFT, params, self._drafts)

    def list_drafts(self, strategy_id: str) -> list[ContentDraftDTO]:
        params = {"strategy_id": key_arg(strategy_id, "strategy_id")}
        return self._db.load_all(LIST_DRAFTS, params, self._drafts)

    def delete_draft(self, draft_id: str) -> bool:
        return self._db.write(DELETE_DRAFT, {"draft_id": key_arg(draft_id, "draft_id")}) > 0

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

    def get_bundle(self, bundle_id: str) -> DraftBundleDTO | None:
        found = self._db.fetch_rows(GET_BUNDLE, {"bundle_id": key_arg(bundle_id, "bundle_id")})
        return ASSETS.load_one(self._bundles, found)

    def list_bundles(self, draft_id: str) -> list[DraftBundleDTO]:
        found = self._db.fetch_rows(LIST_BUNDLES, {"draft_id": key_arg(draft_id, "draft_id")})
        return ASSETS.load(self._bundles, found)
