"""The engine of the client-to-delivery saga (onboard -> strategy -> production -> qc ->
delivery): its steps are the table :data:`aicmo.workflow.steps.SAGA`; this module drives
them, holds the leases, retries, compensates and recovers.

Each step's writes and the run's progress commit in **one** transaction, so after a crash
the ``workflow_runs`` row says exactly which steps are in the database. A failure undoes
the completed steps in reverse order through each module's own service (no module touches
another module's rows); each undo commits together with the run's record of it. Artifact
files are staged in a temporary folder and moved into place only after the database commit.

Every transaction of the saga (each step, the move of the package files, each undo, the
final record, the release of the lease, every heartbeat) and every read it makes goes
through the same bounded retry (``app.run_transaction``): a dropped connection or a lock
held past the busy timeout is tried again, never turned into a compensation. So each of
them is written to be repeatable, even after an attempt that committed and then lost its
reply: steps upsert fixed ids, publishing skips a package already in place, undoing skips
what is gone, a claim returns the run its claimer already holds.

Every driver of a run holds its lease and fencing token: ``run()`` creates its run already
claimed by an in-process holder (with a heartbeat, exactly like a worker), ``work()``
claims queued runs, ``recover()`` and a caller waiting on an idempotency key take runs
only through claims. A claim is a lease: a background heartbeat renews it every third of
its length while the run works; a driver that dies stops renewing, and once the lease
lapses the next claim takes the run over (resumed from its last committed step, or its
compensations retried). Every write of a claimed run is *fenced* by the claim's
``lease_token``: a driver whose lease was taken over commits nothing (its step
transaction rolls back on ``LeaseLostError``) and drops the run. Leases expire by one
clock, the database's (see ``WorkflowRunRepository``), unless a test replaces
:attr:`WorkflowService.clock`. Between steps a driver also checks a stop flag (SIGTERM,
Ctrl-C): it puts the run back in the queue with its progress and returns.

A run records its artifact root before it writes its first package file; whoever
finishes the run (a worker taking it over, ``recover()``) publishes or removes its files
there, and refuses (``ConfigurationError``) when that folder is not reachable. The driver
that takes a run over first removes what earlier holders left in that run's staging.

Delivery writes one package per draft, then the run's report package
(``pkg-<run>-report``: ``index.html``, the strategy document, the brief sheet,
``deliverables.json``; see :mod:`aicmo.delivery.report` and ``steps._deliver``), whose
``draft_id`` is the run's strategy, the document it delivers. Every file is rendered from
stored rows, so a package lost between the commit and the move is published again (byte
for byte, with the same templates).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs

from aicmo import errors, observability
from aicmo.db.pids import process_gone
from aicmo.db.retry import retry_transient
from aicmo.delivery import DeliveryService
from aicmo.errors import AicmoError, BackendError, ConflictError, LeaseLostError, NotFoundError
from aicmo.onboarding import IntakeSource
from aicmo.workflow.backoff import OutageBackoff
from aicmo.workflow.dtos import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    STEPS,
    WorkflowRunDTO,
    intake_fingerprint,
)
from aicmo.workflow.ports import WorkflowRunRepository
from aicmo.workflow.steps import (
    SAGA,
    Memo,
    Progress,
    QcFailedError,
    Services,
    Step,
    notice_of,
    package_id_of,
    report_package_id_of,
)

__all__ = [
    "DEFAULT_IDLE_LOG",
    "DEFAULT_KEY_WAIT",
    "DEFAULT_LEASE",
    "UNLEASED_STALE_AFTER",
    "Clock",
    "FaultHook",
    "QcFailedError",
    "WaitTimeoutError",
    "WorkedRun",
    "WorkflowService",
    "default_worker_id",
    "not_before_arg",
    "priority_arg",
    "system_clock",
]

T = TypeVar("T")

FaultHook = Callable[[str], None]
"""Called with each named point of the saga (``"strategy"``, ``"delivery:committed"``,
``"compensate:production"``, ...: every one is listed by
:func:`aicmo.workflow.fault_points`); a test hook raises to inject a fault there. The
points named after a step are inside that step's transaction; ``"before:<step>"`` is
called between steps, outside any transaction."""

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (tests pass a fake one)."""

DEFAULT_LEASE = timedelta(seconds=30)
"""How long a driver's claim on a run lasts without a heartbeat."""

UNLEASED_STALE_AFTER = timedelta(minutes=5)
"""A ``RUNNING`` run without a lease (written by an aicmo from before leases, or left so by
a ``db downgrade``) untouched this long is claimed by workers like a lapsed lease."""

DEFAULT_KEY_WAIT = timedelta(minutes=2)
"""How long ``run()`` waits for another caller to finish the run of the same idempotency
key (longer than a lease, so a caller that died is taken over first)."""

_FINISHED = ("COMPLETED", "COMPENSATED", "CANCELLED")


class WaitTimeoutError(ConflictError, TimeoutError):
    """``wait_run`` gave up: the run was not finished within its ``timeout``."""


def _who() -> str:
    """``user@host``: who asked for a cancel, when the caller does not say."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name here (a container without one)
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def priority_arg(value: object) -> int:
    """``priority`` checked: an integer from ``MIN_PRIORITY`` to ``MAX_PRIORITY``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.ValidationError([("priority", f"must be an integer, got {value!r:.80}")])
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise errors.ValidationError(
            [
                (
                    "priority",
                    f"{value} is out of range; use {MIN_PRIORITY} to {MAX_PRIORITY} "
                    "(higher is claimed first; default 0)",
                )
            ]
        )
    return value


def not_before_arg(value: object) -> datetime | None:
    """``not_before`` checked: ``None`` or a timezone-aware datetime (as UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise errors.ValidationError([("not_before", f"must be a datetime, got {value!r:.80}")])
    if value.tzinfo is None or value.utcoffset() is None:
        raise errors.ValidationError(
            [
                (
                    "not_before",
                    f"{value.isoformat()} has no time zone; give one (for example "
                    f"{value.isoformat()}+00:00)",
                )
            ]
        )
    return value.astimezone(UTC)


log = logging.getLogger("aicmo.workflow")

DEFAULT_IDLE_LOG = 60.0
"""Seconds between two heartbeat lines of an idle worker (``work(idle_log_interval=...)``)."""


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker, and says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def system_clock() -> datetime:
    """This machine's clock (UTC): the default :attr:`WorkflowService.clock`."""
    return datetime.now(UTC)


