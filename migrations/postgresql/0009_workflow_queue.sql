-- Workflow runs as a durable queue: a QUEUED status (no schema change: status is text),
-- the worker holding a run, when its lease ends, and a fencing token bumped by every
-- claim. Existing runs get no holder and token 0: a RUNNING run without a lease is one
-- driven in-process by app.run_workflow and is left to app.recover(), as before.
-- Queued runs are found through ix_workflow_runs_status (status, created_at, id) of 0007;
-- runs whose worker's lease lapsed through the partial index below.

SET LOCAL lock_timeout = '5s';

ALTER TABLE workflow_runs ADD COLUMN claimed_by TEXT;

ALTER TABLE workflow_runs ADD COLUMN lease_expires_at TIMESTAMPTZ;

ALTER TABLE workflow_runs ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;

-- Not CONCURRENTLY: that cannot run inside a transaction, and this one already holds
-- workflow_runs' ACCESS EXCLUSIVE lock (the ADD COLUMNs above, bounded by lock_timeout)
-- until it commits. The index covers no existing row (lease_expires_at was just added, all
-- NULL): its build is one scan under a lock held anyway.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX ix_workflow_runs_lease ON workflow_runs (status, lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;

-- A run queued when this migration was last rolled back, and driven by nothing since (its
-- updated_at unchanged), goes back in the queue; see the rollback.
CREATE TABLE IF NOT EXISTS workflow_runs_queued (
    workflow_run_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    updated_at TIMESTAMPTZ NOT NULL
);

UPDATE workflow_runs SET status = 'QUEUED'
WHERE status = 'RUNNING' AND EXISTS (
    SELECT 1 FROM workflow_runs_queued AS q
    WHERE q.workflow_run_id = workflow_runs.workflow_run_id
        AND q.updated_at = workflow_runs.updated_at
);

-- Only this migration's own bookkeeping table: no client reads it.
-- squawk-ignore ban-drop-table
DROP TABLE workflow_runs_queued;
