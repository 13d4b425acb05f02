-- Production: content drafts, the bundles assembled from a draft, and each bundle's assets.
-- A bundle belongs to a draft and an asset to a bundle (ON DELETE CASCADE); asset ids are
-- unique across bundles; `position` keeps each bundle's assets in the order saved.
-- strategy_id is a plain id: no foreign key crosses modules.
-- Datetimes are ISO-8601 UTC text with microseconds (fixed width: text order is time
-- order). JSON values (`meta`, the DTOs' `metadata`) are JSON text.

CREATE TABLE production_drafts (
    draft_id TEXT NOT NULL PRIMARY KEY,
    strategy_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX ix_production_drafts_strategy ON production_drafts (strategy_id, created_at, draft_id);

CREATE TABLE production_bundles (
    bundle_id TEXT NOT NULL PRIMARY KEY,
    draft_id TEXT NOT NULL
        REFERENCES production_drafts (draft_id) ON DELETE CASCADE,
    assembled_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX ix_production_bundles_draft ON production_bundles (draft_id, assembled_at, bundle_id);

CREATE TABLE production_bundle_assets (
    asset_id TEXT NOT NULL PRIMARY KEY,
    bundle_id TEXT NOT NULL
        REFERENCES production_bundles (bundle_id) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    asset_type TEXT NOT NULL,
    url TEXT NOT NULL,
    meta TEXT NOT NULL,
    CONSTRAINT uq_production_bundle_assets_position UNIQUE (bundle_id, position)
);
