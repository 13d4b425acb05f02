"""The client-to-delivery saga on every backend: happy path, QC failure, a fault at every
step, failing compensations, crashes at every point with recovery, idempotent re-runs."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

import aicmo
from aicmo.app import MODULES
from aicmo.delivery import REPORT_FILES
from aicmo.workflow import STEPS, WorkflowRunDTO, fault_points

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING_QC = EXAMPLES / "northwind-fintech-fails-qc.toml"
# The five pipeline modules (the audit trail keeps the entries of a compensated run: its
# committed steps and their undoing).
MODULE_PREFIXES = tuple(f"{m.name}_" for m in MODULES if m.name not in ("workflow", "audit"))


class Crash(BaseException):
    """Stands in for kill -9: nothing in the saga catches it."""


@pytest.fixture
def wf_app(app: aicmo.App) -> aicmo.App:
    """An app on an empty database whose artifact root is this test's own folder."""
    return app


def module_rows(app: aicmo.App) -> dict[str, int]:
    """Rows in every table of the five modules, by table."""
    if app.backend == "memory":
        tables = app._memory._tables  # type: ignore[union-attr]
        return {n: len(t) for n, t in tables.items() if n.startswith(MODULE_PREFIXES)}
    if app.backend == "sqlite":
        conn = sqlite3.connect(app.settings.sqlite_path or "")
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts = {
            n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]
            for n in names
            if n.startswith(MODULE_PREFIXES)
        }
        conn.close()
        return counts
    with psycopg.connect(app.settings.url) as pg:
        names = [
            r[0]
            for r in pg.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        return {
            n: pg.execute(f'SELECT count(*) FROM "{n}"'.encode()).fetchone()[0]  # type: ignore[index]
            for n in names
            if n.startswith(MODULE_PREFIXES)
        }


def artifact_files(app: aicmo.App) -> list[str]:
    root = app.delivery.artifact_root
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".staging" not in p.parts
    )


