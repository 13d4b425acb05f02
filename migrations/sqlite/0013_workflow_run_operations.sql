-- Operating runs (issue 13): a priority (-1000..1000, default 0) and a not_before time
-- that order the queue; a cancel request (when, why, who asked) that the run's driver
-- acts on at its next step boundary; a CANCELLED status; and the attempt number of a
-- retried run with the attempt it retries. Existing runs get priority 0, no delay, no
-- cancel, attempt 1. SQLite changes 0011's status CHECK only by rebuilding the table (as
-- 0011 did): the new columns are added in the same rebuild.
-- Queued runs are claimed through ix_workflow_runs_claim: highest priority first, then
-- the oldest; finished runs are not in this partial index, however many there are.

CREATE TABLE workflow_runs_new (
    workflow_run_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL
        CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'COMPENSATED', 'FAILED', 'CANCELLED')),
    intake TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    client_id TEXT,
    step TEXT
        CHECK (step IN ('onboard', 'strategy', 'production', 'qc', 'delivery')),
    brief_id TEXT,
    strategy_id TEXT,
    draft_ids TEXT NOT NULL,
    qc_result_ids TEXT NOT NULL,
    package_ids TEXT NOT NULL,
    artifact_dirs TEXT NOT NULL,
    failed_step TEXT
        CHECK (failed_step IN ('onboard', 'strategy', 'production', 'qc', 'delivery')),
    error TEXT,
    qc_issues TEXT NOT NULL,
    compensated_steps TEXT NOT NULL,
    pending_compensations TEXT NOT NULL,
    completed_at TEXT,
    claimed_by TEXT,
    lease_expires_at TEXT,
    lease_token INTEGER NOT NULL DEFAULT 0,
    intake_fingerprint TEXT,
    artifact_root TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    not_before TEXT,
    cancel_requested_at TEXT,
    cancel_reason TEXT,
    cancelled_by TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    retry_of TEXT
);

INSERT INTO workflow_runs_new (
    workflow_run_id, status, intake, created_at, updated_at, idempotency_key, client_id,
    step, brief_id, strategy_id, draft_ids, qc_result_ids, package_ids, artifact_dirs,
    failed_step, error, qc_issues, compensated_steps, pending_compensations,
    completed_at, claimed_by, lease_expires_at, lease_token, intake_fingerprint,
    artifact_root
)
SELECT
    workflow_run_id, status, intake, created_at, updated_at, idempotency_key, client_id,
    step, brief_id, strategy_id, draft_ids, qc_result_ids, package_ids, artifact_dirs,
    failed_step, error, qc_issues, compensated_steps, pending_compensations,
    completed_at, claimed_by, lease_expires_at, lease_token, intake_fingerprint,
    artifact_root
FROM workflow_runs;

DROP TABLE workflow_runs;

ALTER TABLE workflow_runs_new RENAME TO workflow_runs;

CREATE INDEX ix_workflow_runs_status ON workflow_runs (status, created_at, workflow_run_id);

CREATE INDEX ix_workflow_runs_created ON workflow_runs (created_at, workflow_run_id);

CREATE INDEX ix_workflow_runs_lease ON workflow_runs (status, lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;

CREATE INDEX ix_workflow_runs_claim ON workflow_runs (priority DESC, created_at, workflow_run_id)
    WHERE status = 'QUEUED';

-- One retry per attempt: two concurrent retries of an attempt make one new attempt.
CREATE UNIQUE INDEX ux_workflow_runs_retry_of ON workflow_runs (retry_of)
    WHERE retry_of IS NOT NULL;
