"""Argument rules shared by every workflow-run repository."""

from __future__ import annotations

from datetime import datetime, timedelta

from aicmo.errors import ConflictError, LeaseLostError, NotFoundError, ValidationError
from aicmo.values import (
    argument,
    identifier,
    instance,
    key_arg,
    non_negative_int64,
    optional,
    utc_datetime,
)
from aicmo.workflow.dtos import RUN_STATUSES, WorkflowRunDTO

__all__ = [
    "claim_args",
    "key_arg",
    "key_changed",
    "lease_lost",
    "retry_at_arg",
    "run_arg",
    "run_not_found",
    "status_arg",
    "token_arg",
    "until_arg",
]

_run = instance(WorkflowRunDTO)


def run_arg(value: object) -> WorkflowRunDTO:
    result: WorkflowRunDTO = argument(_run, value, "run")
    return result


def status_arg(value: object) -> str | None:
    if value is None:
        return None
    status = key_arg(value, "status")
    if status not in RUN_STATUSES:
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


def token_arg(value: object) -> int:
    result: int = argument(non_negative_int64, value, "token")
    return result


def until_arg(value: object) -> datetime:
    result: datetime = argument(utc_datetime, value, "until")
    return result


def retry_at_arg(value: object) -> datetime | None:
    result: datetime | None = argument(optional(utc_datetime), value, "retry_at")
    return result


def claim_args(worker_id: object, now: object, lease: object) -> tuple[str, datetime, datetime]:
    """``(worker_id, now, now + lease)``, checked."""
    worker: str = argument(identifier, worker_id, "worker_id")
    at: datetime = argument(utc_datetime, now, "now")
    if not isinstance(lease, timedelta) or lease <= timedelta(0):
        raise ValidationError([("lease", f"must be a positive timedelta, got {lease!r}")])
    try:
        until = at + lease
    except OverflowError:
        raise ValidationError(
            [("lease", "ends after the year 9999; use a shorter lease")]
        ) from None
    return worker, at, until


def lease_lost(workflow_run_id: str, token: int, current: WorkflowRunDTO | None) -> LeaseLostError:
    holder = "nobody" if current is None or current.claimed_by is None else repr(current.claimed_by)
    now_token = "?" if current is None else str(current.lease_token)
    return LeaseLostError(
        f"workflow run {workflow_run_id!r}: lease token {token} is no longer held (the run is "
        f"at token {now_token}, held by {holder}); nothing was written. Stop working on this "
        "run: its new holder finishes it"
    )
