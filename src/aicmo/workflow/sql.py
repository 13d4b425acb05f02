"""SQL ``WorkflowRunRepository``: the same statements on SQLite and PostgreSQL.

Claiming the next run locks the chosen row with ``FOR UPDATE SKIP LOCKED`` inside the
``UPDATE ... WHERE workflow_run_id = (SELECT ...)``, so concurrent PostgreSQL workers each
take a different run without waiting on each other. SQLite has no row locks and needs none:
the kernel runs the statement without that clause (``Sql.sqlite``) inside ``BEGIN
IMMEDIATE``, which already admits one writer at a time.
"""

from __future__ import annotations

import builtins
from contextlib import AbstractContextManager
from datetime import datetime

import attrs

from aicmo.db.base import SqlDatabase
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import Sql, assignments, insert, returning, select
from aicmo.errors import ConflictError
from aicmo.values import key_params
from aicmo.workflow.dtos import RUN_STATUSES, WorkflowRunDTO
from aicmo.workflow.ports import KEPT_BY_UPDATE as _KEPT
from aicmo.workflow.repository import RunRepositoryBase
from aicmo.workflow.rules import (
    CancelArgs,
    ClaimArgs,
    ListArgs,
    attempt_conflict,
    not_cancellable,
    prefix_arg,
    run_arg,
    run_not_found,
)

__all__ = ["SqlWorkflowRunRepository"]


_RUN = columns(WorkflowRunDTO)
_NO_LIMIT = 2**62

# ON CONFLICT DO NOTHING covers both keys; the caller then tells which one clashed.
CREATE_RUN = insert("workflow_runs", _RUN, rest="ON CONFLICT DO NOTHING")

# One statement, no read before it: a fenced update (a non-null :fence) writes only while
# the caller's lease token is the stored one, and never over another idempotency key (the
# key never moves); the CASTs give PostgreSQL the parameters' types when they are null.
# The run as stored comes back (with the fields it keeps, the cancel request among them).
UPDATE_RUN = returning(
    f"UPDATE workflow_runs SET {assignments(c for c in _RUN if c not in _KEPT)}\n"  # noqa: S608 - column names from the DTO, never from data
    "WHERE workflow_run_id = :workflow_run_id\n"
    "    AND (CAST(:fence AS BIGINT) IS NULL OR lease_token = :fence)\n"
    "    AND (idempotency_key = :idempotency_key\n"
    "        OR (idempotency_key IS NULL AND CAST(:idempotency_key AS TEXT) IS NULL))",
    _RUN,
)

# ``UPDATE_RUN`` and ``RELEASE_LEASE`` in one statement (``finish``): the run's fields,
# then no holder, a RUNNING run back to QUEUED and the lease at :retry_at (a run held by
# nobody keeps its lease fields, as a release that finds it so writes nothing); the run as
# stored comes back, so the driver ending it reads nothing more.
_FINISHED_FIELDS = assignments(c for c in _RUN if c not in (*_KEPT, "status"))
FINISH_RUN = returning(
    f"UPDATE workflow_runs SET {_FINISHED_FIELDS},\n"  # noqa: S608 - column names from the DTO, never from data
    """    status = CASE WHEN claimed_by IS NOT NULL AND :status = 'RUNNING' THEN 'QUEUED'
        ELSE :status END,
    lease_expires_at = CASE WHEN claimed_by IS NOT NULL THEN :retry_at
        ELSE lease_expires_at END,
    claimed_by = NULL
WHERE workflow_run_id = :workflow_run_id AND lease_token = :fence
    AND (idempotency_key = :idempotency_key
        OR (idempotency_key IS NULL AND CAST(:idempotency_key AS TEXT) IS NULL))""",
    _RUN,
)

GET_RUN = select(_RUN, "FROM workflow_runs WHERE workflow_run_id = :workflow_run_id")
GET_RUN_BY_KEY = select(_RUN, "FROM workflow_runs WHERE idempotency_key = :idempotency_key")
LIST_RUNS = select(_RUN, "FROM workflow_runs ORDER BY created_at, workflow_run_id")
LIST_RUNS_BY_STATUS = select(
    _RUN, "FROM workflow_runs WHERE status = :status ORDER BY created_at, workflow_run_id"
)

