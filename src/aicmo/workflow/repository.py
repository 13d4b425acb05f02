"""What every ``WorkflowRunRepository`` of aicmo does the same way: check the arguments and
the stored run, then hand the backend its one write, and walk a run's attempts
(:class:`RunRepositoryBase`)."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import NoReturn, Unpack

from aicmo.errors import ConflictError
from aicmo.workflow.dtos import WorkflowRunDTO
from aicmo.workflow.ports import ReleaseOptions, RunFilters
from aicmo.workflow.rules import (
    RETRYABLE,
    CancelArgs,
    ClaimArgs,
    ListArgs,
    attempt_arg_missing,
    attempt_conflict,
    cancel_args,
    claim_args,
    key_arg,
    key_changed,
    lease_lost,
    lease_until,
    list_args,
    retry_time,
    run_arg,
    run_not_found,
    status_arg,
    token_arg,
)

__all__ = ["RunRepositoryBase"]


class RunRepositoryBase(ABC):
    """The argument checks and the order of the checks of ``update``, ``claim``,
    ``renew`` and ``release`` (see ``WorkflowRunRepository`` for what they do), so every
    backend refuses the same input the same way; a backend writes."""

    @abstractmethod
    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None: ...

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """The backend's transaction (``update`` and ``claim`` run in one)."""

    @abstractmethod
    def _clock(self) -> datetime:
        """The backend's clock, for lease times the caller gives no ``now`` for."""

    @abstractmethod
    def _update(self, run: WorkflowRunDTO, fence: int | None) -> WorkflowRunDTO | None:
        """Write ``run`` over the stored run in one step if that run exists, has the same
        idempotency key and, with a ``fence``, holds that lease token; return the run as
        stored after (``None``: nothing written)."""

    @abstractmethod
    def _claim(self, args: ClaimArgs, workflow_run_id: str | None) -> WorkflowRunDTO | None: ...

    @abstractmethod
    def _renew(self, workflow_run_id: str, token: int, until: datetime) -> bool: ...

    @abstractmethod
    def _list(self, status: str | None, args: ListArgs) -> builtins.list[WorkflowRunDTO]:
        """The runs ``list`` returns (arguments checked)."""

    def list(
        self, status: str | None = None, **filters: Unpack[RunFilters]
    ) -> list[WorkflowRunDTO]:
        return self._list(status_arg(status), list_args(**filters))

    def request_cancel(
        self,
        workflow_run_id: str,
        *,
        reason: str | None = None,
        by: str,
        now: datetime | None = None,
    ) -> WorkflowRunDTO:
        with self._transaction():
            args = cancel_args(workflow_run_id, reason=reason, by=by, now=now, clock=self._clock)
            return self._request_cancel(args)

    @abstractmethod
    def _request_cancel(self, args: CancelArgs) -> WorkflowRunDTO:
        """Ask for the run's cancel (arguments checked, inside the transaction)."""

    def add_attempt(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        run = run_arg(run)
        if run.retry_of is None:
            raise attempt_arg_missing(run)
        with self._transaction():
            previous = self.get(run.retry_of)
            if previous is None:
                raise run_not_found(run.retry_of)
            newer = self._retry_of(run.retry_of)
            if newer is not None or previous.status not in RETRYABLE:
                raise attempt_conflict(previous, newer)
            return self._add_attempt(run, previous)

    @abstractmethod
    def _add_attempt(self, run: WorkflowRunDTO, previous: WorkflowRunDTO) -> WorkflowRunDTO:
        """Insert ``run`` and move ``previous``'s key to it (``previous``: checked, may be
        retried), inside the transaction."""

    @abstractmethod
    def _retry_of(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        """The attempt that retried ``workflow_run_id``, if any (at most one)."""

    def attempts(self, workflow_run_id: str) -> builtins.list[WorkflowRunDTO]:
        """Every attempt of the run ``workflow_run_id`` belongs to, oldest first (``[]``
        for an unknown id): back along ``retry_of``, then forward to the latest."""
        run = self.get(workflow_run_id)
        if run is None:
            return []
        chain = [run]
        while chain[0].retry_of is not None:
            before = self.get(chain[0].retry_of)
            if before is None:
                break
            chain.insert(0, before)
        while (after := self._retry_of(chain[-1].workflow_run_id)) is not None:
            chain.append(after)
        return chain

    @abstractmethod
    def _release(self, workflow_run_id: str, token: int, retry_at: datetime | None) -> bool: ...

    @abstractmethod
    def _finish(
        self, run: WorkflowRunDTO, fence: int, retry_at: datetime | None
    ) -> WorkflowRunDTO | None:
        """``_update(run, fence)`` and then ``_release`` of the run in one step; the run as
        stored after, or ``None`` when the update matched nothing (nothing written)."""

    def update(self, run: WorkflowRunDTO, *, token: int | None = None) -> WorkflowRunDTO:
        # The write comes first, its conditions in its WHERE (one statement, no read
        # before it, the stored run back from it); only a write that matched nothing
        # reads the run, to say why.
        run = run_arg(run)
        fence = None if token is None else token_arg(token)
        with self._transaction():
            stored = self._update(run, fence)
            if stored is None:
                self._missed(run, fence)
            return stored

    def finish(
        self, run: WorkflowRunDTO, *, token: int, **options: Unpack[ReleaseOptions]
    ) -> WorkflowRunDTO:
        run, fence = run_arg(run), token_arg(token)
        retry_at = self._retry_at("finish", options)
        with self._transaction():
            stored = self._finish(run, fence, retry_at)
            if stored is None:
                self._missed(run, fence)
            return stored

    def _missed(self, run: WorkflowRunDTO, fence: int | None) -> NoReturn:
        """Why a write of ``run`` (fenced by ``fence``) matched nothing, as the error."""
        old = self.get(run.workflow_run_id)
        if old is None:
            raise run_not_found(run.workflow_run_id)
        if fence is not None and old.lease_token != fence:
            raise lease_lost(run.workflow_run_id, fence, old)
        if old.idempotency_key != run.idempotency_key:
            raise key_changed(run.workflow_run_id)
        # The run changed between the write and the read (another connection took
        # the lease and gave it back): this writer's view of it is not the stored one.
        if fence is not None:
            raise lease_lost(run.workflow_run_id, fence, old)
        raise ConflictError(
            f"workflow run {run.workflow_run_id!r} changed while it was written; "
            "nothing was written: read it again and retry"
        )

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
        run_id = None if workflow_run_id is None else key_arg(workflow_run_id, "workflow_run_id")
        with self._transaction():
            args = claim_args(
                worker_id,
                lease=lease,
                now=now,
                stale_after=stale_after,
                take_from=take_from,
                clock=self._clock,
            )
            return self._claim(args, run_id)

    def renew(
        self, workflow_run_id: str, token: int, *, lease: timedelta, now: datetime | None = None
    ) -> bool:
        run_id, held = key_arg(workflow_run_id, "workflow_run_id"), token_arg(token)
        return self._renew(run_id, held, lease_until(lease, now, self._clock))

    def release(self, workflow_run_id: str, token: int, **options: Unpack[ReleaseOptions]) -> bool:
        run_id, held = key_arg(workflow_run_id, "workflow_run_id"), token_arg(token)
        return self._release(run_id, held, self._retry_at("release", options))

    def _retry_at(self, method: str, options: ReleaseOptions) -> datetime | None:
        """``now + retry_after`` of ``options`` (see ``release``), checked; ``TypeError``
        for a keyword ``method`` does not take, as a plain signature would say."""
        unknown = sorted(set(options) - set(ReleaseOptions.__annotations__))
        if unknown:
            raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")
        return retry_time(options.get("retry_after"), options.get("now"), self._clock)
