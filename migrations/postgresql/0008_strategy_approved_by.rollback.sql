-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables, columns and their indexes,
-- in one transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)

SET LOCAL lock_timeout = '5s';

ALTER TABLE strategy_document DROP COLUMN approved_by;
