-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables, columns and their indexes,
-- in one transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)

SET LOCAL lock_timeout = '5s';

DROP INDEX ux_strategy_document_brief_version;
DROP TABLE strategy_document;
