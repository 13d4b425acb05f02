"""Workflow DTOs: one client-to-delivery run and what it produced."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from aicmo.values import (
    Invalid,
    dto,
    field,
    identifier,
    json_object,
    json_value,
    non_negative_int64,
    optional,
    text,
    tuple_of,
    utc_datetime,
)
from aicmo.workflow.steps import SAGA

__all__ = [
    "FINISHED_STATUSES",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "RUN_STATUSES",
    "STEPS",
    "RunStatus",
    "WorkflowRunDTO",
    "intake_fingerprint",
]

RunStatus = Literal["QUEUED", "RUNNING", "COMPLETED", "COMPENSATED", "FAILED", "CANCELLED"]
RUN_STATUSES: tuple[str, ...] = (
    "QUEUED",
    "RUNNING",
    "COMPLETED",
    "COMPENSATED",
    "FAILED",
    "CANCELLED",
)
FINISHED_STATUSES: tuple[str, ...] = ("COMPLETED", "COMPENSATED", "FAILED", "CANCELLED")
"""The statuses ``wait_run`` returns on (a ``FAILED`` run with compensations left is
still being undone, so it is finished only once nobody holds it)."""
MIN_PRIORITY = -1000
"""The lowest ``priority`` a run may have (the default is 0)."""
MAX_PRIORITY = 1000
"""The highest ``priority`` a run may have: claimed before every lower one."""
STEPS: tuple[str, ...] = tuple(step.name for step in SAGA)
"""The names of the saga's steps, in order (derived from ``aicmo.workflow.steps.SAGA``)."""


def _one_of(allowed: tuple[str, ...], what: str) -> Any:
    def check(value: Any, path: str) -> str:
        if value not in allowed:
            # At most 80 characters of the value: a huge one must not flood the message.
            raise Invalid(
                [(path, f"{value!r:.80} is not a {what}; use one of {', '.join(allowed)}")]
            )
        return str(value)

    return check


_step = _one_of(STEPS, "workflow step")
_ids = tuple_of(identifier, "ids")


def _priority(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid([(path, f"must be an integer, got {value!r:.80}")])
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise Invalid(
            [(path, f"{value} is out of range; use {MIN_PRIORITY} to {MAX_PRIORITY} (default 0)")]
        )
    return value


def _attempt(value: Any, path: str) -> int:
    number = non_negative_int64(value, path)
    if number < 1:
        raise Invalid([(path, f"must be 1 or more, got {number}")])
    return number


_steps = tuple_of(_step, "steps")


@dto
class WorkflowRunDTO:
    """One run of the client-to-delivery workflow.

    ``step`` is the last step whose writes committed; ``pending_compensations`` lists the
    steps still to undo after a failure (a ``FAILED`` run with some left is retried by
    ``recover()``). ``intake`` keeps the intake document, so a run can be resumed from the
    database alone.

    A ``QUEUED`` run waits for a worker (``app.submit`` / ``app.work``). ``claimed_by`` names
    the worker holding the run until ``lease_expires_at``; ``lease_token`` grows by one on
    every claim and fences the holder's writes (a worker whose token is stale commits
    nothing). After ``create``, these three are written only by the repository's ``claim``,
    ``renew`` and ``release``: ``update`` keeps what is stored.

    ``priority`` (``MIN_PRIORITY`` to ``MAX_PRIORITY``, default 0) and ``not_before``
    order the queue: a claim takes the highest priority first, then the oldest, and never
    a run before its ``not_before``. ``cancel_requested_at`` (with ``cancel_reason`` and
    ``cancelled_by``, who asked) is set by the repository's ``request_cancel``: its driver
    stops at the next step boundary, compensates, and ends ``CANCELLED``; ``update`` keeps
    these three too. ``attempt`` numbers the attempts of one run (1 for the first);
    ``retry_of`` is the attempt this one retries (``None`` for the first); both are set
    when the run is created and kept by ``update``.
    """

    workflow_run_id: str = field(identifier)
    status: str = field(_one_of(RUN_STATUSES, "run status"))
    intake: Mapping[str, Any] = field(json_object)
    created_at: datetime = field(utc_datetime)
    updated_at: datetime = field(utc_datetime)
    idempotency_key: str | None = field(optional(identifier), default=None)
    client_id: str | None = field(optional(text), default=None)
    step: str | None = field(optional(_step), default=None)
    brief_id: str | None = field(optional(identifier), default=None)
    strategy_id: str | None = field(optional(identifier), default=None)
    draft_ids: tuple[str, ...] = field(_ids, default=())
    qc_result_ids: tuple[str, ...] = field(_ids, default=())
    package_ids: tuple[str, ...] = field(_ids, default=())
    artifact_dirs: tuple[str, ...] = field(tuple_of(text, "paths"), default=())
    failed_step: str | None = field(optional(_step), default=None)
    error: str | None = field(optional(text), default=None)
    qc_issues: tuple[Any, ...] = field(tuple_of(json_value, "QC issues"), default=())
    compensated_steps: tuple[str, ...] = field(_steps, default=())
    pending_compensations: tuple[str, ...] = field(_steps, default=())
    completed_at: datetime | None = field(optional(utc_datetime), default=None)
    claimed_by: str | None = field(optional(identifier), default=None)
    lease_expires_at: datetime | None = field(optional(utc_datetime), default=None)
    lease_token: int = field(non_negative_int64, default=0)
    intake_fingerprint: str | None = field(optional(text), default=None)
    artifact_root: str | None = field(optional(text), default=None)
    priority: int = field(_priority, default=0)
    not_before: datetime | None = field(optional(utc_datetime), default=None)
    cancel_requested_at: datetime | None = field(optional(utc_datetime), default=None)
    cancel_reason: str | None = field(optional(text), default=None)
    cancelled_by: str | None = field(optional(text), default=None)
    attempt: int = field(_attempt, default=1)
    retry_of: str | None = field(optional(identifier), default=None)


def intake_fingerprint(intake: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of ``intake`` as canonical JSON: keys sorted, no spaces, UTF-8.

    Two intake documents with the same content (read from TOML, JSON or a mapping, keys in
    any order) have the same fingerprint."""
    canonical = json.dumps(intake, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
