"""In-memory ``WorkflowRunRepository``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from aicmo.db.memstore import MemoryDatabase
from aicmo.errors import ConflictError
from aicmo.workflow.dtos import RUN_STATUSES, WorkflowRunDTO
from aicmo.workflow.rules import (
    claim_args,
    key_arg,
    key_changed,
    lease_lost,
    retry_at_arg,
    run_arg,
    run_not_found,
    status_arg,
    token_arg,
    until_arg,
)

__all__ = ["InMemoryWorkflowRunRepository"]


def _order(run: WorkflowRunDTO) -> tuple[object, ...]:
    return (run.created_at, run.workflow_run_id)


def _evolve(run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
    result: WorkflowRunDTO = attrs.evolve(run, **changes)  # type: ignore[misc]
    return result


def _lapsed(run: WorkflowRunDTO, now: datetime) -> bool:
    """A RUNNING run, or a FAILED one with compensations left, whose lease ended by ``now``."""
    return (
        run.lease_expires_at is not None
        and run.lease_expires_at <= now
        and (
            run.status == "RUNNING" or (run.status == "FAILED" and bool(run.pending_compensations))
        )
    )


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

    def update(self, run: WorkflowRunDTO, *, token: int | None = None) -> None:
        run = run_arg(run)
        fence = None if token is None else token_arg(token)
        with self._db.transaction():
            old = self._runs.get(run.workflow_run_id)
            if old is None:
                raise run_not_found(run.workflow_run_id)
            if fence is not None and old.lease_token != fence:
                raise lease_lost(run.workflow_run_id, fence, old)
            if old.idempotency_key != run.idempotency_key:
                raise key_changed(run.workflow_run_id)
            kept = _evolve(
                run,
                claimed_by=old.claimed_by,
                lease_expires_at=old.lease_expires_at,
                lease_token=old.lease_token,
            )
            self._runs.put(run.workflow_run_id, kept)

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

    def count_by_status(self) -> dict[str, int]:
        with self._db.read():
            return {s: len(self._runs.lookup("status", s)) for s in RUN_STATUSES}

    # -- the queue -----------------------------------------------------------------------
    def claim(
        self,
        worker_id: str,
        *,
        now: datetime,
        lease: timedelta,
        workflow_run_id: str | None = None,
    ) -> WorkflowRunDTO | None:
        worker_id, now, until = claim_args(worker_id, now, lease)
        run_id = None if workflow_run_id is None else key_arg(workflow_run_id, "workflow_run_id")
        with self._db.transaction():
            if run_id is not None:
                found = self._runs.get(run_id)
                chosen = (
                    found if found and (found.status == "QUEUED" or _lapsed(found, now)) else None
                )
            else:
                lapsed = [
                    r
                    for s in ("RUNNING", "FAILED")
                    for r in self._runs.lookup("status", s)
                    if _lapsed(r, now)
                ]
                queued = self._runs.lookup("status", "QUEUED")
                chosen = (
                    min(lapsed, key=lambda r: (r.lease_expires_at, *_order(r)))
                    if lapsed
                    else min(queued, key=_order, default=None)
                )
            if chosen is None:
                return None
            claimed = _evolve(
                chosen,
                status="RUNNING" if chosen.status == "QUEUED" else chosen.status,
                claimed_by=worker_id,
                lease_expires_at=until,
                lease_token=chosen.lease_token + 1,
                updated_at=now,
            )
            self._runs.put(claimed.workflow_run_id, claimed)
            return claimed

    def renew(self, workflow_run_id: str, token: int, until: datetime) -> bool:
        workflow_run_id = key_arg(workflow_run_id, "workflow_run_id")
        token, until = token_arg(token), until_arg(until)
        with self._db.transaction():
            run = self._runs.get(workflow_run_id)
            if run is None or run.lease_token != token or run.claimed_by is None:
                return False
            self._runs.put(workflow_run_id, _evolve(run, lease_expires_at=until))
            return True

    def release(
        self, workflow_run_id: str, token: int, *, retry_at: datetime | None = None
    ) -> bool:
        retry = retry_at_arg(retry_at)
        workflow_run_id = key_arg(workflow_run_id, "workflow_run_id")
        token = token_arg(token)
        with self._db.transaction():
            run = self._runs.get(workflow_run_id)
            if run is None or run.lease_token != token or run.claimed_by is None:
                return False
            released = _evolve(
                run,
                status="QUEUED" if run.status == "RUNNING" else run.status,
                claimed_by=None,
                lease_expires_at=retry,
            )
            self._runs.put(workflow_run_id, released)
            return True
