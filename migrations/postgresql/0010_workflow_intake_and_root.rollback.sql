-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables, columns and their indexes,
-- in one transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)
-- Code before 0010 neither checks fingerprints nor records roots; both can be derived again
-- after an upgrade (from intake and artifact_dirs), so nothing is lost.

SET LOCAL lock_timeout = '5s';

ALTER TABLE workflow_runs DROP COLUMN artifact_root;

ALTER TABLE workflow_runs DROP COLUMN intake_fingerprint;
