"""The client-to-delivery saga on every backend: happy path, QC failure, a fault at every
step, failing compensations, crashes at every point with recovery, idempotent re-runs."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs
import psycopg
import pytest

import aicmo
from aicmo.app import MODULES
from aicmo.delivery import REPORT_FILES, ArtifactStore, LocalStore, S3Store
from aicmo.workflow import STEPS, WorkflowRunDTO, fault_points
from aicmo.workflow.steps import Memo
from tests import s3_support

s3_server = s3_support.s3_server
s3_bucket = s3_support.s3_bucket

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


@pytest.fixture
def s3_app(s3_bucket: s3_support.Bucket, tmp_path: Path) -> Iterator[aicmo.App]:
    """An app on a new SQLite file whose artifacts go to a new bucket of the S3 server."""
    with aicmo.connect(f"sqlite:///{tmp_path / 's3.db'}", artifacts=s3_bucket.url()) as app:
        yield app


def read_artifact(store: ArtifactStore, package_id: str, name: str) -> bytes:
    """A published file's bytes, read from the store itself (a folder, or the S3 server)."""
    data = store.read(package_id, name)
    assert data is not None, f"{package_id}/{name} is not in the store"
    return data


def staging_entries(app: aicmo.App) -> list[str]:
    """What is left in the store's staging area."""
    store = app.delivery.store
    if isinstance(store, S3Store):
        return s3_support.store_keys(store, ".staging/")
    assert isinstance(store, LocalStore)
    staging = store.root / ".staging"
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


