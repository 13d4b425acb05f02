"""In-memory ``WorkflowRunRepository``."""

from __future__ import annotations

from aicmo.db.memstore import MemoryDatabase
from aicmo.errors import ConflictError
from aicmo.workflow.dtos import WorkflowRunDTO
from aicmo.workflow.rules import key_arg, key_changed, run_arg, run_not_found, status_arg

__all__ = ["InMemoryWorkflowRunRepository"]


def _order(run: WorkflowRunDTO) -> tuple[object, ...]:
    return (run.created_at, run.workflow_run_id)


class InMemoryWorkflowRunRepository:
    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._runs = db.table(
            "workflow_runs",
            indexes={"status": lambda r: r.status},
            unique={"idempotency_key": lambda r: r.idempotency_key or ("", r.workflow_run_id)},
        )

    def create(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        run = run_arg(run)
        with self._db.transaction():
            if run.idempotency_key is not None:
                holder = self._runs.holder("idempotency_key", run.idempotency_key)
                existing = None if holder is None else self._runs.get(holder)
                if existing is not None:
                    found: WorkflowRunDTO = existing
                    return found
            if self._runs.get(run.workflow_run_id) is not None:
                raise ConflictError(f"workflow run {run.workflow_run_id!r} already exists")
            self._runs.put(run.workflow_run_id, run)
            return run

    def update(self, run: WorkflowRunDTO) -> None:
        run = run_arg(run)
        with self._db.transaction():
            old = self._runs.get(run.workflow_run_id)
            if old is None:
                raise run_not_found(run.workflow_run_id)
            if old.idempotency_key != run.idempotency_key:
                raise key_changed(run.workflow_run_id)
            self._runs.put(run.workflow_run_id, run)

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        workflow_run_id = key_arg(workflow_run_id, "workflow_run_id")
        with self._db.read():
            return self._runs.get(workflow_run_id)

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        idempotency_key = key_arg(idempotency_key, "idempotency_key")
        with self._db.read():
            holder = self._runs.holder("idempotency_key", idempotency_key)
            return None if holder is None else self._runs.get(holder)

    def list(self, status: str | None = None) -> list[WorkflowRunDTO]:
        status = status_arg(status)
        with self._db.read():
            runs = self._runs.values() if status is None else self._runs.lookup("status", status)
        return sorted(runs, key=_order)
