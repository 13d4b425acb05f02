-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables, columns and their indexes,
-- in one transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)

SET LOCAL lock_timeout = '5s';

DROP TABLE onboarding_intake;
DROP INDEX ix_onboarding_brief_client;
DROP TABLE onboarding_brief;
