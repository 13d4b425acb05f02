"""``recover()`` in several processes at once, and next to a process driving a run
(issue 11, item 5): every driver holds a lease, so no run is ever driven twice."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

import aicmo
from aicmo.workflow import WorkflowRunDTO

from .conftest import scale
from .driver import PASSING
from .support import Worker, check_consistent, exceptions, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

BACKENDS = ["sqlite", "postgresql"]


def _stuck_runs(url: str, artifacts: Path, count: int) -> list[str]:
    """``count`` RUNNING runs without a lease, as an aicmo from before leases left them."""
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=artifacts) as app:
        form = app.onboarding.read_intake(PASSING)
        now = datetime.now(UTC)
        ids = sorted(uuid.uuid4().hex for _ in range(count))  # the form of run ids
        for run_id in ids:
            app.repos.workflow.create(
                WorkflowRunDTO(
                    workflow_run_id=run_id,
                    status="RUNNING",
                    intake=form.responses,
                    created_at=now,
                    updated_at=now,
                    client_id="acme-analytics",
                )
            )
    return ids


def _recovers(url: str, artifacts: Path, tmp_path: Path, n: int, go: Path) -> list[Worker]:
    workers = [
        Worker(
            "recover",
            tmp_path / f"recover{r}.jsonl",
            "--url",
            url,
            "--artifacts",
            artifacts,
            "--go",
            go,
        )
        for r in range(n)
    ]
    for worker in workers:
        worker.wait_ready()
    return workers


@pytest.mark.parametrize("backend", BACKENDS)
def test_recovers_in_three_processes_drive_each_run_once(backend: str, tmp_path: Path) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    stuck = _stuck_runs(url, artifacts, scale(6, 30))
    go = tmp_path / "go"
    workers = _recovers(url, artifacts, tmp_path, 3, go)
    go.touch()
    records = [r for worker in workers for r in worker.finish()]
    assert exceptions(records) == []
    driven = [run_id for r in records for run_id in r["recovered"]]
    assert sorted(driven) == stuck  # each run by one process, once
    assert sum(r["completions"] for r in records) == len(stuck)
    checked = check_consistent(url, artifacts)
    assert checked.completed == len(stuck)
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=artifacts) as app:
        assert {r.lease_token for r in app.list_runs()} == {1}


@pytest.mark.parametrize("backend", BACKENDS)
def test_recover_leaves_alone_a_run_another_process_drives(backend: str, tmp_path: Path) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    go = tmp_path / "go"
    workers = _recovers(url, artifacts, tmp_path, 2, go)
    marker = tmp_path / "dwelling"
    live = Worker(
        "workflows",
        tmp_path / "live.jsonl",
        "--url",
        url,
        "--artifacts",
        artifacts,
        "--prefix",
        "live",
        "--count",
        1,
        "--dwell",
        "before:qc=6",
        "--marker",
        marker,
    )
    live.wait_ready()
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert live.proc.poll() is None, live.errors()
        assert time.monotonic() < deadline, "the live run never reached before:qc"
        time.sleep(0.02)
    go.touch()  # both recovers run while the live process is inside its run
    records = [r for worker in workers for r in worker.finish()]
    assert exceptions(records) == []
    assert [r["recovered"] for r in records] == [[], []]
    [done] = live.finish()
    assert done["status"] == "COMPLETED", done
    check_consistent(url, artifacts)
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=artifacts) as app:
        [run] = app.list_runs()
        assert run.lease_token == 1  # claimed once: by the process that created it
