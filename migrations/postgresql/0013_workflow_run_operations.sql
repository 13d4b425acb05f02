-- Operating runs (issue 13): a priority (-1000..1000, default 0) and a not_before time
-- that order the queue; a cancel request (when, why, who asked) that the run's driver
-- acts on at its next step boundary; a CANCELLED status; and the attempt number of a
-- retried run with the attempt it retries. Existing runs get priority 0, no delay, no
-- cancel, attempt 1.
-- Queued runs are claimed through ix_workflow_runs_claim: highest priority first, then
-- the oldest; finished runs are not in this partial index, however many there are.

SET LOCAL lock_timeout = '5s';

-- 0011's status CHECK gains CANCELLED (added NOT VALID, then validated: every stored
-- status is one the old CHECK allowed, so the new one holds).
-- squawk-ignore ban-drop-constraint
ALTER TABLE workflow_runs DROP CONSTRAINT ck_workflow_runs_status;

ALTER TABLE workflow_runs ADD CONSTRAINT ck_workflow_runs_status CHECK (
    status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'COMPENSATED', 'FAILED', 'CANCELLED')
) NOT VALID;

-- Validated here, in the migration's transaction, after the ADD COLUMNs below took the
-- table's ACCESS EXCLUSIVE lock anyway (bounded by lock_timeout): the queue table is
-- small next to the module tables.
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE workflow_runs VALIDATE CONSTRAINT ck_workflow_runs_status;

ALTER TABLE workflow_runs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;

ALTER TABLE workflow_runs ADD COLUMN not_before TIMESTAMPTZ;

ALTER TABLE workflow_runs ADD COLUMN cancel_requested_at TIMESTAMPTZ;

ALTER TABLE workflow_runs ADD COLUMN cancel_reason TEXT;

ALTER TABLE workflow_runs ADD COLUMN cancelled_by TEXT;

ALTER TABLE workflow_runs ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;

ALTER TABLE workflow_runs ADD COLUMN retry_of TEXT COLLATE "C";

-- Built under the ACCESS EXCLUSIVE lock the ADD COLUMNs took (a migration runs in one
-- transaction, where CONCURRENTLY is not allowed).
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX ix_workflow_runs_claim ON workflow_runs (priority DESC, created_at, workflow_run_id)
    WHERE status = 'QUEUED';

-- One retry per attempt: two concurrent retries of an attempt make one new attempt.
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX ux_workflow_runs_retry_of ON workflow_runs (retry_of)
    WHERE retry_of IS NOT NULL;
