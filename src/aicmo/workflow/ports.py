"""The workflow-run repository port (orchestration's own table)."""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Protocol, TypedDict, Unpack

from aicmo.workflow.dtos import WorkflowRunDTO

__all__ = ["KEPT_BY_UPDATE", "ReleaseOptions", "RunFilters", "WorkflowRunRepository"]

KEPT_BY_UPDATE = (
    "workflow_run_id",
    "idempotency_key",
    "claimed_by",
    "lease_expires_at",
    "lease_token",
    "cancel_requested_at",
    "cancel_reason",
    "cancelled_by",
    "attempt",
    "retry_of",
)
"""The fields ``WorkflowRunRepository.update`` keeps as stored: the key (which never
moves), what a claim or a lease call sets, the cancel request (set by ``request_cancel``
only) and the attempt's place (``add_attempt``)."""


class RunFilters(TypedDict, total=False):
    """The keyword filters of ``WorkflowRunRepository.list`` (and ``App.list_runs``), each
    optional: runs of ``client_id`` only, created at or after ``since`` only, at most
    ``limit`` (1 or more) of them, newest first if ``newest_first``."""

    client_id: str | None
    since: datetime | None
    limit: int | None
    newest_first: bool


class ReleaseOptions(TypedDict, total=False):
    """The keyword options of ``WorkflowRunRepository.finish`` (those of ``release``):
    ``lease_expires_at`` becomes ``now + retry_after`` (``None``: no lease)."""

    retry_after: timedelta | None
    now: datetime | None


