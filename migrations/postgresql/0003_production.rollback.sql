-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables, columns and their indexes,
-- in one transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)

SET LOCAL lock_timeout = '5s';

DROP TABLE production_bundle_assets;
DROP INDEX ix_production_bundles_draft;
DROP TABLE production_bundles;
DROP INDEX ix_production_drafts_strategy;
DROP TABLE production_drafts;
