"""The client-to-delivery saga: onboard -> strategy -> production -> qc -> delivery.

Each step's writes and the run's progress commit in **one** transaction, so after a crash
the ``workflow_runs`` row says exactly which steps are in the database. A failure undoes
the completed steps in reverse order through each module's own service (no module touches
another module's rows); each undo commits together with the run's record of it. Artifact
files are staged in a temporary folder and moved into place only after the database commit.

``recover()`` works from the database alone: a ``RUNNING`` run is resumed from its last
committed step (and its package files re-published if a crash lost them); a ``FAILED`` run
with compensations left is compensated again.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import attrs

from aicmo.errors import AicmoError, NotFoundError
from aicmo.workflow.dtos import STEPS, WorkflowRunDTO
from aicmo.workflow.ports import WorkflowRunRepository

__all__ = ["FaultHook", "QcFailedError", "WorkflowService"]

T = TypeVar("T")

FaultHook = Callable[[str], None]
"""Called with each named point of the saga (``"strategy"``, ``"delivery:committed"``,
``"compensate:production"``, ...); a test hook raises to inject a fault there."""


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

    def run_transaction(self, fn: Callable[[], T]) -> T: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _evolve(run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
    changes.setdefault("updated_at", _now())
    result: WorkflowRunDTO = attrs.evolve(run, **changes)  # type: ignore[misc]
    return result


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, AicmoError) else text


class WorkflowService:
    """Runs and recovers workflows. Reachable through ``app.run_workflow`` and friends."""

    def __init__(self, services: _Services, runs: WorkflowRunRepository):
        self._s = services
        self.runs = runs
        self.fault_hook: FaultHook | None = None

    # -- public -------------------------------------------------------------------------
    def run(self, intake: Any, *, idempotency_key: str | None = None) -> WorkflowRunDTO:
        """Run the workflow for ``intake``; the same ``idempotency_key`` returns the same run.

        An invalid intake raises ``ValidationError`` and creates no run.
        """
        if idempotency_key is not None:
            existing = self.runs.get_by_key(idempotency_key)
            if existing is not None:
                return existing
        form = self._s.onboarding.read_intake(intake)
        brief = self._s.onboarding.normalize(form, brief_id="brief-check")
        now = _now()
        run_id = uuid.uuid4().hex
        create = functools.partial(
            self.runs.create,
            WorkflowRunDTO(
                workflow_run_id=run_id,
                status="RUNNING",
                intake=form.responses,
                created_at=now,
                updated_at=now,
                idempotency_key=idempotency_key,
                client_id=brief.client_id,
            ),
        )
        run = self._s.run_transaction(create)
        if run.workflow_run_id != run_id:  # another caller created it first
            return run
        return self._drive(run)

    def recover(self, *, stale_after: timedelta = timedelta(0)) -> list[WorkflowRunDTO]:
        """Finish every unfinished run older than ``stale_after``; return them as they end.

        Run it when no other process is driving those runs (see docs): a ``RUNNING`` run
        is resumed, a ``FAILED`` run with compensations left is compensated again.
        """
        cutoff = _now() - stale_after
        done = []
        for run in self.runs.list("RUNNING"):
            if run.updated_at <= cutoff:
                done.append(self._drive(run))
        for run in self.runs.list("FAILED"):
            if run.pending_compensations and run.updated_at <= cutoff:
                done.append(self._compensate(run))
        self._s.delivery.clean_staging()
        return done

    # -- the saga -----------------------------------------------------------------------
    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    def _drive(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        start = 0 if run.step is None else STEPS.index(run.step) + 1
        for step in STEPS[start:]:
            try:
                run = getattr(self, f"_step_{step}")(run)
            except Exception as exc:
                return self._fail(run, step, exc)
        try:
            self._publish_missing(run)
            self._fault("complete")
        except Exception as exc:
            return self._fail(run, "delivery", exc)
        run = _evolve(run, status="COMPLETED", completed_at=_now())
        self._save(run)
        return run

    def _save(self, run: WorkflowRunDTO) -> None:
        """Store ``run`` on its own (retried like every transaction of the saga)."""
        self._s.run_transaction(functools.partial(self.runs.update, run))

    def _commit(self, run: WorkflowRunDTO, step: str, **changes: Any) -> WorkflowRunDTO:
        """Record ``step`` as done (inside the step's transaction)."""
        self._fault(step)
        run = _evolve(run, step=step, **changes)
        self.runs.update(run)
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
        staged = [
            self._s.delivery.stage(
                self._package_id(d), d, self._package_files(run, d), created_at=run.created_at
            )
            for d in run.draft_ids
        ]

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
            run = self._s.run_transaction(tx)
        except BaseException:
            for item in staged:
                self._s.delivery.abandon(item)
            raise
        for item in staged:
            self._s.delivery.publish(item)
        self._fault("delivery:committed")
        return run

    def _publish_missing(self, run: WorkflowRunDTO) -> None:
        """Re-publish package files a crash lost between the commit and the move."""
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
        run = self.runs.get(run.workflow_run_id) or run
        done: tuple[str, ...] = () if run.step is None else STEPS[: STEPS.index(run.step) + 1]
        issues = exc.issues if isinstance(exc, QcFailedError) else []
        run = _evolve(
            run,
            failed_step=step,
            error=_describe(exc),
            qc_issues=tuple(issues),
            pending_compensations=tuple(reversed(done)),
        )
        self._save(run)
        return self._compensate(run)

    def _undo(self, run: WorkflowRunDTO, step: str) -> Callable[[], None]:
        """Undo ``step``'s rows (inside a transaction); return the after-commit clean-up."""
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
            for package_id in run.package_ids:
                self._s.delivery.repo.delete_package(package_id)
            package_ids = run.package_ids
            return lambda: self._remove_files(package_ids)
        return lambda: None

    def _remove_files(self, package_ids: Sequence[str]) -> None:
        for package_id in package_ids:
            self._s.delivery.remove_files(package_id)

    def _undo_step(
        self, run: WorkflowRunDTO, step: str
    ) -> tuple[WorkflowRunDTO, Callable[[], None]]:
        """Undo ``step`` and record it on the run (inside one transaction)."""
        after_commit = self._undo(run, step)
        self._fault(f"compensate:{step}")
        run = _evolve(
            run,
            pending_compensations=tuple(s for s in run.pending_compensations if s != step),
            compensated_steps=(*run.compensated_steps, step),
        )
        self.runs.update(run)
        return run, after_commit

    def _compensate(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        failures: list[str] = []
        for step in run.pending_compensations:
            try:
                run, after_commit = self._s.run_transaction(
                    functools.partial(self._undo_step, run, step)
                )
                after_commit()
            except Exception as exc:
                failures.append(f"undoing {step} failed: {_describe(exc)}")
        error = run.error or ""
        if failures:
            error = "; ".join([error, *failures]) if error else "; ".join(failures)
        status = "FAILED" if run.pending_compensations else "COMPENSATED"
        run = _evolve(run, status=status, error=error or None)
        self._save(run)
        return run
