-- Production: content drafts, the bundles assembled from a draft, and each bundle's assets.
-- A bundle belongs to a draft and an asset to a bundle (ON DELETE CASCADE); asset ids are
-- unique across bundles; `position` keeps each bundle's assets in the order saved.
-- strategy_id is a plain id: no foreign key crosses modules.
-- Keys and ordered text use COLLATE "C" (code-point order, whatever the server's locale).
-- JSON values (`meta`, the DTOs' `metadata`) are JSON text: jsonb would reorder keys and
-- change some floats.

SET LOCAL lock_timeout = '5s';

CREATE TABLE production_drafts (
    draft_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    strategy_id TEXT COLLATE "C" NOT NULL,
    content_type TEXT NOT NULL,
    body TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX ix_production_drafts_strategy ON production_drafts (strategy_id, created_at, draft_id);

CREATE TABLE production_bundles (
    bundle_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    draft_id TEXT COLLATE "C" NOT NULL
        REFERENCES production_drafts (draft_id) ON DELETE CASCADE,
    assembled_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX ix_production_bundles_draft ON production_bundles (draft_id, assembled_at, bundle_id);

CREATE TABLE production_bundle_assets (
    asset_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    bundle_id TEXT COLLATE "C" NOT NULL
        REFERENCES production_bundles (bundle_id) ON DELETE CASCADE,
    -- 0011 makes it BIGINT.
    -- squawk-ignore prefer-bigint-over-int
    position INTEGER NOT NULL CHECK (position >= 0),
    asset_type TEXT NOT NULL,
    url TEXT NOT NULL,
    meta TEXT NOT NULL,
    CONSTRAINT uq_production_bundle_assets_position UNIQUE (bundle_id, position)
);
