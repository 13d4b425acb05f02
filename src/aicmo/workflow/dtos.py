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

__all__ = ["RUN_STATUSES", "STEPS", "RunStatus", "WorkflowRunDTO", "intake_fingerprint"]

RunStatus = Literal["QUEUED", "RUNNING", "COMPLETED", "COMPENSATED", "FAILED"]
RUN_STATUSES: tuple[str, ...] = ("QUEUED", "RUNNING", "COMPLETED", "COMPENSATED", "FAILED")
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


def intake_fingerprint(intake: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of ``intake`` as canonical JSON: keys sorted, no spaces, UTF-8.

    Two intake documents with the same content (read from TOML, JSON or a mapping, keys in
    any order) have the same fingerprint."""
    canonical = json.dumps(intake, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