# The filters of ``list``: a flag per filter (1: not filtered) and its value.
_FILTERED = """FROM workflow_runs
WHERE (:any_status = 1 OR status = :status)
    AND (:any_client = 1 OR client_id = :client_id)
    AND (:any_since = 1 OR created_at >= :since)
"""
LIST_RUNS_FILTERED = select(_RUN, _FILTERED + "ORDER BY created_at, workflow_run_id\nLIMIT :limit")
LIST_RUNS_NEWEST = select(
    _RUN, _FILTERED + "ORDER BY created_at DESC, workflow_run_id DESC\nLIMIT :limit"
)

IDS_WITH_PREFIX = Sql("""
SELECT workflow_run_id FROM workflow_runs
WHERE substr(workflow_run_id, 1, length(:prefix)) = :prefix
ORDER BY workflow_run_id
LIMIT :limit
""")

GET_RETRY = select(_RUN, "FROM workflow_runs WHERE retry_of = :workflow_run_id")

# A queued run that never started is cancelled at once; a started one (RUNNING, or QUEUED
# with committed steps) is only marked, for its driver to compensate at a step boundary.
CANCEL_QUEUED = Sql("""
UPDATE workflow_runs SET
    status = 'CANCELLED', claimed_by = NULL, updated_at = :now,
    cancel_requested_at = :now, cancel_reason = :reason, cancelled_by = :by
WHERE workflow_run_id = :workflow_run_id AND status = 'QUEUED' AND step IS NULL
    AND cancel_requested_at IS NULL
""")

REQUEST_CANCEL = Sql("""
UPDATE workflow_runs SET
    cancel_requested_at = :now, cancel_reason = :reason, cancelled_by = :by
WHERE workflow_run_id = :workflow_run_id AND status IN ('QUEUED', 'RUNNING')
    AND cancel_requested_at IS NULL
""")

# A retry moves the key of the attempt it retries to the new attempt (the key follows
# the latest attempt); the new row's insert then fails on ux_workflow_runs_retry_of if
# a concurrent retry of the same attempt committed first.
RELEASE_KEY = Sql("""
UPDATE workflow_runs SET idempotency_key = NULL
WHERE workflow_run_id = :workflow_run_id
    AND status IN ('COMPENSATED', 'FAILED', 'CANCELLED')
""")

COUNT_BY_STATUS = Sql("""
SELECT status, COUNT(*) AS n FROM workflow_runs GROUP BY status
""")

# -- the queue -----------------------------------------------------------------------------
# What a claim sets: a QUEUED run starts RUNNING; a RUNNING or FAILED one keeps its status
# (it is resumed or its compensations retried). The token moves on, fencing the old holder.
# A run to take over is claimed before any queued run (the claimer's own first, then the
# oldest lease), so a steady stream of submissions can never starve a half-done run. On
# PostgreSQL concurrent claimers skip each other's rows (FOR UPDATE SKIP LOCKED); SQLite
# runs the same statements without that clause (the kernel drops it) inside BEGIN
# IMMEDIATE, one writer at a time. Every time (:now, :until, :stale_before) is on one
# clock: the caller's if it gave one, else the database's (see WorkflowRunRepository).

# The condition of a run to take over (rules.takeable, also in CLAIM_RUN): a RUNNING run,
# or a FAILED one with compensations left, held by the claimer itself or by :take_from, or
# whose lease ended, or held by nobody and stale. A null :take_from or :stale_before
# matches nothing.
CLAIM_TAKEOVER = returning(
    """
UPDATE workflow_runs SET
    claimed_by = :worker_id, lease_expires_at = :until, lease_token = lease_token + 1,
    updated_at = :now
WHERE workflow_run_id = (
    SELECT workflow_run_id FROM workflow_runs
    WHERE status IN ('RUNNING', 'FAILED')
        AND (status = 'RUNNING' OR pending_compensations <> '[]')
        AND (claimed_by = :worker_id OR claimed_by = :take_from
            OR lease_expires_at <= :now
            OR (claimed_by IS NULL AND updated_at <= :stale_before))
    ORDER BY CASE WHEN claimed_by = :worker_id OR claimed_by = :take_from THEN 0 ELSE 1 END,
        COALESCE(lease_expires_at, updated_at), created_at, workflow_run_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
""",
    _RUN,
)

