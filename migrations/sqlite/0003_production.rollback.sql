DROP TABLE production_bundle_assets;
DROP INDEX ix_production_bundles_draft;
DROP TABLE production_bundles;
DROP INDEX ix_production_drafts_strategy;
DROP TABLE production_drafts;
