-- Validates the CHECKs 0011 added NOT VALID, in a transaction of its own: VALIDATE
-- CONSTRAINT scans workflow_runs under a SHARE UPDATE EXCLUSIVE lock, which lets reads
-- and writes go on meanwhile (validated in 0011's transaction, the scan would run under
-- the ACCESS EXCLUSIVE lock that adding them took).
SET LOCAL lock_timeout = '5s';

ALTER TABLE workflow_runs VALIDATE CONSTRAINT ck_workflow_runs_status;

ALTER TABLE workflow_runs VALIDATE CONSTRAINT ck_workflow_runs_step;

ALTER TABLE workflow_runs VALIDATE CONSTRAINT ck_workflow_runs_failed_step;
