-- squawk-ignore-file ban-drop-constraint
-- (a rollback drops the constraints its migration added.)
-- Code before 0011 writes only positions that fit INTEGER and only known statuses and
-- steps: undoing 0011 loses nothing. The positions go back to the type they had before.
SET LOCAL lock_timeout = '5s';

-- squawk-ignore changing-column-type, prefer-bigint-over-int
ALTER TABLE qc_issues ALTER COLUMN position TYPE INTEGER;

-- squawk-ignore changing-column-type, prefer-bigint-over-int
ALTER TABLE production_bundle_assets ALTER COLUMN position TYPE INTEGER;

ALTER TABLE workflow_runs DROP CONSTRAINT ck_workflow_runs_failed_step;

ALTER TABLE workflow_runs DROP CONSTRAINT ck_workflow_runs_step;

ALTER TABLE workflow_runs DROP CONSTRAINT ck_workflow_runs_status;
