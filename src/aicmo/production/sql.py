"""SQL ``ProductionRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

from aicmo.db.base import Row, SqlDatabase
from aicmo.db.mapping import RowMapper
from aicmo.db.statement import Sql
from aicmo.production.dtos import AssetDTO, ContentDraftDTO, DraftBundleDTO
from aicmo.production.rules import (
    asset_conflict,
    bundle_arg,
    draft_arg,
    draft_not_found,
    key_arg,
)

__all__ = ["STATEMENTS", "SqlProductionRepository"]

SAVE_DRAFT = Sql("""
INSERT INTO production_drafts (
    draft_id, strategy_id, content_type, body, meta, created_at, updated_at
) VALUES (
    :draft_id, :strategy_id, :content_type, :body, :metadata, :created_at, :now
)
ON CONFLICT (draft_id) DO UPDATE SET
    strategy_id = excluded.strategy_id,
    content_type = excluded.content_type,
    body = excluded.body,
    meta = excluded.meta,
    created_at = excluded.created_at,
    updated_at = excluded.updated_at
""")

GET_DRAFT = Sql("""
SELECT draft_id, strategy_id, content_type, body, meta AS metadata, created_at
FROM production_drafts
WHERE draft_id = :draft_id
""")

LIST_DRAFTS = Sql("""
SELECT draft_id, strategy_id, content_type, body, meta AS metadata, created_at
FROM production_drafts
WHERE strategy_id = :strategy_id
ORDER BY created_at, draft_id
""")

# Its bundles and their assets go with it: ON DELETE CASCADE.
DELETE_DRAFT = Sql("DELETE FROM production_drafts WHERE draft_id = :draft_id")

# Writes nothing (0 rows) when the draft does not exist.
SAVE_BUNDLE = Sql("""
INSERT INTO production_bundles (bundle_id, draft_id, assembled_at, created_at, updated_at)
SELECT :bundle_id, :draft_id, :assembled_at, :now, :now
WHERE EXISTS (SELECT 1 FROM production_drafts WHERE draft_id = :draft_id)
ON CONFLICT (bundle_id) DO UPDATE SET
    draft_id = excluded.draft_id,
    assembled_at = excluded.assembled_at,
    updated_at = excluded.updated_at
""")

DELETE_BUNDLE_ASSETS = Sql("""
DELETE FROM production_bundle_assets WHERE bundle_id = :bundle_id
""")

# An asset id held by another bundle is skipped here; the rows inserted tell.
INSERT_ASSET = Sql("""
INSERT INTO production_bundle_assets (asset_id, bundle_id, position, asset_type, url, meta)
VALUES (:asset_id, :bundle_id, :position, :asset_type, :url, :metadata)
ON CONFLICT (asset_id) DO NOTHING
""")

GET_ASSET_HOLDER = Sql("""
SELECT bundle_id FROM production_bundle_assets WHERE asset_id = :asset_id
""")

GET_BUNDLE = Sql("""
SELECT b.bundle_id, b.draft_id, b.assembled_at,
       a.asset_id, a.asset_type, a.url, a.meta AS metadata
FROM production_bundles b
LEFT JOIN production_bundle_assets a ON a.bundle_id = b.bundle_id
WHERE b.bundle_id = :bundle_id
ORDER BY a.position
""")

LIST_BUNDLES = Sql("""
SELECT b.bundle_id, b.draft_id, b.assembled_at,
       a.asset_id, a.asset_type, a.url, a.meta AS metadata
