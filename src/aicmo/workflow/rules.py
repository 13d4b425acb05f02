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
    text,
    utc_datetime,
)
from aicmo.workflow.dtos import RUN_STATUSES, WorkflowRunDTO

__all__ = [
    "RETRYABLE",
    "CancelArgs",
    "ClaimArgs",
    "Clock",
    "ListArgs",
    "attempt_arg_missing",
    "attempt_conflict",
    "cancel_args",
    "claim_args",
    "claimable_queued",
    "key_arg",
    "key_changed",
    "lease_lost",
    "lease_until",
    "list_args",
    "not_cancellable",
    "prefix_arg",
    "queue_order",
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
    return argument(_run, value, "run")


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


def claimable_queued(run: WorkflowRunDTO, claim: ClaimArgs) -> bool:
    """Whether ``run`` is a ``QUEUED`` run a claim at ``claim.now`` may take: one whose
    ``not_before`` (if any) has come."""
    return run.status == "QUEUED" and (run.not_before is None or run.not_before <= claim.now)


def queue_order(run: WorkflowRunDTO) -> tuple[object, ...]:
    """Which queued run a claim takes first: the highest priority, then the oldest."""
    return (-run.priority, run.created_at, run.workflow_run_id)


@attrs.frozen
class CancelArgs:
    """A cancel request's checked arguments."""

    workflow_run_id: str
    reason: str | None
    by: str
    now: datetime


def cancel_args(
    workflow_run_id: object, *, reason: object, by: object, now: object, clock: Clock
) -> CancelArgs:
    """The checked arguments of ``request_cancel``."""
    run_id = key_arg(workflow_run_id, "workflow_run_id")
    why: str | None = argument(optional(text), reason, "reason")
    who: str = argument(text, by, "by")
    return CancelArgs(run_id, why, who, _at(now, clock))


def not_cancellable(run: WorkflowRunDTO) -> ConflictError:
    return ConflictError(
        f"workflow run {run.workflow_run_id!r} is {run.status}: a finished run cannot be "
        "cancelled; nothing was written"
    )


RETRYABLE = ("COMPENSATED", "FAILED", "CANCELLED")
"""The statuses of a run that ``add_attempt`` may retry."""


def attempt_conflict(previous: WorkflowRunDTO, newer: WorkflowRunDTO | None) -> ConflictError:
    """Why ``previous`` cannot get a new attempt (``newer`` retries it already)."""
    if newer is not None:
        return ConflictError(
            f"workflow run {previous.workflow_run_id!r} was retried already: attempt "
            f"{newer.attempt} is {newer.workflow_run_id!r}; retry that one (nothing was written)"
        )
    return ConflictError(
        f"workflow run {previous.workflow_run_id!r} is {previous.status}: only a "
        f"{', '.join(RETRYABLE)} run can be retried; nothing was written"
    )


def attempt_arg_missing(run: WorkflowRunDTO) -> ValidationError:
    return ValidationError(
        [("retry_of", f"run {run.workflow_run_id!r} names no attempt it retries; set retry_of")]
    )


@attrs.frozen
class ListArgs:
    """The checked filters of ``list`` (see ``RunFilters``)."""

    client_id: str | None
    since: datetime | None
    limit: int | None
    newest_first: bool

    @property
    def plain(self) -> bool:
        """No filter, no limit, oldest first: every run (of a status)."""
        return (
            self.client_id is None
            and self.since is None
            and self.limit is None
            and not (self.newest_first)
        )


def list_args(
    *,
    client_id: object = None,
    since: object = None,
    limit: object = None,
    newest_first: object = False,
) -> ListArgs:
    """The checked filters of ``list`` (``limit``: 1 or more, or ``None``)."""
    client: str | None = argument(optional(text), client_id, "client_id")
    after: datetime | None = argument(optional(utc_datetime), since, "since")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError([("limit", f"must be an integer of 1 or more, got {limit!r:.80}")])
    return ListArgs(client, after, limit, bool(newest_first))


def prefix_arg(prefix: object, limit: object) -> tuple[str, int]:
    """The checked arguments of ``ids_with_prefix``."""
    text_prefix = key_arg(prefix, "prefix")
    if not text_prefix:
        raise ValidationError([("prefix", "is empty; give the first characters of a run id")])
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError([("limit", f"must be an integer of 1 or more, got {limit!r:.80}")])
    return text_prefix, limit


def lease_lost(workflow_run_id: str, token: int, current: WorkflowRunDTO | None) -> LeaseLostError:
    holder = "nobody" if current is None or current.claimed_by is None else repr(current.claimed_by)
    now_token = "?" if current is None else str(current.lease_token)
    return LeaseLostError(
        f"workflow run {workflow_run_id!r}: lease token {token} is no longer held (the run is "
        f"at token {now_token}, held by {holder}); nothing was written. Stop working on this "
        "run: its new holder finishes it"
    )
