"""What the transfer tests share: a workload of real runs in every status, and every
record of a database as the public API reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

import aicmo
from aicmo.qc import QcIssueDTO, QcResultDTO
from aicmo.workflow import WorkflowRunDTO

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING_QC = EXAMPLES / "northwind-fintech-fails-qc.toml"
JSON_INTAKE = EXAMPLES / "greenleaf-bakery.json"
STATUSES = {"COMPLETED", "COMPENSATED", "QUEUED", "RUNNING", "FAILED"}


class Crash(BaseException):
    """Stands in for kill -9: nothing in the saga catches it."""


def workload(app: aicmo.App) -> None:
    """Runs in every status, leaving records in every table: two completed runs, one
    compensated (QC failed), one FAILED (a compensation failed), two RUNNING with a lease
    (one crashed at QC, one crashed while undoing production after QC failed: its QC
    result and issues stay), and one QUEUED."""
    # A webhook: every delivery and run end writes its notifications (one sent, one dead).
    app.webhooks.subscribe(
        "https://hooks.example.com/a?b=1",
        ["package.delivered", "run.completed", "run.compensated"],
        "s3cret-\u00e9-0123456789",
    )
    done = app.run_workflow(PASSING, idempotency_key="done-1")
    # Delivered again: a package with two versions (the second made outside a run).
    app.delivery.deliver(
        done.package_ids[0],
        done.draft_ids[0],
        {"draft.md": "# v2 ✓\n".encode()},
        created_at=datetime(2026, 1, 2, 3, 4, 5, 654321, tzinfo=UTC),
    )
    app.run_workflow(JSON_INTAKE)
    app.run_workflow(FAILING_QC, idempotency_key="compensated-1")

    def failing(at: str) -> None:
        if at in ("delivery", "compensate:strategy"):
            raise RuntimeError(f"injected at {at}")

    app.workflow.fault_hook = failing
    assert app.run_workflow(PASSING).status == "FAILED"
    for intake, point in ((PASSING, "qc"), (FAILING_QC, "compensate:production")):

        def crash(at: str, point: str = point) -> None:
            if at == point:
                raise Crash(at)

        app.workflow.fault_hook = crash
        with pytest.raises(Crash):
            app.run_workflow(intake)
    app.workflow.fault_hook = None
    app.submit(JSON_INTAKE, idempotency_key="queued-1")
    # A QC verdict with issues (awkward values: a float that is no short decimal, text
    # that is SQL, unicode and a newline) on a draft of the run that crashed at QC.
    [crashed] = [r for r in app.list_runs("RUNNING") if not r.pending_compensations]
    app.repos.qc.save_result(
        QcResultDTO(
            result_id=f"qc-{crashed.workflow_run_id}-x",
            draft_id=crashed.draft_ids[0],
            passed=False,
            score=0.1 + 0.2,
            issues=(
                QcIssueDTO(severity="critical", section="héadline ✓", reason="'; DROP TABLE x;--"),
                QcIssueDTO(severity="minor", section="cta", reason="line one\nline two"),
            ),
            evaluated_at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        )
    )
    sent, dead, *_ = app.webhooks.notifications()
    for notification, status in ((sent, "SENT"), (dead, "DEAD")):
        done = attrs.evolve(notification, status=status, attempts=2, last_error="HTTP 500 x")
        app.repos.webhooks.update_notification(done)
    runs = app.list_runs()
    assert {r.status for r in runs} == STATUSES
    assert any(r.status == "RUNNING" and r.claimed_by for r in runs)


def cleared(run: WorkflowRunDTO) -> WorkflowRunDTO:
    """``run`` as a copy writes it: a held run's lease cleared."""
    if run.claimed_by is None:
        return run
    return attrs.evolve(run, claimed_by=None, lease_expires_at=None)


def records(app: aicmo.App, *, clear_leases: bool = False) -> dict[str, Any]:
    """Every record reachable through the repositories' reads, from the runs down."""
    repos = app.repos
    out: dict[str, Any] = {}
    runs = app.list_runs()
    if clear_leases:
        runs = [cleared(r) for r in runs]
    out["runs"] = runs
    out["by_status"] = {s: [r.workflow_run_id for r in app.list_runs(s)] for s in STATUSES}
    out["count_by_status"] = app.queue_depth()
    for run in runs:
        got = app.get_run(run.workflow_run_id)
        assert got is not None
        out[f"get_run {run.workflow_run_id}"] = cleared(got) if clear_leases else got
        if run.idempotency_key:
            by_key = repos.workflow.get_by_key(run.idempotency_key)
            assert by_key is not None
            out[f"by_key {run.idempotency_key}"] = by_key.workflow_run_id
        for package_id in run.package_ids:
            out[f"package versions {package_id}"] = repos.delivery.list_versions(package_id)
        brief_id = run.brief_id or f"brief-{run.workflow_run_id}"
        brief = repos.onboarding.get_brief(brief_id)
        out[f"brief {brief_id}"] = brief
        out[f"intake {brief_id}"] = repos.onboarding.get_intake(brief_id)
        if brief is not None:
            out[f"client {brief.client_id}"] = repos.onboarding.list_by_client(brief.client_id)
        strategies = repos.strategy.list_by_brief(brief_id)
        out[f"strategies {brief_id}"] = strategies
        out[f"versions {brief_id}"] = repos.strategy.list_versions(brief_id)
        for doc in strategies:
            out[f"strategy {doc.strategy_id}"] = repos.strategy.get(doc.strategy_id)
            drafts = repos.production.list_drafts(doc.strategy_id)
            out[f"drafts {doc.strategy_id}"] = drafts
            for draft in drafts:
                out[f"draft {draft.draft_id}"] = repos.production.get_draft(draft.draft_id)
                bundles = repos.production.list_bundles(draft.draft_id)
                out[f"bundles {draft.draft_id}"] = bundles
                for bundle in bundles:
                    out[f"bundle {bundle.bundle_id}"] = repos.production.get_bundle(
                        bundle.bundle_id
                    )
                result = repos.qc.get_result(draft.draft_id)
                out[f"qc {draft.draft_id}"] = result
                if result is not None:
                    out[f"qc id {result.result_id}"] = repos.qc.get_by_id(result.result_id)
                packages = repos.delivery.list_by_draft(draft.draft_id)
                out[f"packages {draft.draft_id}"] = packages
                for package in packages:
                    out[f"package {package.package_id}"] = repos.delivery.get_package(
                        package.package_id
                    )
    subscriptions = repos.webhooks.list_subscriptions()
    out["webhooks"] = [(s, s.secret) for s in subscriptions]
    out["notifications"] = repos.webhooks.list_notifications()
    for notification in out["notifications"]:
        out[f"notification {notification.notification_id}"] = repos.webhooks.get_notification(
            notification.notification_id
        )
    return out


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
