"""The client-to-delivery saga: onboard -> strategy -> production -> qc -> delivery.

Each step's writes and the run's progress commit in **one** transaction, so after a crash
the ``workflow_runs`` row says exactly which steps are in the database. A failure undoes
the completed steps in reverse order through each module's own service (no module touches
another module's rows); each undo commits together with the run's record of it. Artifact
files are staged in a temporary folder and moved into place only after the database commit.

``recover()`` works from the database alone: a ``RUNNING`` run is resumed from its last
committed step (and its package files re-published if a crash lost them); a ``FAILED`` run
with compensations left is compensated again.

The queue: ``submit()`` stores a ``QUEUED`` run and ``work()`` claims runs one at a time
(the repository's ``claim``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite) and drives each exactly as above. A claim is a lease: a background heartbeat
renews it every third of its length while the run works, so a step may take longer than
the lease; a worker that dies stops renewing, and once the lease lapses the next claim
takes the run over (resumed, or its compensations retried). Every write of a claimed run
is *fenced* by the claim's ``lease_token``: a worker whose lease lapsed and was taken over
commits nothing (its step transaction rolls back on ``LeaseLostError``) and drops the run.
Between steps the worker also checks a stop flag (SIGTERM, Ctrl-C): it puts the run back in
the queue with its progress and returns.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import attrs

from aicmo.errors import AicmoError, BackendError, LeaseLostError, NotFoundError, ValidationError
from aicmo.workflow.backoff import OutageBackoff
from aicmo.workflow.dtos import STEPS, WorkflowRunDTO
from aicmo.workflow.ports import WorkflowRunRepository

__all__ = [
    "DEFAULT_LEASE",
    "Clock",
    "FaultHook",
    "QcFailedError",
    "WorkedRun",
    "WorkflowService",
    "default_worker_id",
]

T = TypeVar("T")

FaultHook = Callable[[str], None]
"""Called with each named point of the saga (``"strategy"``, ``"delivery:committed"``,
``"compensate:production"``, ...); a test hook raises to inject a fault there. The points
named after a step are inside that step's transaction; ``"before:<step>"`` is called
between steps, outside any transaction."""

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (tests pass a fake one)."""

DEFAULT_LEASE = timedelta(seconds=30)
"""How long a worker's claim on a run lasts without a heartbeat."""


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker, and says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@attrs.frozen
class WorkedRun:
    """What one worker did with one claimed run.

    ``outcome`` is the run's status when the worker finished it (``COMPLETED``,
    ``COMPENSATED`` or ``FAILED``), ``RELEASED`` when it was stopped and put the run back
    in the queue, or ``LEASE_LOST`` when its lease lapsed and another worker took the run
    over (this worker then wrote nothing more). ``run`` is the run as stored afterwards.
    """

    run: WorkflowRunDTO
    outcome: str
    seconds: float
    worker_id: str


class _StopRequested(Exception):
    """The worker was asked to stop; raised between steps of a claimed run."""


@attrs.define
class _Claim:
    """The lease a worker holds on the run it drives (per thread)."""

    worker_id: str
    workflow_run_id: str
    token: int
    lease: timedelta
    stop: threading.Event | None
    lost: threading.Event = attrs.field(factory=threading.Event)


class QcFailedError(AicmoError):
    """A draft did not pass QC; the run fails and its issues are kept on the run."""

    def __init__(self, message: str, issues: list[dict[str, Any]]):
        super().__init__(message)
        self.issues = issues


class _Services(Protocol):
    """What the saga needs from the app (the module services and a transaction)."""

    onboarding: Any
    strategy: Any
    production: Any
    qc: Any
    delivery: Any

    def transaction(self) -> AbstractContextManager[None]: ...

    def run_transaction(self, fn: Callable[[], T]) -> T: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, AicmoError) else text


