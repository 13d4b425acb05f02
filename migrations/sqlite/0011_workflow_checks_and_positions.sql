-- The database keeps what the code checks: a run's status is one aicmo knows, and its
-- step and failed_step are NULL or one of the saga's steps (QC severity has had a CHECK
-- since 0004; these had none). SQLite adds a CHECK only by rebuilding the table: a new
-- table with the CHECKs, every row copied into it (and so checked), the old one dropped,
-- the new one renamed, its indexes made again. Same columns in the same order, same
-- indexes. Positions need no change here: SQLite's INTEGER is 64-bit (PostgreSQL's 0011
-- makes its two INTEGER positions BIGINT).

CREATE TABLE workflow_runs_new (
    workflow_run_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL
        CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'COMPENSATED', 'FAILED')),
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
    artifact_root TEXT
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
