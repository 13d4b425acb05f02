"""A fault at every write point of the saga, while another process runs workflows.

``tests/test_workflow.py`` injects a fault at each *named point* of the saga (one per step,
after the step's writes). This suite goes finer and adds a neighbour:

* every **write call** a run makes is a fault point: each repository write (a brief, its
  intake, a step's drafts, bundles, QC results and packages, each run record) and each
  file operation (staging each package, publishing them, removing a package's files),
  found by recording a clean run: a step that stages four packages has a fault point
  before each of them, and one before the bulk write of their rows;
* the same for every write call of the **compensation** (run failed at its very end, so
  every step is undone): the run is ``FAILED``, and ``recover()`` completes the clean-up;
* the webhook outbox of every run checked at the end (a subscription to every event): a
  notification for each delivery and run end that committed, none for what a fault undid
  (a fault at the run's record in the delivery step's transaction comes after its outbox
  rows are written);
* all of it while a second **process** runs workflows on the same database, whose runs must
  all complete untouched, like the runs made before the faults.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import aicmo
from aicmo.app import MODULES
from aicmo.workflow import WorkflowRunDTO

from .conftest import SOAK
from .driver import PASSING, expected_status
from .support import (
    Worker,
    check_consistent,
    exceptions,
    fresh_database,
    module_tables,
    rows_by_run,
    subscribe_webhook,
)

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

BACKENDS = ["sqlite", "postgresql"]

PIPELINE = ("onboarding", "strategy", "production", "qc", "delivery")
"""The modules the saga's steps write through."""
# Every write of the pipeline's modules, as the registry declares them (a bulk write added
# later is a fault point without an edit here), and the run's own records.
WRITES = {
    **{m.name: tuple(m.writes) for m in MODULES if m.name in PIPELINE},
    "workflow": ("create", "update", "finish"),
}
FILE_OPS = ("stage", "publish", "publish_all", "remove_files")


class Injected(RuntimeError):
    """The injected fault."""


@attrs.define
class Injector:
    """Counts write calls (recording their names) and raises at call number ``fail_at``."""

    fail_at: int | None = None
    armed: bool = True
    calls: list[str] = attrs.Factory(list)

    def __call__(self, label: str) -> None:
        if not self.armed:
            return
        self.calls.append(label)
        if len(self.calls) - 1 == self.fail_at:
            raise Injected(f"injected at write {self.fail_at} ({label})")

    def reset(self, fail_at: int | None = None, *, armed: bool = True) -> None:
        self.fail_at, self.armed, self.calls = fail_at, armed, []


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch) -> Injector:
    """Every write method of every SQL repository, and the delivery service's file
    operations, pass through one ``Injector`` (in this process only)."""
    from aicmo.delivery.service import DeliveryService

    classes: dict[str, Any] = {m.name: m.sql for m in MODULES}
    inject = Injector(armed=False)

    def wrap(label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            inject(label)
            return original(self, *args, **kwargs)

        return wrapper

    for module, names in WRITES.items():
        for name in names:
            cls = classes[module]
            monkeypatch.setattr(cls, name, wrap(f"{module}.{name}", getattr(cls, name)))
    for name in FILE_OPS:
        original = getattr(DeliveryService, name)
        monkeypatch.setattr(DeliveryService, name, wrap(f"files.{name}", original))
    return inject


def _footprint(app: aicmo.App, url: str, run: WorkflowRunDTO) -> tuple[Any, ...]:
    """What a run has: its record, its rows (every column) per table, its files (names and
    bytes)."""
    rows = {
        table: sorted(r for r in found if run.workflow_run_id in " ".join(map(str, r)))
        for table, found in module_tables(url).items()
    }
    files = {
        str(p.relative_to(app.delivery.artifact_root)): p.read_bytes()
        for folder in run.artifact_dirs
        for p in sorted(Path(folder).rglob("*"))
    }
    return app.get_run(run.workflow_run_id), rows, files


def _left_nothing(app: aicmo.App, url: str, run: WorkflowRunDTO) -> list[str]:
    problems = [
        f"{table} keeps {counts[run.workflow_run_id]} rows"
        for table, counts in rows_by_run(url).items()
        if counts[run.workflow_run_id]
    ]
    problems += [f"files left in {p}" for p in run.artifact_dirs if Path(p).exists()]
    return problems


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fault_at_every_write_point_leaves_nothing_of_the_run(
    backend: str, tmp_path: Path, injector: Injector
) -> None:
    url = fresh_database(backend, tmp_path)
    subscribe_webhook(url)  # every fault is checked against the outbox too (check_outbox)
    artifacts = tmp_path / "artifacts"
    stop = tmp_path / "stop"
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=artifacts) as app:
        earlier = [app.run_workflow(PASSING, idempotency_key=f"before-{i}") for i in range(2)]
        before = [_footprint(app, url, run) for run in earlier]

        # The write points of a clean run, and of the compensation of a run failing last.
        injector.reset()
        app.run_workflow(PASSING, idempotency_key="clean-0")
        forward = injector.calls
        injector.reset(armed=False)

        def fail_last(at: str) -> None:
            if at == "complete":
                injector.reset()  # count from here: the compensation's writes
                raise Injected("injected at complete")

        app.workflow.fault_hook = fail_last
        assert app.run_workflow(PASSING, idempotency_key="clean-1").status == "COMPENSATED"
        compensation = injector.calls
        app.workflow.fault_hook = None
        injector.reset(armed=False)
        assert len(forward) >= 15, forward
        assert "files.publish_all" in forward, forward  # the saga publishes through it
        # One package per draft and the run's report package, each removed with its files.
        assert compensation.count("files.remove_files") == 4, compensation

        neighbour = Worker(
            "workflows",
            tmp_path / "neighbour.jsonl",
            "--url",
            url,
            "--artifacts",
            artifacts,
            "--prefix",
            "n",
            "--count",
            10_000,
            "--stop",
            stop,
        )
        neighbour.wait_ready()
        problems: list[str] = []
        expect = {"clean-1": "COMPENSATED"}
        # Every write point; on PostgreSQL (slower) every other one, except in the soak.
        stride = 2 if backend == "postgresql" and not SOAK else 1
        try:
            for i, label in enumerate(forward):
                if i % stride and i != len(forward) - 1:
                    continue
                key = f"f{i}-0"
                injector.reset(fail_at=i)
                where = f"fault at write {i} ({label})"
                try:
                    run = app.run_workflow(PASSING, idempotency_key=key)
                except Injected:
                    # Only the run's creation, and its very last record, are outside the
                    # saga's handling: nothing was created, or everything is committed.
                    injector.reset(armed=False)
                    found = app.repos.workflow.get_by_key(key)
                    if i == 0:
                        if found is not None:
                            problems.append(f"{where}: a run was created")
                    elif i != len(forward) - 1 or found is None or found.status != "RUNNING":
                        problems.append(f"{where}: raised, run left as {found}")
                    continue
                injector.reset(armed=False)
                expect[key] = "COMPENSATED"
                if run.status != "COMPENSATED" or "injected at write" not in (run.error or ""):
                    problems.append(f"{where}: {run.status} {run.error}")
                problems += [f"{where}: {p}" for p in _left_nothing(app, url, run)]

            last = len(compensation) - 1
            for j, label in enumerate(compensation):
                if j % stride and j not in (0, last):
                    continue
                key = f"c{j}-0"
                where = f"fault at compensation write {j} ({label})"

                def fail_then_break(at: str, j: int = j) -> None:
                    if at == "complete":
                        injector.reset(fail_at=j)
                        raise Injected("injected at complete")

                app.workflow.fault_hook = fail_then_break
                try:
                    run = app.run_workflow(PASSING, idempotency_key=key)
                except Injected:
                    # The run's record of its failure (j == 0) or of its end (the last
                    # write) could not be saved: it is still RUNNING, and recover()
                    # finishes it: forward from j == 0, its compensation from the last.
                    if j not in (0, last):
                        problems.append(f"{where}: raised")
                    if j == last:
                        expect[key] = "COMPENSATED"
                    continue
                finally:
                    app.workflow.fault_hook = None
                    injector.reset(armed=False)
                expect[key] = "COMPENSATED"
                if run.status != "FAILED" or not run.pending_compensations:
                    problems.append(f"{where}: {run.status} {run.pending_compensations}")
        finally:
            stop.touch()
            records = neighbour.finish()
        assert problems == [], "\n".join(problems)
        assert exceptions(records) == []
        assert all(r["status"] == expected_status(r["key"]) for r in records)

        # The neighbour has stopped: recover the FAILED runs (and the RUNNING ones).
        unfinished = {r.idempotency_key for r in app.list_runs() if r.status != "COMPLETED"}
        unfinished -= {r.idempotency_key for r in app.list_runs("COMPENSATED")}
        recovered = app.recover()
        assert {r.idempotency_key for r in recovered} == unfinished
        assert {"c0-0", f"c{last}-0", f"f{len(forward) - 1}-0"} < unfinished
        assert [_footprint(app, url, run) for run in earlier] == before

    # Faults at the run's last record, and at the record of its failure, left it RUNNING
    # with every step committed: recover() completed it.
    expect["c0-0"] = expect[f"f{len(forward) - 1}-0"] = "COMPLETED"
    checked = check_consistent(url, artifacts, expect)
    print(
        f"\n{backend}: {len(forward)} forward and {len(compensation)} compensation write "
        f"points, neighbour ran {len(records)} workflows, {checked}"
    )


