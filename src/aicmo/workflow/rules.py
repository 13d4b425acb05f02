"""Argument rules shared by every workflow-run repository."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

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
    "ClaimArgs",
    "Clock",
    "claim_args",
    "key_arg",
    "key_changed",
    "lease_lost",
    "lease_until",
    "retry_time",
    "run_arg",
    "run_not_found",
    "status_arg",
    "takeable",
    "takeover_order",
    "token_arg",
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


Clock = Callable[[], datetime]


def _at(now: object, clock: Clock) -> datetime:
    """``now`` checked, else (``None``) the repository's clock: the one that decides."""
    at: datetime | None = argument(optional(utc_datetime), now, "now")
    return clock() if at is None else at


def _duration(value: object, name: str, *, zero: bool = False) -> timedelta:
    if (
        not isinstance(value, timedelta)
        or value < timedelta(0)
        or (value == timedelta(0) and not zero)
    ):
        what = "a timedelta of 0 or more" if zero else "a positive timedelta"
        raise ValidationError([(name, f"must be {what}, got {value!r}")])
    return value


def _after(at: datetime, by: timedelta, name: str) -> datetime:
    try:
        return at + by
    except OverflowError:
        raise ValidationError([(name, "ends after the year 9999; use a shorter one")]) from None


@attrs.frozen
class ClaimArgs:
    """A claim's checked arguments, with its times on the clock that decides."""

    worker_id: str
    now: datetime
    until: datetime
    stale_before: datetime | None
    take_from: str | None


def claim_args(
    worker_id: object,
    *,
    lease: object,
    now: object,
    stale_after: object,
    take_from: object,
    clock: Clock,
) -> ClaimArgs:
    """The checked arguments of ``claim``; ``clock`` (the database's) is read only once
    they are all valid, and only when ``now`` is ``None``."""
    worker: str = argument(identifier, worker_id, "worker_id")
    length = _duration(lease, "lease")
    stale = None if stale_after is None else _duration(stale_after, "stale_after", zero=True)
    taken: str | None = argument(optional(identifier), take_from, "take_from")
    at = _at(now, clock)
    stale_before = None
    if stale is not None:
        try:
            stale_before = at - stale
        except OverflowError:  # before the year 1: every unleased run is stale
            stale_before = datetime.min.replace(tzinfo=at.tzinfo)
    return ClaimArgs(
        worker_id=worker,
        now=at,
        until=_after(at, length, "lease"),
        stale_before=stale_before,
        take_from=taken,
    )


def lease_until(lease: object, now: object, clock: Clock) -> datetime:
    """``now + lease`` (``renew``), checked."""
    length = _duration(lease, "lease")
    return _after(_at(now, clock), length, "lease")


def retry_time(retry_after: object, now: object, clock: Clock) -> datetime | None:
    """``now + retry_after`` or ``None`` (``release``), checked."""
    if retry_after is None:
        argument(optional(utc_datetime), now, "now")
        return None
    length = _duration(retry_after, "retry_after")
    return _after(_at(now, clock), length, "retry_after")


def takeable(run: WorkflowRunDTO, claim: ClaimArgs) -> bool:
    """Whether ``claim`` may take ``run`` over (the rule the SQL statements spell out): a
    ``RUNNING`` run, or a ``FAILED`` one with compensations left, that is held by the
    claimer itself (a retried claim) or by ``take_from``, or whose lease ended by
    ``now``, or that nobody holds and was last written by ``stale_before``."""
    if not (
        run.status == "RUNNING" or (run.status == "FAILED" and bool(run.pending_compensations))
    ):
        return False
    if run.claimed_by is not None and run.claimed_by in (claim.worker_id, claim.take_from):
        return True
    if run.lease_expires_at is not None and run.lease_expires_at <= claim.now:
        return True
    return (
        run.claimed_by is None
        and claim.stale_before is not None
        and run.updated_at <= claim.stale_before
    )


def takeover_order(run: WorkflowRunDTO, claim: ClaimArgs) -> tuple[object, ...]:
    """Which takeable run a claim takes first: its own (or ``take_from``'s), then the one
    whose lease ended first (a run without a lease: its last write), then the oldest."""
    own = run.claimed_by is not None and run.claimed_by in (claim.worker_id, claim.take_from)
    return (
        0 if own else 1,
        run.lease_expires_at or run.updated_at,
        run.created_at,
        run.workflow_run_id,
    )


def lease_lost(workflow_run_id: str, token: int, current: WorkflowRunDTO | None) -> LeaseLostError:
    holder = "nobody" if current is None or current.claimed_by is None else repr(current.claimed_by)
    now_token = "?" if current is None else str(current.lease_token)
    return LeaseLostError(
        f"workflow run {workflow_run_id!r}: lease token {token} is no longer held (the run is "
        f"at token {now_token}, held by {holder}); nothing was written. Stop working on this "
        "run: its new holder finishes it"
    )
