-- squawk-ignore-file ban-drop-table, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its table and its indexes, in one
-- transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)

SET LOCAL lock_timeout = '5s';

DROP INDEX ix_audit_entries_entity;

DROP INDEX ix_audit_entries_run;

DROP TABLE audit_entries;