def test_recover_after_the_final_compensation_record_failed(
    tmp_path: Path, injector: Injector
) -> None:
    url = fresh_database("sqlite", tmp_path)
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=tmp_path / "artifacts") as app:

        def fail_last(at: str) -> None:
            if at == "complete":
                raise Injected("injected at complete")

        app.workflow.fault_hook = fail_last
        injector.reset(armed=False)
        original_finish = app.workflow._finish

        def finish(run: WorkflowRunDTO) -> None:
            if run.status == "COMPENSATED":
                raise Injected("the final record fails")
            original_finish(run)

        app.workflow._finish = finish  # type: ignore[method-assign]
        with pytest.raises(Injected):
            app.run_workflow(PASSING)
        app.workflow._finish = original_finish  # type: ignore[method-assign]
        app.workflow.fault_hook = None
        [run] = app.recover()
        assert run.status == "COMPENSATED", (run.status, run.package_ids)
        assert _left_nothing(app, url, run) == []


def test_a_failure_removing_files_in_a_compensation_is_retried_by_recover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aicmo.delivery.service import DeliveryService

    url = fresh_database("sqlite", tmp_path)
    original = DeliveryService.remove_files
    failures = [Injected("cannot remove the files")]

    def remove_files(self: DeliveryService, package_id: str, **version: Any) -> None:
        if failures:
            raise failures.pop()
        original(self, package_id, **version)

    monkeypatch.setattr(DeliveryService, "remove_files", remove_files)
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=tmp_path / "artifacts") as app:

        def fail_last(at: str) -> None:
            if at == "complete":
                raise Injected("injected at complete")

        app.workflow.fault_hook = fail_last
        run = app.run_workflow(PASSING)
        app.workflow.fault_hook = None
        assert run.status == "FAILED", (run.status, run.error, _left_nothing(app, url, run))
        [recovered] = app.recover()
        assert recovered.status == "COMPENSATED"
        assert _left_nothing(app, url, recovered) == []
