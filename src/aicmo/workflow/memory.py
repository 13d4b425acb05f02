"""In-memory ``WorkflowRunRepository``."""

from __future__ import annotations

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
from aicmo.workflow.rules import ClaimArgs, key_arg, run_arg, status_arg, takeable, takeover_order

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
            unique={"idempotency_key": lambda r: r.idempotency_key or ("", r.workflow_run_id)},
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
            self._runs.put(run.workflow_run_id, run)
            return run

    def _transaction(self) -> AbstractContextManager[None]:
        return self._db.transaction()

    def _clock(self) -> datetime:
        """This machine's clock (the memory backend's only users are this process)."""
        return datetime.now(UTC)

    def _update(self, run: WorkflowRunDTO, old: WorkflowRunDTO, fence: int | None) -> None:
        kept = _evolve(
            run,
            claimed_by=old.claimed_by,
            lease_expires_at=old.lease_expires_at,
            lease_token=old.lease_token,
        )
        self._runs.put(run.workflow_run_id, kept)

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        return self._runs.find(key_arg(workflow_run_id, "workflow_run_id"))

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        return self._runs.held("idempotency_key", key_arg(idempotency_key, "idempotency_key"))

    def list(self, status: str | None = None) -> list[WorkflowRunDTO]:
        status = status_arg(status)
        with self._db.read():
            runs = self._runs.values() if status is None else self._runs.lookup("status", status)
        return sorted(runs, key=_order)

    def count_by_status(self) -> dict[str, int]:
        with self._db.read():
            return {s: len(self._runs.lookup("status", s)) for s in RUN_STATUSES}

    # -- the queue -----------------------------------------------------------------------
    def _claim(self, args: ClaimArgs, run_id: str | None) -> WorkflowRunDTO | None:
        if run_id is not None:
            found = self._runs.get(run_id)
            chosen = (
                found if found and (found.status == "QUEUED" or takeable(found, args)) else None
            )
        else:
            taken = [
                r
                for s in ("RUNNING", "FAILED")
                for r in self._runs.lookup("status", s)
                if takeable(r, args)
            ]
            queued = self._runs.lookup("status", "QUEUED")
            chosen = (
                min(taken, key=lambda r: takeover_order(r, args))
                if taken
                else min(queued, key=_order, default=None)
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
