"""Argument rules shared by every workflow-run repository."""

from __future__ import annotations

from aicmo.errors import ConflictError, NotFoundError
from aicmo.values import argument, instance, key_arg
from aicmo.workflow.dtos import RUN_STATUSES, WorkflowRunDTO

__all__ = ["key_arg", "key_changed", "run_arg", "run_not_found", "status_arg"]

_run = instance(WorkflowRunDTO)


def run_arg(value: object) -> WorkflowRunDTO:
    result: WorkflowRunDTO = argument(_run, value, "run")
    return result


def status_arg(value: object) -> str | None:
    if value is None:
        return None
    status = key_arg(value, "status")
    if status not in RUN_STATUSES:
        from aicmo.errors import ValidationError

        raise ValidationError(
            [("status", f"{status!r} is not a run status; use one of {', '.join(RUN_STATUSES)}")]
        )
    return status


def run_not_found(workflow_run_id: str) -> NotFoundError:
    return NotFoundError(f"workflow run {workflow_run_id!r} not found; create it first")


def key_changed(workflow_run_id: str) -> ConflictError:
    return ConflictError(
        f"workflow run {workflow_run_id!r}: its idempotency_key cannot change after creation"
    )