CLAIM_QUEUED = returning(
    """
UPDATE workflow_runs SET
    status = 'RUNNING', claimed_by = :worker_id, lease_expires_at = :until,
    lease_token = lease_token + 1, updated_at = :now
WHERE workflow_run_id = (
    SELECT workflow_run_id FROM workflow_runs
    WHERE status = 'QUEUED' AND (not_before IS NULL OR not_before <= :now)
    ORDER BY priority DESC, created_at, workflow_run_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
""",
    _RUN,
)

# One named run, if it is queued or to take over; the same on both dialects (PostgreSQL
# waits for a concurrent claimer's row lock, then re-checks the condition).
CLAIM_RUN = returning(
    """
UPDATE workflow_runs SET
    status = CASE WHEN status = 'QUEUED' THEN 'RUNNING' ELSE status END,
    claimed_by = :worker_id, lease_expires_at = :until, lease_token = lease_token + 1,
    updated_at = :now
WHERE workflow_run_id = :workflow_run_id AND ((status = 'QUEUED'
        AND (not_before IS NULL OR not_before <= :now)) OR (status IN ('RUNNING', 'FAILED')
        AND (status = 'RUNNING' OR pending_compensations <> '[]')
        AND (claimed_by = :worker_id OR claimed_by = :take_from
            OR lease_expires_at <= :now
            OR (claimed_by IS NULL AND updated_at <= :stale_before))))
""",
    _RUN,
)

RENEW_LEASE = Sql("""
UPDATE workflow_runs SET lease_expires_at = :until
WHERE workflow_run_id = :workflow_run_id AND lease_token = :token AND claimed_by IS NOT NULL
""")

# Released: a RUNNING run goes back to the queue with its progress. ``retry_at`` is when a
# FAILED run with compensations left may be claimed again (NULL: once it is stale).
RELEASE_LEASE = Sql("""
UPDATE workflow_runs SET
    status = CASE WHEN status = 'RUNNING' THEN 'QUEUED' ELSE status END,
    lease_expires_at = :retry_at, claimed_by = NULL
WHERE workflow_run_id = :workflow_run_id AND lease_token = :token AND claimed_by IS NOT NULL
""")


