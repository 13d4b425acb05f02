-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables, columns and their indexes,
-- in one transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)
-- 0009's rollback keeps its note of queued runs here until 0009 is applied again.

SET LOCAL lock_timeout = '5s';

DROP TABLE IF EXISTS workflow_runs_queued;

DROP INDEX ix_workflow_runs_created;

DROP INDEX ix_workflow_runs_status;

DROP TABLE workflow_runs;