class WorkflowService:
    """Runs and recovers workflows. Reachable through ``app.run_workflow`` and friends."""

    def __init__(self, services: _Services, runs: WorkflowRunRepository):
        self._s = services
        self.runs = runs
        self.fault_hook: FaultHook | None = None
        #: The time source of every timestamp and lease (replace it in tests).
        self.clock: Clock = _now
        self._local = threading.local()

    def _evolve(self, run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
        changes.setdefault("updated_at", self.clock())
        result: WorkflowRunDTO = attrs.evolve(run, **changes)  # type: ignore[misc]
        return result

    # -- public -------------------------------------------------------------------------
    def run(self, intake: Any, *, idempotency_key: str | None = None) -> WorkflowRunDTO:
        """Run the workflow for ``intake``; the same ``idempotency_key`` returns the same run.

        An invalid intake raises ``ValidationError`` and creates no run.
        """
        run, created = self._create(intake, idempotency_key, "RUNNING")
        return self._drive(run) if created else run

    def submit(self, intake: Any, *, idempotency_key: str | None = None) -> WorkflowRunDTO:
        """Queue a run of ``intake`` for a worker (see :meth:`work`); return it (``QUEUED``).

        The intake is validated first: an invalid one raises ``ValidationError`` and writes
        nothing. The same ``idempotency_key`` returns the run it created, in whatever state.
        """
        run, _ = self._create(intake, idempotency_key, "QUEUED")
        return run

    def _create(
        self, intake: Any, idempotency_key: str | None, status: str
    ) -> tuple[WorkflowRunDTO, bool]:
        if idempotency_key is not None:
            existing = self.runs.get_by_key(idempotency_key)
            if existing is not None:
                return existing, False
        form = self._s.onboarding.read_intake(intake)
        brief = self._s.onboarding.normalize(form, brief_id="brief-check")
        now = self.clock()
        run_id = uuid.uuid4().hex
        create = functools.partial(
            self.runs.create,
            WorkflowRunDTO(
                workflow_run_id=run_id,
                status=status,
                intake=form.responses,
                created_at=now,
                updated_at=now,
                idempotency_key=idempotency_key,
                client_id=brief.client_id,
            ),
        )
        run = self._s.run_transaction(create)
        return run, run.workflow_run_id == run_id  # else another caller created it first

    def recover(self, *, stale_after: timedelta = timedelta(0)) -> list[WorkflowRunDTO]:
        """Finish every unfinished run; return them as they end.

        A ``RUNNING`` run is resumed, a ``FAILED`` run with compensations left is
        compensated again. Runs driven in-process (``run()``, no lease) are taken when
        untouched for ``stale_after``: run it when no other process is driving those.
        Runs claimed by workers are taken only once their lease lapsed (claimed, so a
        worker and ``recover()`` never drive one run at once); a live lease is left alone.
        ``QUEUED`` runs are left to the workers.
        """
        now = self.clock()
        cutoff = now - stale_after
        done = []
        recoverer = f"recover:{default_worker_id()}"
        for status in ("RUNNING", "FAILED"):
            for run in self.runs.list(status):
                if status == "FAILED" and not run.pending_compensations:
                    continue
                if run.lease_expires_at is None:
                    if run.updated_at <= cutoff:
                        done.append(self._resume(run))
                elif run.lease_expires_at <= now:
                    claimed = self._s.run_transaction(
                        functools.partial(
                            self.runs.claim,
                            recoverer,
                            now=self.clock(),
                            lease=DEFAULT_LEASE,
                            workflow_run_id=run.workflow_run_id,
                        )
                    )
                    if claimed is not None:
                        done.append(self._work_on(claimed, recoverer, DEFAULT_LEASE).run)
        # A process driving a run may be staging files under the same root: only entries
        # older than ``stale_after`` (and than a lease, while workers hold live leases)
        # are leftovers of crashes.
        live = self._held()
        self._s.delivery.clean_staging(
            older_than=max(stale_after, DEFAULT_LEASE) if live else stale_after
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
    ) -> list[WorkedRun]:
        """Claim runs and drive them, one at a time, until told to stop; return what it did.

        Stops after ``max_runs`` claims, when ``stop`` is set (checked between steps: the
        current run goes back to the queue with its progress), or, with ``stop_when_idle``,
        once nothing is queued and no run is held by any worker (a run whose worker died
        is waited for until its lease lapses, then finished here). Otherwise it polls every
        ``poll_interval`` seconds. ``heartbeat=False`` turns the lease renewal off (tests
        that move a fake :attr:`clock` use it). ``on_run`` is called after each run.
        """
        if lease <= timedelta(0):
            raise ValidationError([("lease", f"must be positive, got {lease}")])
        worker = worker_id or default_worker_id()
        stop = stop if stop is not None else threading.Event()
        results: list[WorkedRun] = []
        # A BackendError of the claim or of the bookkeeping around a run is an outage: wait
        # it out (see aicmo.workflow.backoff); a run it interrupted keeps its lease, which
        # lapses, and is taken over from its last committed step.
        outage = OutageBackoff(worker, stop, closed=lambda: getattr(self._s, "closed", False))
        while not stop.is_set() and (max_runs is None or len(results) < max_runs):
            try:
                claimed = self._s.run_transaction(
                    lambda: self.runs.claim(worker, now=self.clock(), lease=lease)
                )
                idle = claimed is None and stop_when_idle and not self._in_flight()
                outage.succeeded()
                if claimed is None:
                    if idle:
                        break
                    stop.wait(poll_interval)
                    continue
                result = self._work_on(claimed, worker, lease, heartbeat=heartbeat, stop=stop)
            except BackendError as exc:
                outage.failed(exc)
                continue
            results.append(result)
            if on_run is not None:
                on_run(result)
        return results

    def _in_flight(self) -> bool:
        """Whether a run is queued or held by a worker (so more work may come)."""
        return bool(self.runs.count_by_status()["QUEUED"]) or self._held()

    def _held(self) -> bool:
        """Whether a worker holds a run (a RUNNING one, or a FAILED one whose compensations
        it retries)."""
        return any(
            r.claimed_by is not None for s in ("RUNNING", "FAILED") for r in self.runs.list(s)
        )

    def _work_on(
        self,
        claimed: WorkflowRunDTO,
        worker: str,
        lease: timedelta,
        *,
        heartbeat: bool = True,
        stop: threading.Event | None = None,
    ) -> WorkedRun:
        started = time.monotonic()
        run_id = claimed.workflow_run_id
        claim = _Claim(worker, run_id, claimed.lease_token, lease, stop)
        previous = getattr(self._local, "claim", None)
        self._local.claim = claim
        beat = _Heartbeat(self, claim) if heartbeat else None
        try:
            outcome = self._resume(claimed).status
        except LeaseLostError:
            outcome = "LEASE_LOST"
        except _StopRequested:
            self._s.run_transaction(functools.partial(self.runs.release, run_id, claim.token))
            outcome = "RELEASED"
        finally:
            if beat is not None:
                beat.finish()
            self._local.claim = previous
        stored = self.runs.get(run_id) or claimed
        return WorkedRun(
            run=stored, outcome=outcome, seconds=time.monotonic() - started, worker_id=worker
        )

    def _resume(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        """Finish an unfinished run from the database's record of it (``recover()`` and
        workers alike): a ``FAILED`` run is compensated again, a ``RUNNING`` one resumed."""
        if run.status == "FAILED" or run.failed_step is not None:
            # A run that failed is only ever compensated: one stopped (a crash) while
            # being compensated must not go forward without the rows already undone.
            return self._compensate(run)
        return self._drive(run)

    def _token(self) -> int | None:
        """The lease token fencing this thread's writes (``None``: an unclaimed run)."""
        claim: _Claim | None = getattr(self._local, "claim", None)
        return None if claim is None else claim.token

    def _between_steps(self, step: str) -> None:
        self._fault(f"before:{step}")
        claim: _Claim | None = getattr(self._local, "claim", None)
        if claim is None:
            return
        if claim.lost.is_set():
            raise LeaseLostError(
                f"workflow run {claim.workflow_run_id!r}: the lease of {claim.worker_id!r} "
                "could not be renewed; another worker may hold the run now"
            )
        if claim.stop is not None and claim.stop.is_set():
            raise _StopRequested

    # -- the saga -----------------------------------------------------------------------
    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    def _drive(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        start = 0 if run.step is None else STEPS.index(run.step) + 1
        for step in STEPS[start:]:
            self._between_steps(step)
            try:
                run = getattr(self, f"_step_{step}")(run)
            except (LeaseLostError, _StopRequested):
                raise
            except Exception as exc:
                return self._fail(run, step, exc)
        try:
            self._publish_missing(run)
            self._fault("complete")
        except LeaseLostError:
            raise
        except Exception as exc:
            return self._fail(run, "delivery", exc)
        run = self._evolve(run, status="COMPLETED", completed_at=self.clock())
        self._finish(run)
        return run

    def _save(self, run: WorkflowRunDTO) -> None:
        """Store ``run`` on its own (retried like every transaction of the saga), fenced
        by this thread's lease if it holds one."""
        self._s.run_transaction(functools.partial(self.runs.update, run, token=self._token()))

    def _finish(self, run: WorkflowRunDTO) -> None:
        """Store the run's end state; a claimed run gives its lease back in the same
        transaction (a ``FAILED`` one with compensations left is retried a lease later)."""
        claim: _Claim | None = getattr(self._local, "claim", None)
        if claim is None:
            self._save(run)
            return
        retry_at = (
            self.clock() + claim.lease
            if run.status == "FAILED" and run.pending_compensations
            else None
        )

        def tx() -> None:
            self.runs.update(run, token=claim.token)
            self.runs.release(run.workflow_run_id, claim.token, retry_at=retry_at)

        self._s.run_transaction(tx)

    def _commit(self, run: WorkflowRunDTO, step: str, **changes: Any) -> WorkflowRunDTO:
        """Record ``step`` as done (inside the step's transaction, fenced by the lease)."""
        self._fault(step)
        run = self._evolve(run, step=step, **changes)
        self.runs.update(run, token=self._token())
        return run

    def _brief(self, run: WorkflowRunDTO) -> Any:
        brief = self._s.onboarding.repo.get_brief(run.brief_id)
        if brief is None:
            raise NotFoundError(f"brief {run.brief_id!r} of run {run.workflow_run_id!r} is gone")
        return brief

    def _step_onboard(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        brief_id = f"brief-{run.workflow_run_id}"

        def tx() -> WorkflowRunDTO:
            self._s.onboarding.onboard(run.intake, brief_id=brief_id)
            return self._commit(run, "onboard", brief_id=brief_id)

        return self._s.run_transaction(tx)

    def _step_strategy(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        strategy_id = f"strategy-{run.workflow_run_id}"

        def tx() -> WorkflowRunDTO:
            self._s.strategy.generate(self._brief(run), strategy_id=strategy_id)
            return self._commit(run, "strategy", strategy_id=strategy_id)

        return self._s.run_transaction(tx)

    def _step_production(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        def tx() -> WorkflowRunDTO:
            strategy = self._s.strategy.repo.get(run.strategy_id)
            drafts = self._s.production.produce(
                self._brief(run), strategy, id_prefix=f"draft-{run.workflow_run_id}"
            )
            return self._commit(run, "production", draft_ids=tuple(d.draft_id for d in drafts))

        return self._s.run_transaction(tx)

    def _step_qc(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        return self._s.run_transaction(lambda: self._qc(run))

    def _qc(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        brief = self._brief(run)
        results = []
        for draft_id in run.draft_ids:
            draft = self._s.production.repo.get_draft(draft_id)
            result_id = draft_id.replace("draft-", "qc-", 1)
            results.append(self._s.qc.evaluate(draft, brief, result_id=result_id))
        failed = [r for r in results if not r.passed]
        if failed:
            issues = [
                {
                    "draft_id": r.draft_id,
                    "score": r.score,
                    "severity": i.severity,
                    "section": i.section,
                    "reason": i.reason,
                }
                for r in failed
                for i in r.issues
            ]
            summary = "; ".join(
                f"{r.draft_id} scored {r.score:.2f}"
                + (f" ({r.issues[0].severity}: {r.issues[0].reason})" if r.issues else "")
                for r in failed
            )
            raise QcFailedError(f"QC failed: {summary}", issues)
        return self._commit(run, "qc", qc_result_ids=tuple(r.result_id for r in results))

    def _package_files(self, run: WorkflowRunDTO, draft_id: str) -> dict[str, bytes]:
        draft = self._s.production.repo.get_draft(draft_id)
        result = self._s.qc.repo.get_result(draft_id)
        report = {
            "workflow_run_id": run.workflow_run_id,
            "draft_id": draft_id,
            "result_id": result.result_id,
            "passed": result.passed,
            "score": result.score,
            "evaluated_at": result.evaluated_at.isoformat(),
            "issues": [attrs.asdict(issue) for issue in result.issues],
        }
        return {
            "draft.md": self._s.production.render_markdown(draft).encode("utf-8"),
            "draft.html": self._s.production.render_html(draft).encode("utf-8"),
            "qc-report.json": json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"),
        }

    @staticmethod
    def _package_id(draft_id: str) -> str:
        return draft_id.replace("draft-", "pkg-", 1)

    def _step_delivery(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        staged: list[Any] = []

        def tx() -> WorkflowRunDTO:
            for item in staged:
                self._s.delivery.save(item)
            return self._commit(
                run,
                "delivery",
                package_ids=tuple(s.package.package_id for s in staged),
                artifact_dirs=tuple(str(s.final_dir) for s in staged),
            )

        try:
            for d in run.draft_ids:  # a failure part-way abandons what was staged so far
                staged.append(
                    self._s.delivery.stage(
                        self._package_id(d),
                        d,
                        self._package_files(run, d),
                        created_at=run.created_at,
                    )
                )
            run = self._s.run_transaction(tx)
        except BaseException:
            for item in staged:
                self._s.delivery.abandon(item)
            raise
        self._fault("delivery:publish")
        try:
            self._under_lease(run, lambda: [self._s.delivery.publish(i) for i in staged])
        except LeaseLostError:
            for item in staged:
                self._s.delivery.abandon(item)
            raise
        self._fault("delivery:committed")
        return run

    def _under_lease(self, run: WorkflowRunDTO, change_files: Callable[[], object]) -> None:
        """Change ``run``'s files while holding its lease. For a claimed run that is a
        transaction whose first statement is the fenced update of the run: it holds the
        run's row lock (PostgreSQL) or the write lock (SQLite) while the files change, so
        no takeover slips in between, and a worker that lost its lease changes nothing
        (``LeaseLostError``). Not retried: moving files is not repeatable."""
        token = self._token()
        if token is None:
            change_files()
            return
        with self._s.transaction():
            self.runs.update(run, token=token)
            change_files()

    def _publish_missing(self, run: WorkflowRunDTO) -> None:
        """Re-publish package files a crash lost between the commit and the move."""
        self._under_lease(run, lambda: self._republish(run))

    def _republish(self, run: WorkflowRunDTO) -> None:
        for package_id, draft_id in zip(run.package_ids, run.draft_ids, strict=True):
            package = self._s.delivery.repo.get_package(package_id)
            if package is not None and self._s.delivery.missing_files(package):
                staged = self._s.delivery.stage(
                    package_id,
                    draft_id,
                    self._package_files(run, draft_id),
                    created_at=package.created_at,
                )
                self._s.delivery.publish(staged)

    # -- failure and compensation -------------------------------------------------------
    def _fail(self, run: WorkflowRunDTO, step: str, exc: BaseException) -> WorkflowRunDTO:
        # The database is the truth: a step may have committed before it raised.
        stored = self.runs.get(run.workflow_run_id)
        token = self._token()
        if token is not None and (stored is None or stored.lease_token != token):
            # The step failed because another worker took the run over: not a failure of
            # the run, and not this worker's to record.
            raise LeaseLostError(
                f"workflow run {run.workflow_run_id!r}: lease token {token} was taken over "
                f"while {step} ran ({_describe(exc)}); nothing was written"
            ) from exc
        run = stored or run
        done: tuple[str, ...] = () if run.step is None else STEPS[: STEPS.index(run.step) + 1]
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

    def _undo(self, run: WorkflowRunDTO, step: str) -> None:
        """Undo ``step``'s rows (inside a transaction)."""
        if step == "onboard" and run.brief_id:
            self._s.onboarding.discard(run.brief_id)
        elif step == "strategy" and run.strategy_id:
            self._s.strategy.discard(run.strategy_id)
        elif step == "production":
            for draft_id in run.draft_ids:
                self._s.production.discard(draft_id)
        elif step == "qc":
            for draft_id in run.draft_ids:
                self._s.qc.discard(draft_id)
        elif step == "delivery":
            # Files first, inside the transaction: if removing them fails (or the process
            # dies), the rows stay, the step stays pending and recover() does it again;
            # never a file left without its package row.
            for package_id in run.package_ids:
                self._s.delivery.remove_files(package_id)
                self._s.delivery.repo.delete_package(package_id)

    def _undo_step(self, run: WorkflowRunDTO, step: str) -> WorkflowRunDTO:
        """Undo ``step`` and record it on the run (inside one transaction). The fenced
        update comes first, so a worker that lost its lease removes no files either."""
        done = self._evolve(
            run,
            pending_compensations=tuple(s for s in run.pending_compensations if s != step),
            compensated_steps=(*run.compensated_steps, step),
        )
        self.runs.update(done, token=self._token())
        self._undo(run, step)
        self._fault(f"compensate:{step}")
        return done

    def _compensate(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        failures: list[str] = []
        for step in run.pending_compensations:
            try:
                run = self._s.run_transaction(functools.partial(self._undo_step, run, step))
            except LeaseLostError:
                raise
            except Exception as exc:
                failures.append(f"undoing {step} failed: {_describe(exc)}")
        error = run.error or ""
        if failures:
            error = "; ".join([error, *failures]) if error else "; ".join(failures)
        status = "FAILED" if run.pending_compensations else "COMPENSATED"
        run = self._evolve(run, status=status, error=error or None)
        self._finish(run)
        return run


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
                service.clock() + claim.lease,
            )
            try:
                held = service._s.run_transaction(renew)
            except AicmoError:
                continue  # the database hiccuped: the lease still runs; try the next beat
            if not held:
                claim.lost.set()
                return

    def finish(self) -> None:
        self._done.set()
        self._thread.join()
