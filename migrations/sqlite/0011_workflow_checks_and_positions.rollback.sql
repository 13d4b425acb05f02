-- Back to workflow_runs without the CHECKs of 0011 (the same rebuild: code before 0011
-- writes only known statuses and steps, so nothing is lost).

CREATE TABLE workflow_runs_new (
    workflow_run_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,
    intake TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    client_id TEXT,
    step TEXT,
    brief_id TEXT,
    strategy_id TEXT,
    draft_ids TEXT NOT NULL,
    qc_result_ids TEXT NOT NULL,
    package_ids TEXT NOT NULL,
    artifact_dirs TEXT NOT NULL,
    failed_step TEXT,
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
