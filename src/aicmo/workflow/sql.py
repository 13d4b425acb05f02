"""SQL ``WorkflowRunRepository``: the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from aicmo.db.base import SqlDatabase
from aicmo.db.mapping import RowMapper
from aicmo.db.statement import Sql
from aicmo.workflow.dtos import WorkflowRunDTO
from aicmo.workflow.rules import key_arg, key_changed, run_arg, run_not_found, status_arg

__all__ = ["STATEMENTS", "SqlWorkflowRunRepository"]


# ON CONFLICT DO NOTHING covers both keys; the caller then tells which one clashed.
CREATE_RUN = Sql("""
INSERT INTO workflow_runs (
    workflow_run_id, status, intake, created_at, updated_at, idempotency_key,
    client_id, step, brief_id, strategy_id, draft_ids, qc_result_ids, package_ids,
    artifact_dirs, failed_step, error, qc_issues, compensated_steps, pending_compensations,
    completed_at
) VALUES (
    :workflow_run_id, :status, :intake, :created_at, :updated_at, :idempotency_key,
    :client_id, :step, :brief_id, :strategy_id, :draft_ids, :qc_result_ids, :package_ids,
    :artifact_dirs, :failed_step, :error, :qc_issues, :compensated_steps,
    :pending_compensations, :completed_at
)
ON CONFLICT DO NOTHING
""")

UPDATE_RUN = Sql("""
UPDATE workflow_runs SET
    status = :status, intake = :intake, created_at = :created_at, updated_at = :updated_at,
    client_id = :client_id, step = :step, brief_id = :brief_id, strategy_id = :strategy_id,
    draft_ids = :draft_ids, qc_result_ids = :qc_result_ids, package_ids = :package_ids,
    artifact_dirs = :artifact_dirs, failed_step = :failed_step, error = :error,
    qc_issues = :qc_issues, compensated_steps = :compensated_steps,
    pending_compensations = :pending_compensations, completed_at = :completed_at
WHERE workflow_run_id = :workflow_run_id
""")

GET_RUN = Sql("""
SELECT workflow_run_id, status, intake, created_at, updated_at, idempotency_key,
    client_id, step, brief_id, strategy_id, draft_ids, qc_result_ids, package_ids,
    artifact_dirs, failed_step, error, qc_issues, compensated_steps, pending_compensations,
    completed_at
FROM workflow_runs WHERE workflow_run_id = :workflow_run_id
""")

GET_RUN_BY_KEY = Sql("""
SELECT workflow_run_id, status, intake, created_at, updated_at, idempotency_key,
    client_id, step, brief_id, strategy_id, draft_ids, qc_result_ids, package_ids,
    artifact_dirs, failed_step, error, qc_issues, compensated_steps, pending_compensations,
    completed_at
FROM workflow_runs WHERE idempotency_key = :idempotency_key
""")

LIST_RUNS = Sql("""
SELECT workflow_run_id, status, intake, created_at, updated_at, idempotency_key,
    client_id, step, brief_id, strategy_id, draft_ids, qc_result_ids, package_ids,
    artifact_dirs, failed_step, error, qc_issues, compensated_steps, pending_compensations,
    completed_at
FROM workflow_runs
ORDER BY created_at, workflow_run_id
""")

LIST_RUNS_BY_STATUS = Sql("""
SELECT workflow_run_id, status, intake, created_at, updated_at, idempotency_key,
    client_id, step, brief_id, strategy_id, draft_ids, qc_result_ids, package_ids,
    artifact_dirs, failed_step, error, qc_issues, compensated_steps, pending_compensations,
    completed_at
FROM workflow_runs
WHERE status = :status
ORDER BY created_at, workflow_run_id
""")

STATEMENTS = (CREATE_RUN, UPDATE_RUN, GET_RUN, GET_RUN_BY_KEY, LIST_RUNS, LIST_RUNS_BY_STATUS)
"""Every statement this module issues (the table-ownership test reads them)."""


class SqlWorkflowRunRepository:
    def __init__(self, db: SqlDatabase):
        self._db = db
        self._runs = RowMapper(
            WorkflowRunDTO,
            db.dialect,
            json=(
                "intake",
                "draft_ids",
                "qc_result_ids",
                "package_ids",
                "artifact_dirs",
                "qc_issues",
                "compensated_steps",
                "pending_compensations",
            ),
        )

    def create(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        run = run_arg(run)
        with self._db.transaction():
            if self._db.execute(CREATE_RUN, self._runs.to_row(run)) == 1:
                return run
            if run.idempotency_key is not None:
                existing = self.get_by_key(run.idempotency_key)
                if existing is not None:
                    return existing
            from aicmo.errors import ConflictError

            raise ConflictError(f"workflow run {run.workflow_run_id!r} already exists")

    def update(self, run: WorkflowRunDTO) -> None:
        run = run_arg(run)
        with self._db.transaction():
            old = self.get(run.workflow_run_id)
            if old is None:
                raise run_not_found(run.workflow_run_id)
            if old.idempotency_key != run.idempotency_key:
                raise key_changed(run.workflow_run_id)
            self._db.execute(UPDATE_RUN, self._runs.to_row(run))

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        row = self._db.fetch_one(
            GET_RUN, {"workflow_run_id": key_arg(workflow_run_id, "workflow_run_id")}
        )
        return None if row is None else self._runs.from_row(row)

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        row = self._db.fetch_one(
            GET_RUN_BY_KEY, {"idempotency_key": key_arg(idempotency_key, "idempotency_key")}
        )
        return None if row is None else self._runs.from_row(row)

    def list(self, status: str | None = None) -> list[WorkflowRunDTO]:
        status = status_arg(status)
        if status is None:
            rows = self._db.fetch_all(LIST_RUNS)
        else:
            rows = self._db.fetch_all(LIST_RUNS_BY_STATUS, {"status": status})
        return [self._runs.from_row(row) for row in rows]
