"""Idempotency keys (issue 11, item 4), in one process on every backend: the intake is
validated whatever the key; the same key with the same intake is the same run, finished;
the same key with another intake is a ``ConflictError`` that writes nothing; a caller that
finds another one driving the key's run waits for it (bounded), or takes it over when that
caller is gone. The multi-process race is in ``tests/reliability/test_idempotency.py``."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import aicmo
from aicmo.errors import ConflictError, ValidationError
from aicmo.workflow import WorkflowRunDTO

from .test_workflow import (
    EXAMPLES,
    PASSING,
    Crash,
    artifact_files,
    assert_completed,
    module_rows,
)

OTHER = EXAMPLES / "greenleaf-bakery.json"


def test_an_invalid_intake_is_refused_whatever_the_key(app: aicmo.App) -> None:
    first = app.run_workflow(PASSING, idempotency_key="k")
    rows, files = module_rows(app), artifact_files(app)
    for call in (app.run_workflow, app.submit):
        with pytest.raises(ValidationError) as info:
            call({}, idempotency_key="k")
        assert ("client", "is required") in info.value.errors
    assert app.list_runs() == [first]
    assert (module_rows(app), artifact_files(app)) == (rows, files)


def test_the_same_key_with_another_intake_is_a_conflict_that_writes_nothing(
    app: aicmo.App,
) -> None:
    first = app.run_workflow(PASSING, idempotency_key="acme-q3")
    rows, files = module_rows(app), artifact_files(app)
    for call in (app.run_workflow, app.submit):
        with pytest.raises(ConflictError) as info:
            call(OTHER, idempotency_key="acme-q3")
        message = str(info.value)
        assert "'acme-q3'" in message
        assert first.workflow_run_id in message
        assert "different intake" in message
    assert app.list_runs() == [first]
    assert (module_rows(app), artifact_files(app)) == (rows, files)
    queued = app.submit(OTHER, idempotency_key="bakery")
    with pytest.raises(ConflictError, match="'bakery'"):
        app.run_workflow(PASSING, idempotency_key="bakery")
    assert app.get_run(queued.workflow_run_id) == queued


def test_a_run_stores_the_fingerprint_of_its_intake(app: aicmo.App) -> None:
    from aicmo.workflow import intake_fingerprint

    run = app.run_workflow(PASSING)
    assert run.intake_fingerprint == intake_fingerprint(run.intake)
    assert run.intake_fingerprint == intake_fingerprint(json.loads(json.dumps(run.intake)))
    assert run.intake_fingerprint != intake_fingerprint({**run.intake, "timeline_weeks": 9})
    assert len(run.intake_fingerprint or "") == 64


def test_the_same_intake_in_any_form_is_the_same_run(app: aicmo.App, tmp_path: Path) -> None:
    first = app.run_workflow(PASSING, idempotency_key="k")
    as_json = tmp_path / "acme.json"
    as_json.write_text(json.dumps(dict(reversed(list(first.intake.items())))))
    assert app.run_workflow(as_json, idempotency_key="k") == first
    assert app.run_workflow(dict(first.intake), idempotency_key="k") == first
    assert app.submit(str(PASSING), idempotency_key="k") == first
    assert len(app.list_runs()) == 1


def test_a_queued_run_of_the_key_is_driven_by_run_workflow(app: aicmo.App) -> None:
    queued = app.submit(PASSING, idempotency_key="k")
    run = app.run_workflow(PASSING, idempotency_key="k")
    assert run.workflow_run_id == queued.workflow_run_id
    assert_completed(app, run)
    assert (run.lease_token, run.claimed_by) == (1, None)


class _Blocked:
    """A fault hook that holds the first run reaching ``before:qc`` until released."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, point: str) -> None:
        if point == "before:qc" and not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(60)


def test_a_caller_waits_for_the_run_another_caller_drives(app: aicmo.App) -> None:
    blocked = _Blocked()
    app.workflow.fault_hook = blocked
    results: dict[str, WorkflowRunDTO] = {}
    first = threading.Thread(
        target=lambda: results.update(a=app.run_workflow(PASSING, idempotency_key="k"))
    )
    first.start()
    assert blocked.reached.wait(60)
    second = threading.Thread(
        target=lambda: results.update(b=app.run_workflow(PASSING, idempotency_key="k"))
    )
    second.start()
    time.sleep(0.3)
    assert second.is_alive(), "the second caller returned a run still being driven"
    [held] = app.list_runs()
    assert (held.status, held.step) == ("RUNNING", "production")
    assert held.claimed_by is not None
    assert held.claimed_by.startswith("run:")
    blocked.release.set()
    first.join(60)
    second.join(60)
    app.workflow.fault_hook = None
    assert results["a"] == results["b"]
    assert_completed(app, results["b"])
    assert results["b"].lease_token == 1  # driven once, by the first caller


def test_a_caller_that_waits_too_long_gets_an_error_naming_the_run(app: aicmo.App) -> None:
    blocked = _Blocked()
    app.workflow.fault_hook = blocked
    first = threading.Thread(target=lambda: app.run_workflow(PASSING, idempotency_key="k"))
    first.start()
    try:
        assert blocked.reached.wait(60)
        [held] = app.list_runs()
        started = time.monotonic()
        with pytest.raises(ConflictError) as info:
            app.run_workflow(PASSING, idempotency_key="k", wait=timedelta(seconds=0.3))
        assert time.monotonic() - started >= 0.3
        message = str(info.value)
        assert held.workflow_run_id in message
        assert "'k'" in message
        assert "still RUNNING" in message
    finally:
        blocked.release.set()
        first.join(60)
        app.workflow.fault_hook = None
    [done] = app.list_runs()
    assert_completed(app, done)


def test_the_run_of_a_caller_that_died_is_taken_over_by_the_next(app: aicmo.App) -> None:
    def crash(point: str) -> None:
        if point == "before:qc":
            raise Crash(point)

    app.workflow.fault_hook = crash
    with pytest.raises(Crash):
        app.run_workflow(PASSING, idempotency_key="k")
    app.workflow.fault_hook = None
    [stuck] = app.list_runs()
    assert stuck.status == "RUNNING"
    assert stuck.lease_expires_at is not None  # a live lease: its holder is gone all the same
    run = app.run_workflow(PASSING, idempotency_key="k", wait=timedelta(seconds=5))
    assert run.workflow_run_id == stuck.workflow_run_id
    assert_completed(app, run)
    assert run.lease_token == 2
