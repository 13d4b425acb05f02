-- Workflow runs: orchestration's own table. Ids of other modules' records are plain text
-- (no foreign key crosses modules). JSON values are JSON text.

SET LOCAL lock_timeout = '5s';

CREATE TABLE workflow_runs (
    workflow_run_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    status TEXT COLLATE "C" NOT NULL,
    intake TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    idempotency_key TEXT COLLATE "C" UNIQUE,
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
    completed_at TIMESTAMPTZ
);

CREATE INDEX ix_workflow_runs_status ON workflow_runs (status, created_at, workflow_run_id);

CREATE INDEX ix_workflow_runs_created ON workflow_runs (created_at, workflow_run_id);
