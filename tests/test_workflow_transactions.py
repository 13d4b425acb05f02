"""A ``TransientError`` once at any transaction point of the saga is retried, never turned
into a compensation (issue 11, item 1).

The points are found, not listed: a clean run is recorded first, counting every outermost
``app.transaction()`` and every repository call made outside one (each is a transaction of
its own) in the calling thread. Then, for each point in turn, one run gets a
``TransientError`` there, once, in each way a database gives one:

* ``before``: the transaction (or call) fails before it did anything;
* ``inside``: it fails after its writes, before the commit (everything rolls back; files it
  moved stay moved);
* ``after``: it committed, then the reply was lost (a connection dropped during
  ``COMMIT``): running it again must change nothing.

Every run must end as it would without the fault (``COMPLETED``, or ``COMPENSATED`` for an
intake that fails QC), with exactly its own rows and files, for a run driven in-process
(``run_workflow``) and for one a worker claimed.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import aicmo
from aicmo import app as app_modules
from aicmo.db.retry import retry_transient
from aicmo.errors import TransientError
from aicmo.workflow import WorkflowRunDTO

from .test_workflow import (
    FAILING_QC,
    PASSING,
    artifact_files,
    assert_completed,
    module_rows,
)

MODULES = tuple(m.name for m in app_modules.MODULES)


class TransientOnce:
    """Counts the transaction points of this thread and raises ``TransientError`` once, at
    point number ``at``, in the way ``mode`` says (see the module docstring)."""

    def __init__(self, app: aicmo.App, monkeypatch: pytest.MonkeyPatch):
        self.points: list[str] = []
        self.done: set[int] = set()  # the points whose body did not raise
        self.fired: list[tuple[int, str, str]] = []
        self.at: int | None = None
        self.mode = ""
        db: Any = app._sql if app._sql is not None else app._memory
        self._in_transaction: Callable[[], bool] = db.in_transaction
        self._thread = threading.current_thread()
        original = app.transaction

        @contextmanager
        def transaction(**options: bool) -> Iterator[None]:
            if not self._counting():
                with original(**options):
                    yield
                return
            n = self._point("transaction")
            with original(**options):
                yield
                self.done.add(n)
                self._fire(n, "inside")
            self._fire(n, "after")

        monkeypatch.setattr(app, "transaction", transaction)
        for module in MODULES:
            repo = getattr(app.repos, module)
            # The methods are the repository's own: a wrapper (the audit trail's) finds
            # them on the repository it wraps, not on its own class.
            for name in dir(type(inspect.unwrap(repo))):
                if not name.startswith("_") and callable(getattr(repo, name)):
                    monkeypatch.setattr(
                        repo, name, self._wrap(f"{module}.{name}", getattr(repo, name))
                    )

    def _counting(self) -> bool:
        return threading.current_thread() is self._thread and not self._in_transaction()

    def _point(self, label: str) -> int:
        n = len(self.points)
        self.points.append(label)
        self._fire(n, "before")
        return n

    def _fire(self, n: int, mode: str) -> None:
        if n == self.at and mode == self.mode and not self.fired:
            self.fired.append((n, mode, self.points[n]))
            raise TransientError(f"injected {mode} point {n} ({self.points[n]}); retry it")

    def _wrap(self, label: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._counting():
                return method(*args, **kwargs)
            n = self._point(label)
            result = method(*args, **kwargs)
            self.done.add(n)
            self._fire(n, "after")
            return result

        return call

    def arm(self, at: int | None, mode: str = "") -> None:
        self.points, self.done, self.fired, self.at, self.mode = [], set(), [], at, mode


def drive(app: aicmo.App, how: str, intake: Path) -> WorkflowRunDTO:
    if how == "run_workflow":
        return app.run_workflow(intake)
    [worked] = app.work(worker_id="w", max_runs=1, heartbeat=False)
    return worked.run


@pytest.mark.parametrize(
    ("how", "intake"),
    [("run_workflow", PASSING), ("run_workflow", FAILING_QC), ("worker", PASSING)],
    ids=["run_workflow", "run_workflow-fails-qc", "worker"],
)
def test_a_transient_error_once_at_any_transaction_point_changes_nothing(
    app: aicmo.App, monkeypatch: pytest.MonkeyPatch, how: str, intake: Path
) -> None:
    expected = "COMPLETED" if intake == PASSING else "COMPENSATED"
    flaky = TransientOnce(app, monkeypatch)
    # Each retry's backoff is recorded, not slept (the test is about what a retry leaves, and
    # a hundred-odd 0-50 ms sleeps were most of its time): one per injected error.
    backoffs: list[float] = []
    monkeypatch.setitem(retry_transient.__kwdefaults__, "sleep", backoffs.append)
    if how == "worker":
        app.submit(intake)
    flaky.arm(None)
    clean = drive(app, how, intake)
    assert clean.status == expected
    recorded, completed = list(flaky.points), set(flaky.done)
    assert recorded.count("transaction") >= 7  # creation, the steps, the final record
    rows_per_run = module_rows(app)
    files_per_run = len(artifact_files(app))
    runs = [clean]
    for at, label in enumerate(recorded):
        modes = ["before"]  # a point that raised (QC failing) has no later moment
        if at in completed:
            modes += ["inside", "after"] if label == "transaction" else ["after"]
        for mode in modes:
            if how == "worker":
                flaky.arm(None)
                app.submit(intake)
            flaky.arm(at, mode)
            retried = len(backoffs)
            run = drive(app, how, intake)
            assert flaky.fired == [(at, mode, label)], (at, mode, label, flaky.points)
            assert len(backoffs) == retried + 1, (at, mode, label)
            assert flaky.points[:at] == recorded[:at]
            assert run.status == expected, (at, mode, label, run.error)
            if expected == "COMPLETED":
                assert_completed(app, run)
            runs.append(run)
    flaky.arm(None)
    # Each run has exactly its own rows and files: nothing doubled by a retry, nothing left
    # by a rolled-back attempt, nothing left in staging.
    assert {n: count * len(runs) for n, count in rows_per_run.items()} == module_rows(app)
    assert len(artifact_files(app)) == files_per_run * len(runs)
    staging = app.delivery.artifact_root / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    assert {r.workflow_run_id for r in app.list_runs()} == {r.workflow_run_id for r in runs}
    assert all(r.claimed_by is None for r in app.list_runs())


def test_a_transient_error_in_a_heartbeat_is_retried(
    app: aicmo.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat's renewal goes through the same retry: a dropped connection once does
    not cost the lease (real time, a short lease, a step that outlasts it)."""
    app.submit(PASSING)
    calls: list[str] = []
    renewed = threading.Event()
    original = app.repos.workflow.renew

    def renew(*args: Any, **kwargs: Any) -> bool:
        calls.append("renew")
        if len(calls) == 1:
            raise TransientError("injected in the heartbeat; retry the transaction")
        held = original(*args, **kwargs)
        renewed.set()
        return held

    monkeypatch.setattr(app.repos.workflow, "renew", renew)
    app.workflow.fault_hook = lambda point: renewed.wait(30) if point == "before:strategy" else None
    [done] = app.work(worker_id="w", max_runs=1, lease=timedelta(seconds=0.3))
    app.workflow.fault_hook = None
    assert calls[:2] == ["renew", "renew"]  # the first beat, failed, then retried at once
    assert renewed.is_set()
    assert (done.outcome, done.run.lease_token) == ("COMPLETED", 1)