class SqlWorkflowRunRepository(RunRepositoryBase):
    def __init__(self, db: SqlDatabase):
        self._db = db
        self._runs = RowMapper(
            WorkflowRunDTO,
            db.dialect,
            json=(
                "intake",
                "draft_ids",
                "qc_result_ids",
                "package_ids",
                "artifact_dirs",
                "qc_issues",
                "compensated_steps",
                "pending_compensations",
            ),
        )

    def create(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        run = run_arg(run)
        with self._db.transaction():
            if self._db.execute(CREATE_RUN, self._runs.to_row(run)) == 1:
                return run
            if run.idempotency_key is not None:
                existing = self.get_by_key(run.idempotency_key)
                if existing is not None:
                    return existing
            raise ConflictError(f"workflow run {run.workflow_run_id!r} already exists")

    def _transaction(self) -> AbstractContextManager[None]:
        return self._db.transaction()

    def _clock(self) -> datetime:
        return self._db.clock()

    def _update(self, run: WorkflowRunDTO, fence: int | None) -> WorkflowRunDTO | None:
        # PostgreSQL: the row lock and the token check are taken by this one statement, so
        # a claim that committed before it is seen (READ COMMITTED re-checks the WHERE on
        # the newest row version).
        params = {**self._runs.to_row(run), "fence": fence}
        return self._runs.maybe(self._db.fetch_one(UPDATE_RUN, params))

    def _finish(
        self, run: WorkflowRunDTO, fence: int, retry_at: datetime | None
    ) -> WorkflowRunDTO | None:
        retry = None if retry_at is None else self._db.encode_datetime(retry_at)
        params = {**self._runs.to_row(run), "fence": fence, "retry_at": retry}
        return self._runs.maybe(self._db.fetch_one(FINISH_RUN, params))

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        row = self._db.fetch_one(GET_RUN, key_params(workflow_run_id=workflow_run_id))
        return self._runs.maybe(row)

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        row = self._db.fetch_one(GET_RUN_BY_KEY, key_params(idempotency_key=idempotency_key))
        return self._runs.maybe(row)

    def _list(self, status: str | None, args: ListArgs) -> builtins.list[WorkflowRunDTO]:
        if args.plain:
            if status is None:
                rows = self._db.fetch_all(LIST_RUNS)
            else:
                rows = self._db.fetch_all(LIST_RUNS_BY_STATUS, {"status": status})
            return self._runs.from_rows(rows)
        params = {
            "any_status": 1 if status is None else 0,
            "status": status,
            "any_client": 1 if args.client_id is None else 0,
            "client_id": args.client_id,
            "any_since": 1 if args.since is None else 0,
            "since": None if args.since is None else self._db.encode_datetime(args.since),
            "limit": _NO_LIMIT if args.limit is None else args.limit,
        }
        statement = LIST_RUNS_NEWEST if args.newest_first else LIST_RUNS_FILTERED
        return self._runs.from_rows(self._db.fetch_all(statement, params))

    def ids_with_prefix(self, prefix: str, *, limit: int = 10) -> builtins.list[str]:
        text, count = prefix_arg(prefix, limit)
        rows = self._db.fetch_all(IDS_WITH_PREFIX, {"prefix": text, "limit": count})
        return [str(row["workflow_run_id"]) for row in rows]

    def _retry_of(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        """The attempt that retried ``workflow_run_id``, if any."""
        return self._runs.maybe(self._db.fetch_one(GET_RETRY, {"workflow_run_id": workflow_run_id}))

    def _request_cancel(self, args: CancelArgs) -> WorkflowRunDTO:
        params = {
            "workflow_run_id": args.workflow_run_id,
            "now": self._db.encode_datetime(args.now),
            "reason": args.reason,
            "by": args.by,
        }
        if self._db.execute(CANCEL_QUEUED, params) == 0:
            self._db.execute(REQUEST_CANCEL, params)
        run = self.get(args.workflow_run_id)
        if run is None:
            raise run_not_found(args.workflow_run_id)
        if run.status != "CANCELLED" and run.cancel_requested_at is None:
            raise not_cancellable(run)
        return run

    def _add_attempt(self, run: WorkflowRunDTO, previous: WorkflowRunDTO) -> WorkflowRunDTO:
        if self._db.execute(RELEASE_KEY, {"workflow_run_id": previous.workflow_run_id}) != 1:
            raise attempt_conflict(self.get(previous.workflow_run_id) or previous, None)
        stored: WorkflowRunDTO = attrs.evolve(run, idempotency_key=previous.idempotency_key)  # type: ignore[misc]
        if self._db.execute(CREATE_RUN, self._runs.to_row(stored)) != 1:
            # A concurrent retry of the same attempt committed first (or the id is
            # taken): this transaction rolls back, the key stays where it went.
            newer = self._retry_of(previous.workflow_run_id)
            if newer is not None:
                raise attempt_conflict(previous, newer)
            raise ConflictError(f"workflow run {run.workflow_run_id!r} already exists")
        return stored

    def count_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(RUN_STATUSES, 0)
        for row in self._db.fetch_all(COUNT_BY_STATUS):
            counts[row["status"]] = int(row["n"])
        return counts

    # -- the queue -----------------------------------------------------------------------
    def _claim(self, args: ClaimArgs, run_id: str | None) -> WorkflowRunDTO | None:
        encode = self._db.encode_datetime
        params = {
            "worker_id": args.worker_id,
            "take_from": args.take_from,
            "now": encode(args.now),
            "until": encode(args.until),
            "stale_before": None if args.stale_before is None else encode(args.stale_before),
        }
        if run_id is not None:
            row = self._db.fetch_one(CLAIM_RUN, {**params, "workflow_run_id": run_id})
        else:
            row = self._db.fetch_one(CLAIM_TAKEOVER, params) or self._db.fetch_one(
                CLAIM_QUEUED, params
            )
        return self._runs.maybe(row)

    def _renew(self, run_id: str, token: int, until: datetime) -> bool:
        params = {
            "workflow_run_id": run_id,
            "token": token,
            "until": self._db.encode_datetime(until),
        }
        return self._db.execute(RENEW_LEASE, params) == 1

    def _release(self, run_id: str, token: int, retry_at: datetime | None) -> bool:
        retry = None if retry_at is None else self._db.encode_datetime(retry_at)
        params = {"workflow_run_id": run_id, "token": token, "retry_at": retry}
        return self._db.execute(RELEASE_LEASE, params) == 1
