"""Cancel racing workers, and retry racing claims, across real processes (issue 13): a
cancelled run ends ``CANCELLED`` with nothing of it left, whichever process drove it; a
run whose cancel was refused completed; concurrent retries of one run make one attempt,
and each attempt is driven once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import aicmo
from aicmo.errors import ConflictError

from .conftest import scale
from .driver import PASSING
from .support import ROOT, fresh_database, rows_by_run

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

BACKENDS = ["sqlite", "postgresql"]


def _workers(url: str, artifacts: Path, n: int) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "AICMO_DATABASE_URL": url, "AICMO_ARTIFACT_DIR": str(artifacts)}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from aicmo.cli import main; main()",
                "worker",
                "--stop-when-idle",
                "--poll",
                "0.02",
                "--worker-id",
                f"race-{i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]


def _finish(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, out + err


def _nothing_left_of(url: str, artifacts: Path, gone: set[str], kept: set[str]) -> None:
    """No module row or package folder of a ``gone`` run; every ``kept`` run has rows."""
    owners = {run for counts in rows_by_run(url).values() for run in counts}
    assert not owners & gone, f"cancelled runs left rows: {owners & gone}"
    assert kept <= owners
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=artifacts) as app:
        for run_id in gone:
            run = app.get_run(run_id)
            assert run is not None
            assert run.artifact_dirs == ()
            assert run.pending_compensations == ()
    staging = artifacts / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_racing_two_workers(backend: str, tmp_path: Path) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    count = scale(8, 40)
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        run_ids = [app.submit(PASSING).workflow_run_id for _ in range(count)]
        workers = _workers(url, artifacts, 2)
        accepted: set[str] = set()
        refused: set[str] = set()
        # Cancel every other run, each a little later than the last: some are still
        # queued, some are mid-way in a worker, some have finished.
        for n, run_id in enumerate(run_ids[::2]):
            time.sleep(0.05 * n)
            try:
                app.cancel_run(run_id, reason="race", by="test")
                accepted.add(run_id)
            except ConflictError:
                refused.add(run_id)
        _finish(workers)
        runs = {r.workflow_run_id: r for r in app.list_runs()}
    statuses = {run_id: runs[run_id].status for run_id in run_ids}
    assert set(statuses.values()) <= {"COMPLETED", "CANCELLED"}, statuses
    cancelled = {i for i, s in statuses.items() if s == "CANCELLED"}
    assert cancelled <= accepted
    for run_id in refused:
        assert statuses[run_id] == "COMPLETED"
    for run_id in accepted - cancelled:
        # Asked after its last step boundary: it completed (and kept the request).
        assert runs[run_id].cancel_requested_at is not None
        assert statuses[run_id] == "COMPLETED"
    for run_id in run_ids[1::2]:
        assert statuses[run_id] == "COMPLETED"
    for run_id in cancelled:
        assert (runs[run_id].cancel_reason, runs[run_id].cancelled_by) == ("race", "test")
    completed = {i for i, s in statuses.items() if s == "COMPLETED"}
    _nothing_left_of(url, artifacts, cancelled, completed)
    assert cancelled, "no cancel reached a run before it completed; the race was not run"


@pytest.mark.parametrize("backend", BACKENDS)
def test_retries_racing_each_other_and_workers_make_one_attempt_each(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    count = scale(4, 20)
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        first = [app.submit(PASSING, idempotency_key=f"k{i}") for i in range(count)]
        for run in first:
            app.cancel_run(run.workflow_run_id)
        workers = _workers(url, artifacts, 2)

        def retry(run_id: str) -> str:
            with aicmo.connect(url, artifact_dir=artifacts) as other:
                try:
                    return other.retry_run(run_id).workflow_run_id
                except ConflictError as exc:
                    return f"refused: {exc}"

        with ThreadPoolExecutor(max_workers=4) as pool:
            made = list(pool.map(retry, [r.workflow_run_id for r in first for _ in range(3)]))
        _finish(workers)
        for i, run in enumerate(first):
            attempts = app.run_attempts(run.workflow_run_id)
            assert [a.attempt for a in attempts] == [1, 2]
            assert attempts[1].status == "COMPLETED"
            assert attempts[1].lease_token == 1  # claimed once
            assert app.repos.workflow.get_by_key(f"k{i}") == attempts[1]
    refusals = [m for m in made if m.startswith("refused: ")]
    assert len(made) - len(refusals) == count
    assert all("retried already" in m for m in refusals), refusals