def assert_completed(app: aicmo.App, run: WorkflowRunDTO) -> None:
    assert run.status == "COMPLETED", run.error
    assert run.step == "delivery"
    assert run.completed_at is not None
    assert run.failed_step is None
    assert run.error is None
    brief = app.repos.onboarding.get_brief(run.brief_id or "")
    assert brief is not None
    # One package per draft (the examples name one deliverable per channel), then the report.
    assert len(run.draft_ids) == len(brief.channels) == len(run.package_ids) - 1
    assert run.package_ids[-1] == f"pkg-{run.workflow_run_id}-report"
    for package_id, folder in zip(run.package_ids, run.artifact_dirs, strict=True):
        package = app.repos.delivery.get_package(package_id)
        assert package is not None
        names = [a.name for a in package.artifacts]
        if package_id == run.package_ids[-1]:
            assert names == [*REPORT_FILES, "manifest.json"]
        else:
            assert names == ["draft.md", "draft.html", "qc-report.json", "manifest.json"]
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        for entry in manifest["files"]:
            data = (Path(folder) / entry["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        for artifact in package.artifacts:
            assert artifact.url.startswith("file://")
            assert artifact.url.endswith(f"/{package_id}/{artifact.name}")


def assert_left_nothing(
    app: aicmo.App, run: WorkflowRunDTO, rows_before: dict[str, int], files_before: list[str]
) -> None:
    assert module_rows(app) == rows_before
    assert artifact_files(app) == files_before
    assert app.repos.onboarding.get_brief(f"brief-{run.workflow_run_id}") is None


def test_happy_path(wf_app: aicmo.App) -> None:
    run = wf_app.run_workflow(PASSING)
    assert_completed(wf_app, run)
    assert wf_app.get_run(run.workflow_run_id) == run
    assert wf_app.list_runs() == [run]
    assert wf_app.list_runs("COMPLETED") == [run]
    strategy = wf_app.repos.strategy.get(run.strategy_id or "")
    assert strategy is not None
    assert sum(c.budget_allocation_pct for c in strategy.channels) == 100.0
    for draft_id in run.draft_ids:
        result = wf_app.repos.qc.get_result(draft_id)
        assert result is not None
        assert result.passed


def test_qc_failure_compensates_and_keeps_the_issues(wf_app: aicmo.App) -> None:
    done = wf_app.run_workflow(PASSING)
    rows, files = module_rows(wf_app), artifact_files(wf_app)
    run = wf_app.run_workflow(FAILING_QC)
    assert run.status == "COMPENSATED"
    assert run.failed_step == "qc"
    assert run.error is not None
    assert "QC failed" in run.error
    assert any("guaranteed" in issue["reason"] for issue in run.qc_issues)
    assert run.compensated_steps == ("production", "strategy", "onboard")
    assert run.pending_compensations == ()
    assert_left_nothing(wf_app, run, rows, files)
    assert wf_app.get_run(done.workflow_run_id) == done


# Every point inside a step or after its commit (``before:`` points are between steps, and
# an exception there is not a failure of a step: it stops the driver, see the crash test).
FORWARD = [p for p in fault_points() if not p.startswith("compensate:")]
IN_STEPS = [p for p in FORWARD if not p.startswith("before:")]
UNDOING = [p for p in fault_points() if p.startswith("compensate:")]


@pytest.mark.parametrize("point", IN_STEPS)
def test_a_fault_at_any_step_leaves_nothing_of_the_run(wf_app: aicmo.App, point: str) -> None:
    earlier = wf_app.run_workflow(PASSING)
    rows, files = module_rows(wf_app), artifact_files(wf_app)

    def fail(at: str) -> None:
        if at == point:
            raise RuntimeError(f"injected at {at}")

    wf_app.workflow.fault_hook = fail
    run = wf_app.run_workflow(PASSING)
    assert run.status == "COMPENSATED", run.error
    assert run.error == f"RuntimeError: injected at {point}"
    assert run.failed_step == (point.split(":")[0] if point != "complete" else "delivery")
    assert_left_nothing(wf_app, run, rows, files)
    assert wf_app.get_run(earlier.workflow_run_id) == earlier
    assert_completed(wf_app, earlier)


def test_a_failure_staging_a_later_package_abandons_the_earlier_ones(
    wf_app: aicmo.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, files = module_rows(wf_app), artifact_files(wf_app)
    delivery = wf_app.delivery
    original = delivery.stage
    calls: list[str] = []

    def stage(package_id: str, *args: object, **kwargs: object) -> object:
        calls.append(package_id)
        if len(calls) == 2:
            raise OSError("injected: disk full while staging")
        return original(package_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "stage", stage)
    run = wf_app.run_workflow(PASSING)
    assert run.status == "COMPENSATED", run.error
    assert len(calls) == 2
    assert_left_nothing(wf_app, run, rows, files)
    # No recover() needed: the first package's staging folder is gone already.
    staging = Path(delivery.artifact_root) / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_a_failing_compensation_is_retried_by_recover(wf_app: aicmo.App) -> None:
    rows, files = module_rows(wf_app), artifact_files(wf_app)

    def fail(at: str) -> None:
        if at in ("delivery", "compensate:strategy"):
            raise RuntimeError(f"injected at {at}")

    wf_app.workflow.fault_hook = fail
    run = wf_app.run_workflow(PASSING)
    assert run.status == "FAILED"
    assert run.pending_compensations == ("strategy",)
    before = STEPS[: STEPS.index("delivery")]
    assert run.compensated_steps == tuple(s for s in reversed(before) if s != "strategy")
    assert run.error is not None
    assert "undoing strategy failed" in run.error
    assert wf_app.repos.strategy.get(run.strategy_id or "") is not None
    wf_app.workflow.fault_hook = None
    [recovered] = wf_app.recover()
    assert recovered.status == "COMPENSATED"
    assert recovered.pending_compensations == ()
    assert_left_nothing(wf_app, recovered, rows, files)


@pytest.mark.parametrize("point", FORWARD)
def test_a_crash_anywhere_then_recover_completes_exactly_once(
    wf_app: aicmo.App, point: str
) -> None:
    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    wf_app.workflow.fault_hook = crash
    with pytest.raises(Crash):
        wf_app.run_workflow(PASSING, idempotency_key="job-1")
    [stuck] = wf_app.list_runs()
    assert stuck.status == "RUNNING"
    wf_app.workflow.fault_hook = None
    [recovered] = wf_app.recover()
    assert_completed(wf_app, recovered)
    assert wf_app.list_runs() == [recovered]
    assert wf_app.run_workflow(PASSING, idempotency_key="job-1") == recovered
    brief = wf_app.repos.onboarding.get_brief(recovered.brief_id or "")
    assert brief is not None
    assert len(wf_app.repos.production.list_drafts(recovered.strategy_id or "")) == len(
        brief.channels
    )


@pytest.mark.parametrize("point", UNDOING)
def test_a_crash_while_undoing_then_recover_compensates_exactly_once(
    wf_app: aicmo.App, point: str
) -> None:
    rows, files = module_rows(wf_app), artifact_files(wf_app)

    def crash(at: str) -> None:
        if at == "complete":
            raise RuntimeError("injected: the last moment of the run fails")
        if at == point:
            raise Crash(at)

    wf_app.workflow.fault_hook = crash
    with pytest.raises(Crash):
        wf_app.run_workflow(PASSING)
    [stuck] = wf_app.list_runs()
    assert stuck.status == "RUNNING"
    assert stuck.failed_step == "delivery"
    wf_app.workflow.fault_hook = None
    [recovered] = wf_app.recover()
    assert recovered.status == "COMPENSATED", recovered.error
    assert recovered.compensated_steps == tuple(reversed(STEPS))
    assert_left_nothing(wf_app, recovered, rows, files)


def test_the_same_idempotency_key_returns_the_same_run(wf_app: aicmo.App) -> None:
    first = wf_app.run_workflow(PASSING, idempotency_key="acme-2025-q3")
    rows, files = module_rows(wf_app), artifact_files(wf_app)
    again = wf_app.run_workflow(PASSING, idempotency_key="acme-2025-q3")
    assert again == first
    assert module_rows(wf_app) == rows
    assert artifact_files(wf_app) == files
    assert len(wf_app.list_runs()) == 1


def test_two_runs_of_one_intake_never_step_on_each_other(wf_app: aicmo.App) -> None:
    one = wf_app.run_workflow(PASSING)
    two = wf_app.run_workflow(PASSING)
    assert one.workflow_run_id != two.workflow_run_id
    assert one.brief_id != two.brief_id
    assert set(one.package_ids).isdisjoint(two.package_ids)
    assert_completed(wf_app, one)
    assert_completed(wf_app, two)


def test_an_invalid_intake_creates_no_run(wf_app: aicmo.App) -> None:
    with pytest.raises(aicmo.ValidationError) as info:
        wf_app.run_workflow({"client": {"id": "x"}})
    assert ("client.name", "is required") in info.value.errors
    assert wf_app.list_runs() == []
    assert sum(module_rows(wf_app).values()) == 0


def test_intake_forms_mappings_and_paths_are_accepted(wf_app: aicmo.App) -> None:
    form = wf_app.onboarding.read_intake(PASSING)
    by_form = wf_app.run_workflow(form)
    by_mapping = wf_app.run_workflow(dict(json.loads(json.dumps(form.responses))))
    by_str = wf_app.run_workflow(str(PASSING))
    for run in (by_form, by_mapping, by_str):
        assert_completed(wf_app, run)