# -- which holders are gone ------------------------------------------------------------------
_DRIVING: Counter[str] = Counter()
"""Holders of this process driving a run now (a holder id of ours not in here is gone)."""
_DRIVING_LOCK = threading.Lock()
_HOLDER = re.compile(r"(?:.*:)?(?P<host>[^:]+):(?P<pid>[0-9]+):[0-9a-f]{6}")


def _holder_gone(holder: str | None) -> bool:
    """Whether ``holder`` (``[prefix:]host:pid:random``, as :func:`default_worker_id`
    makes) is a driver of this machine that no longer runs: a process that died, or a
    driver of this process that stopped without giving its lease back (a crash it did not
    survive). Any other holder (another machine, a chosen ``--worker-id``) is assumed live:
    its run is taken over when its lease lapses."""
    match = None if holder is None else _HOLDER.fullmatch(holder)
    if match is None or match["host"] != socket.gethostname():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        with _DRIVING_LOCK:
            return _DRIVING[holder] == 0  # type: ignore[index]
    return process_gone(pid)


@contextlib.contextmanager
def _driving(holder: str) -> Iterator[None]:
    with _DRIVING_LOCK:
        _DRIVING[holder] += 1
    try:
        yield
    finally:
        with _DRIVING_LOCK:
            _DRIVING[holder] -= 1
            if not _DRIVING[holder]:
                del _DRIVING[holder]


@attrs.frozen
class WorkedRun:
    """What one driver did with one claimed run.

    ``outcome`` is the run's status when the driver finished it (``COMPLETED``,
    ``COMPENSATED`` or ``FAILED``), ``RELEASED`` when it was stopped and put the run back
    in the queue, or ``LEASE_LOST`` when its lease lapsed and another driver took the run
    over (this one then wrote nothing more). ``run`` is the run as stored afterwards.
    """

    run: WorkflowRunDTO
    outcome: str
    seconds: float
    worker_id: str


class _StopRequested(Exception):
    """The driver was asked to stop; raised between steps of a claimed run."""


class _CancelRequested(Exception):
    """Someone cancelled the run (``cancel_run``); raised between steps of a claimed run,
    with the run as stored (the request in it)."""

    def __init__(self, stored: WorkflowRunDTO):
        super().__init__(stored.workflow_run_id)
        self.stored = stored


@attrs.define
class _Claim:
    """The lease a driver holds on the run it drives (per thread)."""

    worker_id: str
    workflow_run_id: str
    token: int
    lease: timedelta
    stop: threading.Event | None
    lost: threading.Event = attrs.field(factory=threading.Event)
    # A worker's claim: a step that fails only because the database stayed unavailable
    # (``TransientError`` after its retries) gives the run back instead of compensating it.
    requeue_on_outage: bool = False
    # What this drive read and committed (steps read earlier steps' rows from here).
    memo: Memo = attrs.field(factory=Memo)
    # The run as the database returned it from this drive's latest write (the claim, a
    # step's fenced update), until a step boundary looks at it for a cancel request.
    seen: WorkflowRunDTO | None = None


class _Services(Services, Protocol):
    """What the saga needs from the app (the module services and a transaction)."""

    @property
    def closed(self) -> bool: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def run_transaction(
        self, fn: Callable[[], T], *, savepoints: bool = ..., defer_lock: bool = ...
    ) -> T: ...


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, AicmoError) else text


def _interrupted(run: WorkflowRunDTO) -> bool:
    """Whether ``recover()`` finishes ``run``: ``RUNNING``, ``FAILED`` with compensations
    left, or ``QUEUED`` after a driver was stopped (claimed before: a token above 0)."""
    if run.status == "QUEUED":
        return run.lease_token > 0
    return run.status == "RUNNING" or (run.status == "FAILED" and bool(run.pending_compensations))


def _finished(run: WorkflowRunDTO) -> bool:
    """Whether no driver will do more with ``run`` (a ``FAILED`` one waits for a retry)."""
    return run.status in _FINISHED or (run.status == "FAILED" and run.claimed_by is None)


