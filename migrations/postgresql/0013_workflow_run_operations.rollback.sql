-- squawk-ignore-file ban-drop-column, require-concurrent-index-deletion, constraint-missing-not-valid, ban-drop-constraint
-- Code before 0013 knows no CANCELLED status, priorities, delays, cancel requests or
-- attempts. A CANCELLED run (its steps were compensated) becomes COMPENSATED with the
-- reason in its error; queued runs stay queued (their priority and delay are dropped:
-- they are claimed oldest first, at once). A cancel requested of a run still being
-- driven is dropped. Older attempts of a retried run stay, as separate runs.

SET LOCAL lock_timeout = '5s';

UPDATE workflow_runs SET
    status = 'COMPENSATED',
    error = COALESCE(error, 'cancelled: ' || COALESCE(cancel_reason, 'no reason given'))
WHERE status = 'CANCELLED';

ALTER TABLE workflow_runs DROP CONSTRAINT ck_workflow_runs_status;

ALTER TABLE workflow_runs ADD CONSTRAINT ck_workflow_runs_status
    CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'COMPENSATED', 'FAILED')) NOT VALID;

ALTER TABLE workflow_runs VALIDATE CONSTRAINT ck_workflow_runs_status;

DROP INDEX ux_workflow_runs_retry_of;

DROP INDEX ix_workflow_runs_claim;

ALTER TABLE workflow_runs DROP COLUMN retry_of;

ALTER TABLE workflow_runs DROP COLUMN attempt;

ALTER TABLE workflow_runs DROP COLUMN cancelled_by;

ALTER TABLE workflow_runs DROP COLUMN cancel_reason;

ALTER TABLE workflow_runs DROP COLUMN cancel_requested_at;

ALTER TABLE workflow_runs DROP COLUMN not_before;

ALTER TABLE workflow_runs DROP COLUMN priority;