def artifact_files(app: aicmo.App) -> list[str]:
    """Every published file (``<package>/<name>``), the staging area left out."""
    store = app.delivery.store
    if isinstance(store, S3Store):
        return [k for k in s3_support.store_keys(store) if not k.startswith(".staging/")]
    assert isinstance(store, LocalStore)
    root = store.root
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
        store = app.workflow.delivery_of(run).store  # where the run wrote (maybe not here)
        assert folder == store.package_location(package_id)
        manifest = json.loads(read_artifact(store, package_id, "manifest.json"))
        for entry in manifest["files"]:
            data = read_artifact(store, package_id, entry["name"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        scheme = "s3" if isinstance(store, S3Store) else "file"
        for artifact in package.artifacts:
            assert artifact.url.startswith(f"{scheme}://")
            assert artifact.url.endswith(f"/{package_id}/{artifact.name}")
        # Exactly one version, made by this run: a delivery done again after a crash
        # makes no second one.
        versions = app.repos.delivery.list_versions(package_id)
        assert [(v.version, v.workflow_run_id) for v in versions] == [(1, run.workflow_run_id)]


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


def test_the_qc_step_checks_every_draft_before_its_first_save(
    wf_app: aicmo.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first save takes SQLite's write lock: no draft is checked while it is held.
    calls: list[str] = []
    check, save_all = wf_app.qc.check, wf_app.qc.save_all
    monkeypatch.setattr(wf_app.qc, "check", lambda *a: calls.append("check") or check(*a))
    monkeypatch.setattr(
        wf_app.qc, "save_all", lambda rs: calls.append(f"save {len(rs)}") or save_all(rs)
    )
    run = wf_app.run_workflow(PASSING)
    assert_completed(wf_app, run)
    drafts = len(run.draft_ids)
    assert drafts > 1
    assert calls == ["check"] * drafts + [f"save {drafts}"]  # the results saved as one batch


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
    fault_leaves_nothing(wf_app, point)


@pytest.mark.parametrize("point", IN_STEPS)
def test_a_fault_at_any_step_leaves_nothing_in_the_object_store(
    s3_app: aicmo.App, point: str
) -> None:
    fault_leaves_nothing(s3_app, point)


def fault_leaves_nothing(wf_app: aicmo.App, point: str) -> None:
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
    crash_then_recover(wf_app, point)


@pytest.mark.parametrize("point", [p for p in FORWARD if "delivery" in p or p == "complete"])
def test_a_crash_in_delivery_then_recover_republishes_to_the_object_store(
    s3_app: aicmo.App, point: str
) -> None:
    crash_then_recover(s3_app, point)
    assert artifact_files(s3_app)


def crash_then_recover(wf_app: aicmo.App, point: str) -> None:
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


def _deliver_report_first(app: aicmo.App) -> tuple[WorkflowRunDTO, str]:
    """A queued run whose report package someone delivered (version 1) before it ran."""
    queued = app.workflow.submit(PASSING)
    report = f"pkg-{queued.workflow_run_id}-report"
    app.delivery.deliver(report, "by-hand", {"note.md": b"delivered by hand\n"})
    return queued, report


def test_a_run_delivering_a_package_again_makes_the_next_version(wf_app: aicmo.App) -> None:
    queued, report = _deliver_report_first(wf_app)
    blog = f"pkg-{queued.workflow_run_id}-blog"
    wf_app.delivery.deliver(blog, "by-hand", {"old.md": b"an earlier blog post\n"})
    [_worked] = wf_app.workflow.work(max_runs=1, stop_when_idle=True, heartbeat=False)
    run = wf_app.get_run(queued.workflow_run_id)
    assert run is not None
    assert run.status == "COMPLETED", run.error
    first, second = wf_app.delivery.list_versions(report)
    assert (first.version, first.workflow_run_id, first.draft_id) == (1, None, "by-hand")
    assert (second.version, second.workflow_run_id) == (2, run.workflow_run_id)
    assert wf_app.delivery.get_package(report) == second
    assert run.artifact_dirs[-1] == str(wf_app.delivery.artifact_root / f"{report}~v2")
    assert wf_app.delivery.missing_files(first) is False
    assert wf_app.delivery.missing_files(second) is False
    # The report links each draft's package as this run delivered it: the blog's version 2.
    index = (Path(run.artifact_dirs[-1]) / "index.html").read_text()
    assert f'href="../{blog}~v2/draft.html"' in index
    assert f'href="../{blog}/' not in index
    others = [p for p in run.package_ids[:-1] if p != blog]
    assert others
    assert all(f'href="../{p}/draft.html"' in index for p in others)
    assert [v.version for v in wf_app.delivery.list_versions(blog)] == [1, 2]


def test_compensation_removes_only_the_versions_its_run_made(wf_app: aicmo.App) -> None:
    queued, report = _deliver_report_first(wf_app)
    [by_hand] = wf_app.delivery.list_versions(report)
    files = artifact_files(wf_app)

    def fail(at: str) -> None:
        if at == "complete":
            raise RuntimeError("injected: the last moment of the run fails")

    wf_app.workflow.fault_hook = fail
    wf_app.workflow.work(max_runs=1, stop_when_idle=True, heartbeat=False)
    run = wf_app.get_run(queued.workflow_run_id)
    assert run is not None
    assert run.status == "COMPENSATED", run.error
    assert run.artifact_dirs[-1].endswith(f"{report}~v2")  # it did make version 2
    assert wf_app.delivery.list_versions(report) == [by_hand]
    assert artifact_files(wf_app) == files
    assert wf_app.delivery.missing_files(by_hand) is False


def test_a_run_delivered_before_versions_is_republished_at_version_1(
    wf_app: aicmo.App,
) -> None:
    """A run whose delivery committed before 0016 (its packages record no run) and whose
    files a crash lost is finished at version 1, its report linking the version 1 folders."""

    def crash(at: str) -> None:
        if at == "delivery:publish":
            raise Crash(at)

    wf_app.workflow.fault_hook = crash
    with pytest.raises(Crash):
        wf_app.run_workflow(PASSING)
    wf_app.workflow.fault_hook = None
    [stuck] = wf_app.list_runs()
    repo = wf_app.repos.delivery
    for package_id in stuck.package_ids:  # as migration 0016 leaves them
        [made] = repo.list_versions(package_id)
        repo.save_package(attrs.evolve(made, workflow_run_id=None))
    [recovered] = wf_app.recover()
    assert recovered.status == "COMPLETED", recovered.error
    for package_id, folder in zip(recovered.package_ids, recovered.artifact_dirs, strict=True):
        assert Path(folder).name == package_id
        [version] = repo.list_versions(package_id)
        assert (version.version, version.workflow_run_id) == (1, None)
        assert wf_app.delivery.missing_files(version) is False
    index = (Path(recovered.artifact_dirs[-1]) / "index.html").read_text()
    assert "~v" not in index


def test_memo_keeps_a_transaction_s_reads_only_once_merged() -> None:
    memo = Memo()
    memo.put("brief", "b1", "committed")
    child = memo.child()
    child.put("brief", "b2", "written in the transaction")
    assert child.get("brief", "b1", lambda: "read again") == "committed"
    assert memo.get("brief", "b2", lambda: None) is None  # not merged: not known
    assert memo.get("brief", "b3", lambda: None) is None
    assert memo.get("brief", "b3", lambda: "loaded") == "loaded"  # None is not kept
    memo.merge(child)
    assert memo.get("brief", "b2", lambda: "read again") == "written in the transaction"