class WorkflowService:
    """Runs and recovers workflows. Reachable through ``app.run_workflow`` and friends."""

    def __init__(self, services: _Services, runs: WorkflowRunRepository):
        self._s = services
        self.runs = runs
        self.fault_hook: FaultHook | None = None
        self._clock: Clock = system_clock
        self._lease_clock: Clock | None = None
        self._local = threading.local()

    @property
    def clock(self) -> Clock:
        """The time source of the runs' timestamps (``created_at``, ``updated_at``, ...).

        Leases expire by the database's clock (see ``WorkflowRunRepository``), so a
        machine whose clock is wrong can neither take live runs nor lose its own. Setting
        a clock (tests: a fake one that moves only when told) makes it decide leases too.
        """
        return self._clock

    @clock.setter
    def clock(self, value: Clock) -> None:
        self._clock = value
        self._lease_clock = value

    def _lease_now(self) -> datetime | None:
        """``now`` for the repository's lease methods: ``None`` (the database's clock)
        unless a test set :attr:`clock`."""
        return None if self._lease_clock is None else self._lease_clock()

    def _evolve(self, run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
        changes.setdefault("updated_at", self.clock())
        result: WorkflowRunDTO = attrs.evolve(run, **changes)  # type: ignore[misc]
        return result

    def _claim_run(
        self,
        holder: str,
        run: WorkflowRunDTO,
        *,
        stale_after: timedelta | None,
    ) -> WorkflowRunDTO | None:
        """Claim ``run`` for ``holder`` if it is queued or to take over (its holder gone
        from this machine included); ``None`` while someone else holds it."""
        claim = functools.partial(
            self.runs.claim,
            holder,
            lease=DEFAULT_LEASE,
            now=self._lease_now(),
            workflow_run_id=run.workflow_run_id,
            stale_after=stale_after,
            take_from=run.claimed_by if _holder_gone(run.claimed_by) else None,
        )
        return self.transaction(claim)

    # -- public -------------------------------------------------------------------------
    def run(
        self,
        intake: IntakeSource,
        *,
        idempotency_key: str | None = None,
        stop: threading.Event | None = None,
        wait: timedelta = DEFAULT_KEY_WAIT,
    ) -> WorkflowRunDTO:
        """Run the workflow for ``intake`` in this thread; return the run as it ended.

        The intake is validated first, whatever the key: an invalid one raises
        ``ValidationError`` and creates no run; so does an object store whose bucket does
        not exist or refuses the credentials (``ConfigurationError``, see
        ``DeliveryService.check_before_running``). The run is created already claimed by
        this call (a lease renewed by a heartbeat), so no worker or ``recover()`` drives it
        while this call does, and one takes it over if this process dies.

        ``idempotency_key``: the first call with a key creates the run; a later call with
        the same key and the same intake (the same fingerprint, see
        :func:`~aicmo.workflow.dtos.intake_fingerprint`) returns that run, finished: if
        another caller (or a worker) is driving it, this call waits for it, polling with
        backoff, and takes the run over if that caller dies; after ``wait`` it raises
        ``ConflictError`` naming the run. The same key with a different intake raises
        ``ConflictError`` naming the key and the run, and writes nothing.

        ``stop``: once set, the run stops at the next step boundary and goes back to the
        queue with its progress (``QUEUED``, returned as such) for a worker or
        ``recover()`` to finish.
        """
        fresh = self._new_run(intake, idempotency_key)
        self._s.delivery.check_before_running()
        holder = f"run:{default_worker_id()}"
        deadline = time.monotonic() + wait.total_seconds()
        run = None
        if idempotency_key is not None:
            run = self.read(functools.partial(self.runs.get_by_key, idempotency_key))
        if run is None:
            run, created = self._create(fresh, claim_for=holder)
            if created:
                worked = self._work_on(run, holder, DEFAULT_LEASE, stop=stop)
                if worked.outcome != "LEASE_LOST":
                    return worked.run
                run = worked.run
        return self._join(run, fresh, holder, stop=stop, deadline=deadline, wait=wait)

    def submit(
        self,
        intake: IntakeSource,
        *,
        idempotency_key: str | None = None,
        priority: int = 0,
        not_before: datetime | None = None,
    ) -> WorkflowRunDTO:
        """Queue a run of ``intake`` for a worker (see :meth:`work`); return it (``QUEUED``).

        The intake is validated first: an invalid one raises ``ValidationError`` and writes
        nothing. The same ``idempotency_key`` with the same intake returns the run it
        created, in whatever state; with a different intake it raises ``ConflictError``
        and writes nothing.

        ``priority`` (``MIN_PRIORITY`` to ``MAX_PRIORITY``, default 0): workers claim the
        highest first, then the oldest. ``not_before`` (timezone-aware): no worker claims
        the run before then. Either out of range raises ``ValidationError`` (nothing
        written).
        """
        rank = priority_arg(priority)
        delay = not_before_arg(not_before)
        fresh = self._new_run(intake, idempotency_key)
        fresh = self._evolve(fresh, priority=rank, not_before=delay, updated_at=fresh.updated_at)
        if idempotency_key is not None:
            existing = self.read(functools.partial(self.runs.get_by_key, idempotency_key))
            if existing is not None:
                return self._same_intake(existing, fresh)
        run, created = self._create(fresh, claim_for=None)
        return run if created else self._same_intake(run, fresh)

    # -- operating runs -------------------------------------------------------------------
    def resolve(self, run_id: str) -> WorkflowRunDTO:
        """The run whose id is ``run_id`` or starts with it (a unique prefix, as git takes
        commit ids). ``NotFoundError`` naming what was given if none does;
        ``ValidationError`` listing the candidates if several do."""
        if not isinstance(run_id, str) or not run_id:
            raise errors.ValidationError(
                [("run_id", "is empty; give a run id or its first characters")]
            )
        run = self.read(functools.partial(self.runs.get, run_id))
        if run is not None:
            return run
        found = self.read(functools.partial(self.runs.ids_with_prefix, run_id, limit=11))
        if not found:
            raise NotFoundError(
                f"no workflow run {run_id!r}: no run id is or starts with it; see `aicmo runs list`"
            )
        if len(found) > 1:
            shown = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
            raise errors.ValidationError(
                [
                    (
                        "run_id",
                        f"{run_id!r} is ambiguous: it starts {len(found)}"
                        f"{'+' if len(found) > 10 else ''} runs ({shown}); give more characters",
                    )
                ]
            )
        run = self.read(functools.partial(self.runs.get, found[0]))
        if run is None:  # pragma: no cover - deleted between the two reads
            raise NotFoundError(f"no workflow run {run_id!r}")
        return run

    def cancel(
        self, run_id: str, *, reason: str | None = None, by: str | None = None
    ) -> WorkflowRunDTO:
        """Cancel the run ``run_id`` (or a unique prefix of it); return it as stored.

        A ``QUEUED`` run that never started becomes ``CANCELLED`` at once. A started one
        (``RUNNING``, or ``QUEUED`` after a stopped driver) is asked to stop: whoever
        drives it (this process, a worker elsewhere) stops at its next step boundary,
        compensates its completed steps exactly as on a failure and ends ``CANCELLED``;
        ``wait_run`` waits for that. ``reason`` and ``by`` (default ``user@host``) are
        kept on the run. A finished run raises ``ConflictError`` naming its status;
        cancelling twice returns the run (the first request stays).
        """
        run = self.resolve(run_id)
        asked_by = _who() if by is None else by

        def request() -> WorkflowRunDTO:
            stored = self.runs.request_cancel(
                run.workflow_run_id, reason=reason, by=asked_by, now=self._lease_now()
            )
            if stored.status == "CANCELLED":  # a queued run, cancelled at once: its end
                self._s.webhooks.announce_run(stored.status, notice_of(stored))
            return stored

        return self.transaction(request)

    def retry(
        self,
        run_id: str,
        *,
        intake: IntakeSource | None = None,
        in_process: bool = False,
        stop: threading.Event | None = None,
    ) -> WorkflowRunDTO:
        """A new attempt of the ``COMPENSATED``, ``FAILED`` or ``CANCELLED`` run
        ``run_id`` (or a unique prefix of it), from the start, with the same intake
        (``intake``: a corrected one, validated first); return it.

        The attempt is a new run with ``attempt`` one more and ``retry_of`` the retried
        run; it takes over the idempotency key (the key follows the latest attempt) and
        the priority. Queued for a worker (returned ``QUEUED``), or, ``in_process``,
        driven in this thread and returned as it ended. ``ConflictError`` (nothing
        written) if the run is not finished that way or was retried already (the error
        names the newer attempt).
        """
        previous = self.resolve(run_id)
        source: IntakeSource = dict(previous.intake) if intake is None else intake
        fresh = self._new_run(source, None)
        fresh = self._evolve(
            fresh,
            updated_at=fresh.updated_at,
            attempt=previous.attempt + 1,
            retry_of=previous.workflow_run_id,
            priority=previous.priority,
        )
        holder = f"run:{default_worker_id()}" if in_process else None

        def tx() -> WorkflowRunDTO:
            stored = self.runs.get(fresh.workflow_run_id)  # a retried commit: made already
            if stored is None:
                stored = self.runs.add_attempt(fresh)
            if holder is None:
                return stored
            claimed = self.runs.claim(
                holder,
                lease=DEFAULT_LEASE,
                now=self._lease_now(),
                workflow_run_id=stored.workflow_run_id,
            )
            return claimed or stored

        made = self.transaction(tx)
        if holder is None or made.claimed_by != holder:
            return made
        return self._work_on(made, holder, DEFAULT_LEASE, stop=stop).run

    def attempts(self, run_id: str) -> list[WorkflowRunDTO]:
        """Every attempt of the run ``run_id`` (or a unique prefix) belongs to, first
        attempt first."""
        run = self.resolve(run_id)
        return self.read(functools.partial(self.runs.attempts, run.workflow_run_id))

    def wait(
        self, run_id: str, *, timeout: float | None = None, poll_interval: float = 1.0
    ) -> WorkflowRunDTO:
        """Return the run ``run_id`` (or a unique prefix) once it is finished:
        ``COMPLETED``, ``COMPENSATED``, ``CANCELLED``, or ``FAILED`` and held by nobody.
        Whoever drives it; this call only reads, polling with backoff (from 10 ms up to
        ``poll_interval`` seconds). After ``timeout`` seconds (``None``: no limit) it
        raises :class:`WaitTimeoutError` naming the run and its status."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
        ):
            raise errors.ValidationError(
                [("timeout", f"must be 0 or more seconds, got {timeout!r}")]
            )
        run = self.resolve(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        while not _finished(run):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(
                    f"workflow run {run.workflow_run_id!r} is still {run.status} after "
                    f"waiting {timeout:g}s (held by {run.claimed_by or 'nobody'}); "
                    "wait again, or cancel it with `aicmo runs cancel`"
                )
            time.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, max(poll_interval, 0.01))
            run = self.read(functools.partial(self.runs.get, run.workflow_run_id)) or run
        return run

    def _new_run(self, intake: IntakeSource, idempotency_key: str | None) -> WorkflowRunDTO:
        """A new ``QUEUED`` run of ``intake``, validated (``ValidationError``)."""
        form = self._s.onboarding.read_intake(intake)
        brief = self._s.onboarding.normalize(form, brief_id="brief-check")
        now = self.clock()
        return WorkflowRunDTO(
            workflow_run_id=uuid.uuid4().hex,
            status="QUEUED",
            intake=form.responses,
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
            client_id=brief.client_id,
            intake_fingerprint=intake_fingerprint(form.responses),
        )

    def _create(
        self, fresh: WorkflowRunDTO, *, claim_for: str | None
    ) -> tuple[WorkflowRunDTO, bool]:
        """Store ``fresh`` (claimed for ``claim_for``, in the same transaction, if given);
        return it and ``True``, or the run holding its key and ``False``. Repeatable: an
        attempt that committed and lost its reply left the run, which the retry finds (the
        insert comes first: a first attempt, whose id is new, reads nothing)."""
        run_id = fresh.workflow_run_id

        def tx() -> tuple[WorkflowRunDTO, bool]:
            try:
                stored = self.runs.create(fresh)
            except ConflictError:  # the id is taken: by this run, if an attempt committed
                found = self.runs.get(run_id)
                if found is None:
                    raise
                stored = found
            if stored.workflow_run_id != run_id:
                return stored, False  # another caller created the key's run first
            if claim_for is None:
                return stored, True
            claimed = self.runs.claim(
                claim_for, lease=DEFAULT_LEASE, now=self._lease_now(), workflow_run_id=run_id
            )
            if claimed is None:  # pragma: no cover - our own new run is always claimable
                raise RuntimeError(f"workflow run {run_id!r} could not be claimed")
            return claimed, True

        return self.transaction(tx)

    @staticmethod
    def _same_intake(run: WorkflowRunDTO, fresh: WorkflowRunDTO) -> WorkflowRunDTO:
        """``run`` if it was made from the intake ``fresh`` was, else ``ConflictError``."""
        stored = run.intake_fingerprint or intake_fingerprint(run.intake)
        if stored != fresh.intake_fingerprint:
            raise ConflictError(
                f"idempotency_key {fresh.idempotency_key!r} belongs to workflow run "
                f"{run.workflow_run_id!r}, made from a different intake; nothing was "
                "written. Use a new key for a new intake, or send the same intake again "
                "to get that run"
            )
        return run

    def _join(
        self,
        run: WorkflowRunDTO,
        fresh: WorkflowRunDTO,
        holder: str,
        *,
        stop: threading.Event | None,
        deadline: float,
        wait: timedelta,
    ) -> WorkflowRunDTO:
        """The finished run of ``fresh``'s key (``run``, made by another caller): driven
        here when it is queued or its driver is gone, else waited for until ``deadline``."""
        self._same_intake(run, fresh)
        delay = 0.01
        while not _finished(run) and not (stop is not None and stop.is_set()):
            claimed = self._claim_run(holder, run, stale_after=UNLEASED_STALE_AFTER)
            if claimed is not None:
                run = self._work_on(claimed, holder, DEFAULT_LEASE, stop=stop).run
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConflictError(
                    f"workflow run {run.workflow_run_id!r} of idempotency_key "
                    f"{fresh.idempotency_key!r} is still {run.status} after waiting "
                    f"{wait.total_seconds():g}s (held by {run.claimed_by or 'nobody'}); "
                    "call again later: the same key returns the run once it is finished"
                )
            pause = min(delay, remaining)
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
            delay = min(delay * 2, 1.0)
            run = self.read(functools.partial(self.runs.get, run.workflow_run_id)) or run
        return run

    def recover(self, *, stale_after: timedelta = timedelta(0)) -> list[WorkflowRunDTO]:
        """Finish every unfinished run nobody drives; return them as they end.

        Unfinished: ``RUNNING``, ``FAILED`` with compensations left (compensated again),
        and ``QUEUED`` runs whose driver was stopped (``run_workflow`` after Ctrl-C, a
        worker after SIGTERM); queued runs never started are left to the workers. Each run
        is driven through a claim, so two ``recover()`` calls, or ``recover()`` and a
        worker or an in-process run, never drive one run at once. A run is taken when its
        lease lapsed, when its holder was a process of this machine that is gone (an
        ``aicmo run`` killed mid-run), or, without a lease (an aicmo from before leases
        wrote it), when untouched for ``stale_after``. A live holder's run is left alone.

        A run whose artifact root is not reachable from here is refused: the others are
        finished, then ``ConfigurationError`` names the refused ones and their roots.
        """
        recoverer = f"recover:{default_worker_id()}"
        done: list[WorkflowRunDTO] = []
        refused: list[str] = []
        for status in ("RUNNING", "FAILED", "QUEUED"):
            for run in self.read(functools.partial(self.runs.list, status)):
                if not _interrupted(run):
                    continue
                claimed = self._claim_run(recoverer, run, stale_after=stale_after)
                if claimed is None:
                    continue
                try:
                    done.append(self._work_on(claimed, recoverer, DEFAULT_LEASE).run)
                except errors.ConfigurationError as exc:
                    refused.append(str(exc))
        # A process driving a run may be staging files under the same root: only entries
        # older than ``stale_after`` (and than a lease, while runs are held) are leftovers
        # of crashes.
        live = self._held()
        self._s.delivery.clean_staging(
            older_than=max(stale_after, DEFAULT_LEASE) if live else stale_after
        )
        if refused:
            raise errors.ConfigurationError(
                f"recovered {len(done)} run(s), refused {len(refused)}: " + "; ".join(refused)
            )
        return done

    # -- the queue ----------------------------------------------------------------------
    def work(
        self,
        *,
        worker_id: str | None = None,
        max_runs: int | None = None,
        stop_when_idle: bool = False,
        lease: timedelta = DEFAULT_LEASE,
        poll_interval: float = 1.0,
        heartbeat: bool = True,
        stop: threading.Event | None = None,
        on_run: Callable[[WorkedRun], None] | None = None,
        idle_log_interval: float | None = DEFAULT_IDLE_LOG,
    ) -> list[WorkedRun]:
        """Claim runs and drive them, one at a time, until told to stop; return what it did.

        Stops after ``max_runs`` claims, when ``stop`` is set (checked between steps: the
        current run goes back to the queue with its progress), or, with ``stop_when_idle``,
        once nothing is queued that is due (a run whose ``not_before`` is still to come
        does not keep it) and no run is held by any driver (a run whose driver died
        is waited for until its lease lapses, then finished here). Otherwise it polls every
        ``poll_interval`` seconds. ``heartbeat=False`` turns the lease renewal off (tests
        that move a fake :attr:`clock` use it). ``on_run`` is called after each run.
        While idle, a heartbeat record (logger ``aicmo.workflow``, INFO, with the queue's
        depth) every ``idle_log_interval`` seconds (``None`` or 0: never).

        An object store whose bucket does not exist (or refuses the credentials) raises
        ``ConfigurationError`` before the first claim. A claimed run whose artifact root is
        not reachable from this worker raises
        ``ConfigurationError`` (the run is released first, for a worker that can reach it).
        """
        if lease <= timedelta(0):
            raise errors.ValidationError([("lease", f"must be positive, got {lease}")])
        worker = worker_id or default_worker_id()
        stop = stop if stop is not None else threading.Event()
        results: list[WorkedRun] = []
        # A BackendError of the claim or of the bookkeeping around a run is an outage: wait
        # it out (see aicmo.workflow.backoff); a run it interrupted keeps its lease, which
        # lapses, and is taken over from its last committed step.
        outage = OutageBackoff(worker, stop, closed=lambda: self._s.closed)
        self._s.delivery.check_before_running()
        idle_since: float | None = None
        while not stop.is_set() and (max_runs is None or len(results) < max_runs):
            try:
                claimed = self.transaction(
                    lambda: self.runs.claim(
                        worker,
                        lease=lease,
                        now=self._lease_now(),
                        stale_after=UNLEASED_STALE_AFTER,
                    )
                )
                idle = claimed is None and stop_when_idle and not self._in_flight()
                outage.succeeded()
                if claimed is None:
                    if idle:
                        break
                    idle_since = self._idle_beat(worker, idle_since, idle_log_interval)
                    stop.wait(poll_interval)
                    continue
                idle_since = None
                result = self._work_on(
                    claimed, worker, lease, heartbeat=heartbeat, stop=stop, requeue_on_outage=True
                )
            except BackendError as exc:
                outage.failed(exc)
                continue
            results.append(result)
            if observability.metrics_on():
                with contextlib.suppress(BackendError):
                    observability.queue_depth(self.read(self.runs.count_by_status))
            if on_run is not None:
                on_run(result)
        return results

    def _idle_beat(self, worker: str, since: float | None, interval: float | None) -> float:
        """Log the idle worker's heartbeat if ``interval`` passed since the last one (or
        since it became idle); return the new mark."""
        now = time.monotonic()
        if since is None:
            return now
        if not interval or now - since < interval:
            return since
        depth = self.read(self.runs.count_by_status)
        observability.queue_depth(depth)
        log.info(
            "worker %s: idle; queue: %s",
            worker,
            ", ".join(f"{n} {s.lower()}" for s, n in depth.items()),
            extra=observability.fields("idle", worker_id=worker, queued=depth.get("QUEUED", 0)),
        )
        return now

    def _in_flight(self) -> bool:
        """Whether a run is queued (and due: its ``not_before`` has come) or held by a
        driver (so more work may come now)."""
        if self.read(self.runs.count_by_status)["QUEUED"]:
            now = self._lease_now() or self.clock()
            queued = self.read(functools.partial(self.runs.list, "QUEUED"))
            if any(r.not_before is None or r.not_before <= now for r in queued):
                return True
        return self._held()

    def _held(self) -> bool:
        """Whether a driver holds a run (a RUNNING one, or a FAILED one whose compensations
        it retries)."""
        return any(
            r.claimed_by is not None
            for s in ("RUNNING", "FAILED")
            for r in self.read(functools.partial(self.runs.list, s))
        )

    def _work_on(
        self,
        claimed: WorkflowRunDTO,
        worker: str,
        lease: timedelta,
        *,
        heartbeat: bool = True,
        stop: threading.Event | None = None,
        requeue_on_outage: bool = False,
    ) -> WorkedRun:
        """Drive a run this thread has just claimed, holding its lease until it ends.

        ``requeue_on_outage`` (the workers): a step that fails only because the database
        stayed unavailable through its retries is not the run's failure. The run goes back
        to the queue with its progress (or, if even that write fails, keeps a lease that
        lapses) and the ``TransientError`` reaches :meth:`work`, which backs off.
        """
        started = time.monotonic()
        run_id = claimed.workflow_run_id
        claim = _Claim(
            worker,
            run_id,
            claimed.lease_token,
            lease,
            stop,
            requeue_on_outage=requeue_on_outage,
            seen=claimed,
        )
        previous = getattr(self._local, "claim", None)
        self._local.claim = claim
        log.debug(
            "run %s: started by %s at %s",
            run_id,
            worker,
            claimed.step or "the first step",
            extra=observability.fields("run_start", run_id=run_id, worker_id=worker),
        )
        with (
            _driving(worker),
            observability.driving_run(run_id),
            observability.span("aicmo.run", **{"aicmo.run_id": run_id, "aicmo.worker": worker}),
        ):
            beat = _Heartbeat(self, claim) if heartbeat else None
            ended: WorkflowRunDTO | None = None  # as stored by the end record (_finish)
            try:
                self._take_over_files(claimed)
                ended = self._resume(claimed)
                outcome = ended.status
            except LeaseLostError as exc:
                outcome = "LEASE_LOST"
                observability.lease_lost()
                log.warning(
                    "run %s: %s lost its lease (%s); the run is left to its new holder",
                    run_id,
                    worker,
                    type(exc).__name__,
                    extra=observability.fields("lease_lost", worker_id=worker),
                )
            except _StopRequested:
                self.transaction(functools.partial(self.runs.release, run_id, claim.token))
                outcome = "RELEASED"
            except errors.TransientError:
                if not requeue_on_outage:
                    raise
                # Given back for any worker (this one after its back-off): resumed from the
                # last committed step. If the database is still away the lease lapses.
                with contextlib.suppress(BackendError):
                    self.transaction(functools.partial(self.runs.release, run_id, claim.token))
                raise
            finally:
                if beat is not None:
                    beat.finish()
                self._local.claim = previous
        if ended is None:
            ended = self.read(functools.partial(self.runs.get, run_id)) or claimed
        stored = ended
        seconds = time.monotonic() - started
        observability.run_ended(outcome)
        log.debug(
            "run %s: ended %s after %.3fs",
            run_id,
            outcome,
            seconds,
            extra=observability.fields(
                "run_end", run_id=run_id, status=outcome, duration=seconds, worker_id=worker
            ),
        )
        return WorkedRun(run=stored, outcome=outcome, seconds=seconds, worker_id=worker)

    def _take_over_files(self, run: WorkflowRunDTO) -> None:
        """Before driving a claimed run: refuse it if its artifact root is not reachable
        (released, ``ConfigurationError``); remove what earlier holders left in its
        staging (the claim fenced them, so nothing there is anyone's work any more)."""
        try:
            delivery = self.delivery_of(run)
        except errors.ConfigurationError:
            self.transaction(
                functools.partial(self.runs.release, run.workflow_run_id, self._claim().token)
            )
            raise
        if run.draft_ids:
            with contextlib.suppress(BackendError):  # garbage only: recover() cleans it later
                delivery.clean_staging(
                    package_ids=[
                        *(package_id_of(d) for d in run.draft_ids),
                        report_package_id_of(run),
                    ]
                )

    def _resume(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        """Finish an unfinished run from the database's record of it (every driver alike):
        a ``FAILED`` run is compensated again, a ``RUNNING`` one resumed."""
        if run.status == "FAILED" or run.failed_step is not None:
            # A run that failed is only ever compensated: one stopped (a crash) while
            # being compensated must not go forward without the rows already undone.
            return self._compensate(run)
        if run.cancel_requested_at is not None:
            return self._cancel(run)
        return self._drive(run)

    def _claim(self) -> _Claim:
        """The lease fencing this thread's writes (every run is driven under one)."""
        claim: _Claim | None = getattr(self._local, "claim", None)
        if claim is None:
            raise RuntimeError("the saga runs only under a claim (see WorkflowService._work_on)")
        return claim

    def _between_steps(self, step: str) -> None:
        self.fault(f"before:{step}")
        claim = self._claim()
        if claim.lost.is_set():
            raise LeaseLostError(
                f"workflow run {claim.workflow_run_id!r}: the lease of {claim.worker_id!r} "
                "could not be renewed; another driver may hold the run now"
            )
        asked = self._cancel_requested(claim)
        if asked is not None:
            raise _CancelRequested(asked)
        if claim.stop is not None and claim.stop.is_set():
            raise _StopRequested

    def _cancel_requested(self, claim: _Claim) -> WorkflowRunDTO | None:
        """The run as stored if someone asked for it to be cancelled, else ``None``: as of
        the drive's latest write (the claim or the last step's commit returned the stored
        run, cancel request included), else of a read. Each step boundary looks at one
        fresh view of the run."""
        stored, claim.seen = claim.seen, None
        if stored is None:
            stored = self.read(functools.partial(self.runs.get, claim.workflow_run_id))
        return stored if stored is not None and stored.cancel_requested_at is not None else None

    # -- the saga (its steps: aicmo.workflow.steps.SAGA) -------------------------------
    @property
    def services(self) -> Services:
        """The module services the steps call."""
        return self._s

    def transaction(self, fn: Callable[[], T]) -> T:
        """One transaction of the saga, retried on ``TransientError`` (bounded).

        Every exception raised inside leaves it (the saga never catches one inside a
        transaction), so the repositories' nested blocks need no savepoints; and on
        SQLite the write lock is taken at the first write, so a step computes its rows
        (and reads what it needs) without holding other workers back
        (``savepoints=False, defer_lock=True``, see ``SqlDatabase.transaction``). Writes
        batched until just before the commit go through ``app.before_commit``."""
        return self._s.run_transaction(fn, savepoints=False, defer_lock=True)

    @staticmethod
    def read(fn: Callable[[], T]) -> T:
        """A read of the saga outside a transaction, retried like one."""
        return retry_transient(fn)

    def fault(self, point: str) -> None:
        """Call :attr:`fault_hook` (tests) at ``point`` (see :func:`fault_points`)."""
        if self.fault_hook is not None:
            self.fault_hook(point)

    def _drive(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        start = 0 if run.step is None else STEPS.index(run.step) + 1
        for step in SAGA[start:]:
            try:
                self._between_steps(step.name)
            except _CancelRequested as asked:
                return self._cancel(asked.stored)
            began = time.monotonic()
            try:
                with observability.span("aicmo.step", **{"aicmo.step": step.name}):
                    run = step.do(self, step, run)
            except (LeaseLostError, _StopRequested):
                raise
            except Exception as exc:
                self._raise_if_outage(exc)
                return self._fail(run, step.name, exc)
            seconds = time.monotonic() - began
            log.debug(
                "run %s: step %s done in %.3fs",
                run.workflow_run_id,
                step.name,
                seconds,
                extra=observability.fields("step_done", step=step.name, duration=seconds),
            )
        try:
            for step in SAGA:
                if step.complete is not None:
                    step.complete(self, run)
            self.fault("complete")
        except LeaseLostError:
            raise
        except Exception as exc:
            self._raise_if_outage(exc)
            return self._fail(run, SAGA[-1].name, exc)
        run = self._evolve(run, status="COMPLETED", completed_at=self.clock())
        return self._finish(run)

    def _raise_if_outage(self, exc: Exception) -> None:
        """Under a worker's claim, a step that failed on a database outage is not failed:
        the ``TransientError`` goes up to :meth:`_work_on`, which requeues the run."""
        if isinstance(exc, errors.TransientError) and self._claim().requeue_on_outage:
            raise exc

    def record(self, run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
        """Store ``run`` with ``changes`` on its own, fenced by this thread's lease."""
        run = self._evolve(run, **changes)
        self._save(run)
        return run

    def _save(self, run: WorkflowRunDTO) -> None:
        """Store ``run`` on its own, fenced by this thread's lease."""
        self.transaction(functools.partial(self._write, run))

    def _write(self, run: WorkflowRunDTO) -> None:
        """The fenced update of ``run`` (inside a transaction); the run it returns is kept
        for the next step boundary's cancel check (:meth:`_cancel_requested`)."""
        claim = self._claim()
        claim.seen = self.runs.update(run, token=claim.token)

    def _finish(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        """Store the run's end state and give its lease back in the same transaction (a
        ``FAILED`` one with compensations left may be claimed again a lease later), in one
        statement (``runs.finish``); return the run as stored."""
        claim = self._claim()
        retry = claim.lease if run.status == "FAILED" and run.pending_compensations else None

        def tx() -> WorkflowRunDTO:
            stored = self.runs.finish(
                run, token=claim.token, retry_after=retry, now=self._lease_now()
            )
            # The outbox: run.completed/compensated/cancelled, committed with the end.
            self._s.webhooks.announce_run(run.status, notice_of(run))
            return stored

        return self.transaction(tx)

    def commit(self, run: WorkflowRunDTO, step: Step, progress: Progress) -> WorkflowRunDTO:
        """Record ``step`` as done with ``progress`` (inside the step's transaction,
        fenced by the lease). ``progress`` sets exactly the step's ``fills``."""
        if sorted(progress) != sorted(step.fills):
            raise errors.ValidationError(
                [
                    (
                        f"step {step.name!r}",
                        f"committed the progress fields {sorted(progress)}, but declares "
                        f"fills={list(step.fills)}; make its Step entry and its work agree",
                    )
                ],
                subject="saga step",
            )
        self.fault(step.name)
        run = self._evolve(run, step=step.name, **progress)
        self._write(run)
        return run

    @property
    def memo(self) -> Memo:
        """What this thread's drive of its run read and committed (one per claim)."""
        return self._claim().memo

    def delivery_of(self, run: WorkflowRunDTO) -> DeliveryService:
        """The delivery service for ``run``'s files: under the root the run recorded (a run
        from before roots were recorded: the folder of its packages), else this app's.
        ``ConfigurationError`` if that root is another folder, not there, or another
        object store than this app's."""
        own = self._s.delivery
        root = run.artifact_root
        if root is None and run.artifact_dirs:
            first = run.artifact_dirs[0]
            root = first.rsplit("/", 1)[0] if "://" in first else str(Path(first).parent)
        here = own.artifact_location
        if root is None or root == here or ("://" not in root and Path(root) == Path(here)):
            return own
        if "://" in root or not Path(root).is_dir():
            raise errors.ConfigurationError(
                f"workflow run {run.workflow_run_id!r} keeps its package files under "
                f"{root!r}, which is not reachable here (this app's artifact store is "
                f"{own.store.shown!r}); finish it where that store is reachable, "
                f"for example `aicmo recover --artifacts {root}`. The run was left as it "
                "was, for a driver that can reach it"
            )
        return own.at(root)

    def under_lease(self, run: WorkflowRunDTO, change_files: Callable[[], object]) -> None:
        """Change ``run``'s files while holding its lease: in a transaction whose first
        statement is the fenced update of the run, which holds the run's row lock
        (PostgreSQL) or the write lock (SQLite) while the files change, so no takeover
        slips in between, and a driver that lost its lease changes nothing
        (``LeaseLostError``). Retried like every transaction: ``change_files`` must be
        repeatable (publishing skips a package already in place)."""

        def tx() -> None:
            self._write(run)
            change_files()

        self.transaction(tx)

    # -- failure and compensation -------------------------------------------------------
    def _fail(self, run: WorkflowRunDTO, step: str, exc: BaseException) -> WorkflowRunDTO:
        # The database is the truth: a step may have committed before it raised.
        stored = self.read(functools.partial(self.runs.get, run.workflow_run_id))
        token = self._claim().token
        if stored is None or stored.lease_token != token:
            # The step failed because another driver took the run over: not a failure of
            # the run, and not this driver's to record.
            raise LeaseLostError(
                f"workflow run {run.workflow_run_id!r}: lease token {token} was taken over "
                f"while {step} ran ({_describe(exc)}); nothing was written"
            ) from exc
        run = stored
        done = () if run.step is None else STEPS[: STEPS.index(run.step) + 1]
        log.debug(
            "run %s: step %s failed (%s); compensating %d step(s)",
            run.workflow_run_id,
            step,
            type(exc).__name__,
            len(done),
            extra=observability.fields("step_failed", step=step, error_type=type(exc).__name__),
        )
        issues = exc.issues if isinstance(exc, QcFailedError) else []
        run = self._evolve(
            run,
            failed_step=step,
            error=_describe(exc),
            qc_issues=tuple(issues),
            pending_compensations=tuple(reversed(done)),
        )
        self._save(run)
        return self._compensate(run)

    def _cancel(self, stored: WorkflowRunDTO) -> WorkflowRunDTO:
        """Stop a run someone cancelled (``stored``: as this driver's claim or latest write
        returned it, so under its lease): compensate its completed steps exactly as on a
        failure, and end it ``CANCELLED`` (see :meth:`_compensate`)."""
        if not stored.pending_compensations and not stored.compensated_steps:
            done = () if stored.step is None else STEPS[: STEPS.index(stored.step) + 1]
            reason = f": {stored.cancel_reason}" if stored.cancel_reason else ""
            stored = self._evolve(
                stored,
                error=f"cancelled by {stored.cancelled_by or 'someone'}{reason}",
                pending_compensations=tuple(reversed(done)),
            )
            self._save(stored)
        return self._compensate(stored)

    def _undo_step(self, run: WorkflowRunDTO, step: str) -> WorkflowRunDTO:
        """Undo ``step`` and record it on the run (inside one transaction). The fenced
        update comes first, so a driver that lost its lease removes no files either."""
        done = self._evolve(
            run,
            pending_compensations=tuple(s for s in run.pending_compensations if s != step),
            compensated_steps=(*run.compensated_steps, step),
        )
        self._write(done)
        SAGA[STEPS.index(step)].undo(self, run)
        self.fault(f"compensate:{step}")
        return done

    def _compensate(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        failures: list[str] = []
        for step in run.pending_compensations:
            try:
                run = self.transaction(functools.partial(self._undo_step, run, step))
                log.debug(
                    "run %s: step %s compensated",
                    run.workflow_run_id,
                    step,
                    extra=observability.fields("compensation", step=step),
                )
            except LeaseLostError:
                raise
            except Exception as exc:
                failures.append(f"undoing {step} failed: {_describe(exc)}")
                log.warning(
                    "run %s: undoing step %s failed (%s); the run stays FAILED for a retry",
                    run.workflow_run_id,
                    step,
                    type(exc).__name__,
                    extra=observability.fields("compensation_failed", step=step),
                )
        error = run.error or ""
        if failures:
            error = "; ".join([error, *failures]) if error else "; ".join(failures)
        status = "FAILED" if run.pending_compensations else "COMPENSATED"
        if status == "COMPENSATED" and self._cancel_requested(self._claim()) is not None:
            status = "CANCELLED"
        run = self._evolve(run, status=status, error=error or None)
        return self._finish(run)


class _Heartbeat:
    """Renews a claim's lease every third of its length, on its own thread, until
    :meth:`finish`; marks the claim lost when a renewal finds the token gone."""

    def __init__(self, service: WorkflowService, claim: _Claim):
        self._service = service
        self._claim = claim
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"aicmo-lease-{claim.workflow_run_id}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        claim, service = self._claim, self._service
        interval = max(claim.lease.total_seconds() / 3, 0.01)
        while not self._done.wait(interval):
            renew = functools.partial(
                service.runs.renew,
                claim.workflow_run_id,
                claim.token,
                lease=claim.lease,
                now=service._lease_now(),
            )
            try:
                held = service.transaction(renew)
            except AicmoError:
                continue  # the database is away: the lease still runs; try the next beat
            if not held:
                claim.lost.set()
                return

    def finish(self) -> None:
        self._done.set()
        self._thread.join()
