-- Code before 0009 knows no QUEUED status: a queued run becomes a RUNNING run that
-- app.recover() drives from its last committed step.
UPDATE workflow_runs SET status = 'RUNNING' WHERE status = 'QUEUED';

DROP INDEX ix_workflow_runs_lease;

ALTER TABLE workflow_runs DROP COLUMN lease_token;

ALTER TABLE workflow_runs DROP COLUMN lease_expires_at;

ALTER TABLE workflow_runs DROP COLUMN claimed_by;
