"""In-memory ``WorkflowRunRepository``."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import attrs

from aicmo.db.memstore import MemoryDatabase
from aicmo.errors import ConflictError
from aicmo.workflow.dtos import RUN_STATUSES, WorkflowRunDTO
from aicmo.workflow.repository import RunRepositoryBase
from aicmo.workflow.rules import (
    CancelArgs,
    ClaimArgs,
    ListArgs,
    claimable_queued,
    key_arg,
    not_cancellable,
    prefix_arg,
    queue_order,
    run_arg,
    run_not_found,
    takeable,
    takeover_order,
)

__all__ = ["InMemoryWorkflowRunRepository"]


_order = attrgetter("created_at", "workflow_run_id")


def _evolve(run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
    result: WorkflowRunDTO = attrs.evolve(run, **changes)  # type: ignore[misc]
    return result


class InMemoryWorkflowRunRepository(RunRepositoryBase):
    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._runs = db.table(
            "workflow_runs",
            indexes={"status": lambda r: r.status},
            unique={
                "idempotency_key": lambda r: r.idempotency_key or ("", r.workflow_run_id),
                "retry_of": lambda r: r.retry_of or ("", r.workflow_run_id),
            },
        )

    def create(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        run = run_arg(run)
        with self._db.transaction():
            if run.idempotency_key is not None:
                existing: WorkflowRunDTO | None = self._runs.held(
                    "idempotency_key", run.idempotency_key
                )
                if existing is not None:
                    return existing
            if self._runs.get(run.workflow_run_id) is not None:
                raise ConflictError(f"workflow run {run.workflow_run_id!r} already exists")
            if run.retry_of is not None and self._runs.holder("retry_of", run.retry_of):
                raise ConflictError(f"workflow run {run.workflow_run_id!r} already exists")
            self._runs.put(run.workflow_run_id, run)
            return run

    def _transaction(self) -> AbstractContextManager[None]:
        return self._db.transaction()

    def _clock(self) -> datetime:
        """This machine's clock (the memory backend's only users are this process)."""
        return datetime.now(UTC)

    def _update(self, run: WorkflowRunDTO, fence: int | None) -> WorkflowRunDTO | None:
        # The conditions on the stored run itself, as the SQL statement's WHERE has them.
        old = self._runs.get(run.workflow_run_id)
        if (
            old is None
            or (fence is not None and old.lease_token != fence)
            or old.idempotency_key != run.idempotency_key
        ):
            return None
        kept = _evolve(
            run,
            claimed_by=old.claimed_by,
            lease_expires_at=old.lease_expires_at,
            lease_token=old.lease_token,
            cancel_requested_at=old.cancel_requested_at,
            cancel_reason=old.cancel_reason,
            cancelled_by=old.cancelled_by,
            attempt=old.attempt,
            retry_of=old.retry_of,
        )
        self._runs.put(run.workflow_run_id, kept)
        return kept

    def _finish(
        self, run: WorkflowRunDTO, fence: int, retry_at: datetime | None
    ) -> WorkflowRunDTO | None:
        if self._update(run, fence) is None:
            return None
        self._release(run.workflow_run_id, fence, retry_at)
        return self._runs.find(run.workflow_run_id)

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        return self._runs.find(key_arg(workflow_run_id, "workflow_run_id"))

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        return self._runs.held("idempotency_key", key_arg(idempotency_key, "idempotency_key"))

    def _list(self, status: str | None, args: ListArgs) -> builtins.list[WorkflowRunDTO]:
        with self._db.read():
            runs = self._runs.values() if status is None else self._runs.lookup("status", status)
        chosen = [
            r
            for r in runs
            if (args.client_id is None or r.client_id == args.client_id)
            and (args.since is None or r.created_at >= args.since)
        ]
        ordered = sorted(chosen, key=_order, reverse=args.newest_first)
        return ordered if args.limit is None else ordered[: args.limit]

    def ids_with_prefix(self, prefix: str, *, limit: int = 10) -> builtins.list[str]:
        prefix, limit = prefix_arg(prefix, limit)
        with self._db.read():
            found = sorted(r.workflow_run_id for r in self._runs.values())
        return [i for i in found if i.startswith(prefix)][:limit]

    def _retry_of(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        return self._runs.held("retry_of", workflow_run_id)

    def _request_cancel(self, args: CancelArgs) -> WorkflowRunDTO:
        run = self._runs.get(args.workflow_run_id)
        if run is None:
            raise run_not_found(args.workflow_run_id)
        if run.status == "CANCELLED" or run.cancel_requested_at is not None:
            found: WorkflowRunDTO = run
            return found
        if run.status not in ("QUEUED", "RUNNING"):
            raise not_cancellable(run)
        asked: dict[str, Any] = {
            "cancel_requested_at": args.now,
            "cancel_reason": args.reason,
            "cancelled_by": args.by,
        }
        if run.status == "QUEUED" and run.step is None:
            asked.update(status="CANCELLED", updated_at=args.now, claimed_by=None)
        changed = _evolve(run, **asked)
        self._runs.put(changed.workflow_run_id, changed)
        return changed

    def _add_attempt(self, run: WorkflowRunDTO, previous: WorkflowRunDTO) -> WorkflowRunDTO:
        if self._runs.get(run.workflow_run_id) is not None:
            raise ConflictError(f"workflow run {run.workflow_run_id!r} already exists")
        self._runs.put(previous.workflow_run_id, _evolve(previous, idempotency_key=None))
        stored = _evolve(run, idempotency_key=previous.idempotency_key)
        self._runs.put(stored.workflow_run_id, stored)
        return stored

    def count_by_status(self) -> dict[str, int]:
        with self._db.read():
            return {s: len(self._runs.lookup("status", s)) for s in RUN_STATUSES}

    # -- the queue -----------------------------------------------------------------------
    def _claim(self, args: ClaimArgs, run_id: str | None) -> WorkflowRunDTO | None:
        if run_id is not None:
            found = self._runs.get(run_id)
            chosen = (
                found
                if found and (claimable_queued(found, args) or takeable(found, args))
                else None
            )
        else:
            taken = [
                r
                for s in ("RUNNING", "FAILED")
                for r in self._runs.lookup("status", s)
                if takeable(r, args)
            ]
            queued = [r for r in self._runs.lookup("status", "QUEUED") if claimable_queued(r, args)]
            chosen = (
                min(taken, key=lambda r: takeover_order(r, args))
                if taken
                else min(queued, key=queue_order, default=None)
            )
        if chosen is None:
            return None
        claimed = _evolve(
            chosen,
            status="RUNNING" if chosen.status == "QUEUED" else chosen.status,
            claimed_by=args.worker_id,
            lease_expires_at=args.until,
            lease_token=chosen.lease_token + 1,
            updated_at=args.now,
        )
        self._runs.put(claimed.workflow_run_id, claimed)
        return claimed

    def _renew(self, run_id: str, token: int, until: datetime) -> bool:
        return self._held(run_id, token, lambda run: _evolve(run, lease_expires_at=until))

    def _release(self, run_id: str, token: int, retry_at: datetime | None) -> bool:
        return self._held(
            run_id,
            token,
            lambda run: _evolve(
                run,
                status="QUEUED" if run.status == "RUNNING" else run.status,
                claimed_by=None,
                lease_expires_at=retry_at,
            ),
        )

    def _held(
        self, workflow_run_id: str, token: int, change: Callable[[WorkflowRunDTO], WorkflowRunDTO]
    ) -> bool:
        """Store ``change(run)`` if the run is held under ``token``; whether it was."""
        with self._db.transaction():
            run = self._runs.get(workflow_run_id)
            if run is None or run.lease_token != token or run.claimed_by is None:
                return False
            self._runs.put(workflow_run_id, change(run))
            return True
