-- The database keeps what the code checks: a run's status is one aicmo knows, and its
-- step and failed_step are NULL or one of the saga's steps (QC severity has had a CHECK
-- since 0004; these had none). Every child table's position is BIGINT, as delivery's has
-- been since 0005 (0003 and 0004 made theirs INTEGER).
--
-- Safe on a live database:
-- * lock_timeout: a statement that waits more than 5 s for its lock fails and the whole
--   migration rolls back, instead of queueing every later query on the table behind it
--   (run `aicmo db upgrade` again once the long transaction is done).
-- * The CHECKs are added NOT VALID: adding them scans no row while workflow_runs is
--   locked, and every row written from now on is checked. 0012, in a transaction of its
--   own, validates the existing rows under a lock that lets reads and writes go on.
SET LOCAL lock_timeout = '5s';

ALTER TABLE workflow_runs ADD CONSTRAINT ck_workflow_runs_status
    CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'COMPENSATED', 'FAILED')) NOT VALID;

ALTER TABLE workflow_runs ADD CONSTRAINT ck_workflow_runs_step
    CHECK (step IN ('onboard', 'strategy', 'production', 'qc', 'delivery')) NOT VALID;

ALTER TABLE workflow_runs ADD CONSTRAINT ck_workflow_runs_failed_step
    CHECK (failed_step IN ('onboard', 'strategy', 'production', 'qc', 'delivery')) NOT VALID;

-- INTEGER to BIGINT rewrites each table and its indexes under an ACCESS EXCLUSIVE lock,
-- for as long as the copy takes: there is no way to widen a column without it. These are
-- child rows of bundles and QC results (a few per run), not the queue table, and
-- lock_timeout bounds the wait for the lock.
-- squawk-ignore changing-column-type
ALTER TABLE production_bundle_assets ALTER COLUMN position TYPE BIGINT;

-- squawk-ignore changing-column-type
ALTER TABLE qc_issues ALTER COLUMN position TYPE BIGINT;
