"""Four processes race on the same idempotency keys, one caller in four with another intake
(issue 11, item 4): every caller gets the run of its own intake, finished, or a
``ConflictError`` naming the key and the run; never another caller's run, never one still
running; one run per key, with exactly one run's rows and files."""

from __future__ import annotations

from pathlib import Path

import pytest

import aicmo

from .conftest import scale
from .driver import FAILING_QC, PASSING
from .support import Worker, check_consistent, exceptions, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

WRITERS = 4


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_callers_racing_on_keys_get_their_own_intake_s_run_or_a_conflict(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    count = scale(8, 40)
    go = tmp_path / "go"
    workers = [
        Worker(
            "keys",
            tmp_path / f"writer{w}.jsonl",
            "--url",
            url,
            "--artifacts",
            artifacts,
            "--writer",
            w,
            "--count",
            count,
            "--go",
            go,
        )
        for w in range(WRITERS)
    ]
    for worker in workers:
        worker.wait_ready()
    go.touch()
    records = [r for worker in workers for r in worker.finish()]
    assert exceptions(records) == []
    assert len(records) == WRITERS * count
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=artifacts) as app:
        runs = {r.idempotency_key: r for r in app.list_runs()}
        client_of = {p.name: app.onboarding.check(p).client_id for p in (PASSING, FAILING_QC)}
    assert sorted(runs) == sorted(f"race-{i}" for i in range(count))
    final = {client_of[PASSING.name]: "COMPLETED", client_of[FAILING_QC.name]: "COMPENSATED"}
    conflicts: dict[str, int] = dict.fromkeys(runs, 0)
    for record in records:
        run = runs[record["key"]]
        mine = client_of[record["intake"]]
        if "conflict" in record:
            conflicts[record["key"]] += 1
            assert run.client_id != mine, record  # refused only for another intake
            assert run.workflow_run_id in record["conflict"]
            assert repr(record["key"]) in record["conflict"]
        else:
            assert record["run_id"] == run.workflow_run_id
            assert run.client_id == mine, record  # never another caller's intake
            assert record["status"] == run.status == final[mine], record
    # Each key: the callers whose intake lost the race, and only they, were refused.
    assert all(n in (1, WRITERS - 1) for n in conflicts.values()), conflicts
    expect = {key: final[run.client_id or ""] for key, run in runs.items()}
    checked = check_consistent(url, artifacts, expect)
    refused = sum(conflicts.values())
    print(f"\n{backend}: {count} keys x {WRITERS} callers, {refused} refused, {checked}")
