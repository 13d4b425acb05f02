-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables, columns and their indexes,
-- in one transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)
-- Code before 0009 knows no QUEUED status: a queued run becomes a RUNNING run that
-- app.recover() drives from its last committed step. Which runs were queued is kept in
-- workflow_runs_queued, so that upgrading again puts back in the queue every one of them
-- that nothing drove in between (its updated_at unchanged).

SET LOCAL lock_timeout = '5s';

DROP TABLE IF EXISTS workflow_runs_queued;

CREATE TABLE workflow_runs_queued (
    workflow_run_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    updated_at TIMESTAMPTZ NOT NULL
);

INSERT INTO workflow_runs_queued (workflow_run_id, updated_at)
SELECT workflow_run_id, updated_at FROM workflow_runs WHERE status = 'QUEUED';

UPDATE workflow_runs SET status = 'RUNNING' WHERE status = 'QUEUED';

DROP INDEX ix_workflow_runs_lease;

ALTER TABLE workflow_runs DROP COLUMN lease_token;

ALTER TABLE workflow_runs DROP COLUMN lease_expires_at;

ALTER TABLE workflow_runs DROP COLUMN claimed_by;