FROM production_bundles b
LEFT JOIN production_bundle_assets a ON a.bundle_id = b.bundle_id
WHERE b.draft_id = :draft_id
ORDER BY b.assembled_at, b.bundle_id, a.position
""")

STATEMENTS = (
    SAVE_DRAFT,
    GET_DRAFT,
    LIST_DRAFTS,
    DELETE_DRAFT,
    SAVE_BUNDLE,
    DELETE_BUNDLE_ASSETS,
    INSERT_ASSET,
    GET_ASSET_HOLDER,
    GET_BUNDLE,
    LIST_BUNDLES,
)
"""Every statement this module issues (the table-ownership test reads them)."""


class SqlProductionRepository:
    """``ProductionRepository`` over a :class:`~aicmo.db.base.SqlDatabase`.

    A bundle and its assets are read with one joined query (assets by ``position``), so
    a read never sees a bundle half-replaced.
    """

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._drafts = RowMapper(ContentDraftDTO, db.dialect, json=("metadata",))
        self._bundles = RowMapper(DraftBundleDTO, db.dialect, json=("assets.metadata",))
        self._assets = RowMapper(AssetDTO, db.dialect, json=("metadata",))

    # -- drafts --------------------------------------------------------------------------
    def save_draft(self, draft: ContentDraftDTO) -> None:
        row = self._drafts.to_row(draft_arg(draft))
        row["now"] = self._db.now()
        with self._db.transaction():
            self._db.execute(SAVE_DRAFT, row)

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        row = self._db.fetch_one(GET_DRAFT, {"draft_id": key_arg(draft_id, "draft_id")})
        return None if row is None else self._drafts.from_row(row)

    def list_drafts(self, strategy_id: str) -> list[ContentDraftDTO]:
        rows = self._db.fetch_all(LIST_DRAFTS, {"strategy_id": key_arg(strategy_id, "strategy_id")})
        return [self._drafts.from_row(row) for row in rows]

    def delete_draft(self, draft_id: str) -> bool:
        with self._db.transaction():
            return self._db.execute(DELETE_DRAFT, {"draft_id": key_arg(draft_id, "draft_id")}) > 0

    # -- bundles -------------------------------------------------------------------------
    def save_bundle(self, bundle: DraftBundleDTO) -> None:
        bundle = bundle_arg(bundle)
        row = self._bundles.to_row(bundle)
        del row["assets"]
        row["now"] = self._db.now()
        key = {"bundle_id": bundle.bundle_id}
        assets = [
            {**self._assets.to_row(asset), "bundle_id": bundle.bundle_id, "position": position}
            for position, asset in enumerate(bundle.assets)
        ]
        with self._db.transaction():
            if self._db.execute(SAVE_BUNDLE, row) == 0:
                raise draft_not_found(bundle)
            self._db.execute(DELETE_BUNDLE_ASSETS, key)
            if not assets:
                return
            if self._db.execute_many(INSERT_ASSET, assets) == len(assets):
                return  # every asset inserted: none is held by another bundle
            taken = []
            for asset in bundle.assets:
                held = self._db.fetch_one(GET_ASSET_HOLDER, {"asset_id": asset.asset_id})
                if held is not None and held["bundle_id"] != bundle.bundle_id:
                    taken.append((asset.asset_id, str(held["bundle_id"])))
            raise asset_conflict(bundle.bundle_id, taken)

    def get_bundle(self, bundle_id: str) -> DraftBundleDTO | None:
        rows = self._db.fetch_all(GET_BUNDLE, {"bundle_id": key_arg(bundle_id, "bundle_id")})
        bundles = self._group(rows)
        return bundles[0] if bundles else None

    def list_bundles(self, draft_id: str) -> list[DraftBundleDTO]:
        rows = self._db.fetch_all(LIST_BUNDLES, {"draft_id": key_arg(draft_id, "draft_id")})
        return self._group(rows)

    def _group(self, rows: Iterable[Row]) -> list[DraftBundleDTO]:
        """Bundles from joined rows (one per asset, or one with NULL asset columns),
        which come grouped by bundle with each bundle's assets in order. Each bundle's
        first row (copied) stands for the bundle and each row for its asset (the mapper
        reads only the columns it needs)."""
        heads: list[Row] = []
        for row in rows:
            if not heads or heads[-1]["bundle_id"] != row["bundle_id"]:
                heads.append({**row, "assets": []})  # a copy: no row holds itself
            if row["asset_id"] is not None:
                heads[-1]["assets"].append(row)
        return [self._bundles.from_row(head) for head in heads]