class WorkflowRunRepository(Protocol):
    """Stores workflow runs. Every backend behaves identically."""

    def create(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        """Insert ``run`` and return it, or return the run that already holds its
        ``idempotency_key`` (writing nothing). ``ConflictError`` if its id is taken."""
        ...

    def update(self, run: WorkflowRunDTO, *, token: int | None = None) -> WorkflowRunDTO:
        """Replace the stored run with the same id and return it as stored afterwards;
        ``NotFoundError`` if there is none. The idempotency key of a run never changes
        (``ConflictError``). The lease fields (``claimed_by``, ``lease_expires_at``,
        ``lease_token``), the cancel request (``cancel_requested_at``, ``cancel_reason``,
        ``cancelled_by``), ``attempt`` and ``retry_of`` keep their stored values: the run
        returned has them, so a driver learns of a cancel request from its own write
        (on SQL, from the same statement).

        With ``token`` the update is *fenced*: it writes only while the stored
        ``lease_token`` is ``token``, else raises ``LeaseLostError`` and writes nothing
        (inside a transaction, the caller's other writes roll back with it)."""
        ...

    def finish(
        self, run: WorkflowRunDTO, *, token: int, **options: Unpack[ReleaseOptions]
    ) -> WorkflowRunDTO:
        """``update(run, token=token)`` and ``release(run's id, token, retry_after=...,
        now=...)`` in one step (one statement on SQL), fenced alike (``LeaseLostError``,
        nothing written); return the run as stored afterwards: what a driver does when
        it ends a run, without reading it back."""
        ...

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        """The run, or ``None``."""
        ...

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        """The run created with ``idempotency_key``, or ``None``."""
        ...

    def list(
        self, status: str | None = None, **filters: Unpack[RunFilters]
    ) -> list[WorkflowRunDTO]:
        """Runs ordered by ``created_at``, then id (``newest_first``: the reverse), with
        ``status`` only (if given), filtered by ``filters`` (see ``RunFilters``)."""
        ...

    def ids_with_prefix(self, prefix: str, *, limit: int = 10) -> builtins.list[str]:
        """The ids starting with ``prefix`` (not empty), sorted, at most ``limit``."""
        ...

    def attempts(self, workflow_run_id: str) -> builtins.list[WorkflowRunDTO]:
        """Every attempt of the run ``workflow_run_id`` belongs to (linked by
        ``retry_of``), first attempt first; ``[]`` if there is no such run."""
        ...

    def request_cancel(
        self,
        workflow_run_id: str,
        *,
        reason: str | None = None,
        by: str,
        now: datetime | None = None,
    ) -> WorkflowRunDTO:
        """Ask for the run to be cancelled; return it as stored afterwards.

        A ``QUEUED`` run that never started (``step`` is ``None``) becomes ``CANCELLED``
        at once (no holder). A ``RUNNING`` run, or a ``QUEUED`` one with committed steps,
        gets ``cancel_requested_at=now``, ``cancel_reason=reason`` and ``cancelled_by=by``
        and keeps its status: its driver compensates it and ends it ``CANCELLED``. A run
        cancelled or asked to be already is returned unchanged (the first request stays).
        Any other run is finished: ``ConflictError`` naming its status, nothing written.
        ``NotFoundError`` if there is no such run."""
        ...

    def add_attempt(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        """Insert ``run``, a new attempt of the run ``run.retry_of``, in one transaction
        that moves that run's idempotency key to it (the key follows the latest attempt);
        return it as stored. ``NotFoundError`` if ``retry_of`` does not exist;
        ``ConflictError`` (nothing written) if it is not ``COMPENSATED``, ``FAILED`` or
        ``CANCELLED``, or was retried already (each attempt is retried at most once, so
        two concurrent retries make one new attempt), or ``run``'s id is taken."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many runs have each status (every status of ``RUN_STATUSES``, zeros too)."""
        ...

    # -- the queue -----------------------------------------------------------------------
    # Lease times are on one clock: ``now``, when the caller gives it (tests pass a fake
    # clock), else the database's own (PostgreSQL's ``clock_timestamp()``; SQLite and
    # memory: this machine's, which every user of them shares). So a worker whose clock
    # is wrong can neither take live runs from others nor let its own lapse early.

    def claim(
        self,
        worker_id: str,
        *,
        lease: timedelta,
        now: datetime | None = None,
        workflow_run_id: str | None = None,
        stale_after: timedelta | None = None,
        take_from: str | None = None,
    ) -> WorkflowRunDTO | None:
        """Take the next claimable run for ``worker_id`` until ``now + lease``; ``None`` if
        there is none. One short transaction; concurrent claimers never get the same run.

        Claimable, in this order: a run to take over, that is a ``RUNNING`` run or a
        ``FAILED`` run with compensations left which

        * is held by ``worker_id`` itself (a claim retried after its first try committed)
          or by ``take_from`` (a holder the caller knows is dead), taken first; or
        * whose lease ended at or before ``now`` (its worker died or stalled, or the
          retry time a ``FAILED`` run was released with came); or
        * is held by nobody (a run without a lease, written by an aicmo before leases or
          left so by a downgrade, or a ``FAILED`` run waiting for its retry time) and was
          last written (``updated_at``) at least ``stale_after`` before ``now`` (``None``:
          never taken so);

        oldest lease first (a run without one: its last write), so a steady stream of
        submissions cannot starve a half-done run; else the oldest ``QUEUED`` run (by
        ``created_at``, then id).

        The claimed run has ``claimed_by=worker_id``, ``lease_expires_at=now + lease``,
        ``lease_token`` one more than before, ``updated_at=now``, and status ``RUNNING``
        if it was ``QUEUED`` (else unchanged). With ``workflow_run_id`` only that run is
        claimed, if it is queued or claimable as above."""
        ...

    def renew(
        self, workflow_run_id: str, token: int, *, lease: timedelta, now: datetime | None = None
    ) -> bool:
        """Extend the lease to ``now + lease`` while ``token`` is still the run's token and
        the run is held; ``False`` (and nothing written) otherwise: the lease is lost."""
        ...

    def release(self, workflow_run_id: str, token: int, **options: Unpack[ReleaseOptions]) -> bool:
        """Give the run back: no holder, and a ``RUNNING`` run back to ``QUEUED`` with its
        progress kept. ``lease_expires_at`` becomes ``now + retry_after``: when a
        ``FAILED`` run with compensations left may be claimed again (``None``: no lease;
        either way it is claimed once stale, see :meth:`claim`). ``False`` (nothing
        written) if ``token`` is not held any more."""
        ...
