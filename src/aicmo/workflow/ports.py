"""The workflow-run repository port (orchestration's own table)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from aicmo.workflow.dtos import WorkflowRunDTO

__all__ = ["WorkflowRunRepository"]


class WorkflowRunRepository(Protocol):
    """Stores workflow runs. Every backend behaves identically."""

    def create(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        """Insert ``run`` and return it, or return the run that already holds its
        ``idempotency_key`` (writing nothing). ``ConflictError`` if its id is taken."""
        ...

    def update(self, run: WorkflowRunDTO, *, token: int | None = None) -> None:
        """Replace the stored run with the same id; ``NotFoundError`` if there is none.
        The idempotency key of a run never changes (``ConflictError``). The lease fields
        (``claimed_by``, ``lease_expires_at``, ``lease_token``) keep their stored values.

        With ``token`` the update is *fenced*: it writes only while the stored
        ``lease_token`` is ``token``, else raises ``LeaseLostError`` and writes nothing
        (inside a transaction, the caller's other writes roll back with it)."""
        ...

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        """The run, or ``None``."""
        ...

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        """The run created with ``idempotency_key``, or ``None``."""
        ...

    def list(self, status: str | None = None) -> list[WorkflowRunDTO]:
        """Runs (with ``status`` only, if given) ordered by ``created_at``, then id."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many runs have each status (every status of ``RUN_STATUSES``, zeros too)."""
        ...

    # -- the queue -----------------------------------------------------------------------
    def claim(
        self,
        worker_id: str,
        *,
        now: datetime,
        lease: timedelta,
        workflow_run_id: str | None = None,
    ) -> WorkflowRunDTO | None:
        """Take the next claimable run for ``worker_id`` until ``now + lease``; ``None`` if
        there is none. One short transaction; concurrent claimers never get the same run.

        Claimable, in this order: a ``RUNNING`` run, or a ``FAILED`` run with compensations
        left, whose lease ended at or before ``now`` (oldest lease first: its worker died
        or stalled, and a steady stream of submissions must not starve it); else the
        oldest ``QUEUED`` run (by ``created_at``, then id). A run without a lease
        (``lease_expires_at`` ``NULL``) is never taken from a non-queued state: it is driven
        in-process by ``app.run_workflow`` (or left to ``app.recover()``).

        The claimed run has ``claimed_by=worker_id``, ``lease_expires_at=now + lease``,
        ``lease_token`` one more than before, ``updated_at=now``, and status ``RUNNING``
        if it was ``QUEUED`` (else unchanged). With ``workflow_run_id`` only that run is
        claimed, if it is claimable."""
        ...

    def renew(self, workflow_run_id: str, token: int, until: datetime) -> bool:
        """Extend the lease to ``until`` while ``token`` is still the run's token and the
        run is held; ``False`` (and nothing written) otherwise: the lease is lost."""
        ...

    def release(
        self, workflow_run_id: str, token: int, *, retry_at: datetime | None = None
    ) -> bool:
        """Give the run back: no holder, ``lease_expires_at=retry_at``, and a ``RUNNING`` run
        back to ``QUEUED`` with its progress kept. ``retry_at`` is when a ``FAILED`` run
        with compensations left may be claimed again (``None``: only ``app.recover()``
        retries it). ``False`` (nothing written) if ``token`` is not held any more."""
        ...
