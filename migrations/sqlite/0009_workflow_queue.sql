-- Workflow runs as a durable queue: a QUEUED status (no schema change: status is text),
-- the worker holding a run, when its lease ends, and a fencing token bumped by every
-- claim. Existing runs get no holder and token 0: a RUNNING run without a lease is one
-- driven in-process by app.run_workflow and is left to app.recover(), as before.
-- Queued runs are found through ix_workflow_runs_status (status, created_at, id) of 0007;
-- runs whose worker's lease lapsed through the partial index below.

ALTER TABLE workflow_runs ADD COLUMN claimed_by TEXT;

ALTER TABLE workflow_runs ADD COLUMN lease_expires_at TEXT;

ALTER TABLE workflow_runs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;

CREATE INDEX ix_workflow_runs_lease ON workflow_runs (status, lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
